"""A blocking QMP client over a plain socket, with the async client's surface.

The command path is kept short on purpose (one ``sendall``, ``recv_into`` a reused
buffer until a line, one JSON decode): it is benchmarked against a bare socket loop.
A fresh ``recv(n)`` would allocate an n-byte object per read, which glibc serves
with mmap/munmap for large n: a system call pair per reply.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import NoReturn

from .address import Address, describe, not_qmp, open_socket, timed_out
from .client import DEFAULT_EVENT_BACKLOG, DEFAULT_MAX_MESSAGE_SIZE, bare_request
from .errors import (
    QMPConnectionError,
    QMPDisconnectedError,
    QMPError,
    QMPMessageTooLargeError,
    QMPNegotiationError,
    QMPProtocolError,
    QMPTimeoutError,
    command_error_from_wire,
)
from .events import EventBacklog, QMPEvent
from .protocol import OOB, Greeting
from .received_json import decode_line
from .transport import EventPredicate

_encode = json.JSONEncoder(separators=(",", ":")).encode

_READ_BUFFER_SIZE = 64 * 1024
"""Initial size of the receive buffer (it grows for larger messages)."""

_MIN_READ = 4096
"""Room the buffer offers each read at least (the rest is compacted or grown)."""


class SyncQMPClient:
    """Blocking QMP client (implements `SyncTransport`); not thread-safe."""

    def __init__(
        self,
        *,
        negotiate_oob: bool = True,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        event_backlog: int = DEFAULT_EVENT_BACKLOG,
    ) -> None:
        self.negotiate_oob = negotiate_oob
        self.max_message_size = max_message_size
        self.greeting: Greeting | None = None
        self.oob_enabled = False
        self._backlog = EventBacklog(event_backlog)
        self._sock: socket.socket | None = None
        self._buffer = bytearray(_READ_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._start = 0  # first byte not consumed yet
        self._end = 0  # end of the bytes received
        self._scan = 0  # where the search for the next newline resumes
        self._next_id = 0
        self._bare_requests: dict[str, bytes] = {}  # encoded argument-less requests
        self._stale_replies = 0  # in-band replies still owed to timed-out commands
        self._timeout: float | None = None  # the socket's current timeout

    @property
    def is_connected(self) -> bool:
        return self._sock is not None

    @property
    def events_dropped(self) -> int:
        return self._backlog.dropped

    def connect(self, address: Address, *, timeout: float | None = 10.0) -> None:
        """Connect, read the greeting and negotiate; QMPConnectionError on failure."""
        if self._sock is not None:
            raise QMPConnectionError("already connected")
        # a client may reconnect: nothing of the old session
        self._start = self._end = self._scan = 0
        self._stale_replies = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._sock = open_socket(address, timeout)
        except TimeoutError:
            raise QMPTimeoutError(
                timed_out(address, "the connection", timeout)
            ) from None
        except OSError as error:
            raise QMPDisconnectedError(
                f"cannot connect to {describe(address)}: {error}"
            ) from error
        self._timeout = timeout
        waiting_for = "the QMP greeting"  # what a timeout interrupted, for its message
        try:
            self.greeting = self._read_greeting(address, deadline)
            waiting_for = "the reply to qmp_capabilities"
            enable = self.negotiate_oob and OOB in self.greeting.capabilities
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                self.execute(
                    "qmp_capabilities",
                    {"enable": [OOB]} if enable else {},
                    timeout=left,
                )
            except QMPConnectionError:
                raise
            except QMPError as error:
                raise QMPNegotiationError(
                    f"qmp_capabilities failed: {error}"
                ) from error
            self.oob_enabled = enable
            self._set_timeout(None)
        except QMPTimeoutError:
            self.close()
            raise QMPTimeoutError(timed_out(address, waiting_for, timeout)) from None
        except BaseException:
            self.close()
            raise

    def _read_greeting(self, address: Address, deadline: float | None) -> Greeting:
        """The first message; a peer that sends anything else is not QMP."""
        start = self._start
        try:
            message = self._read_message(deadline)
        except QMPProtocolError:
            raise QMPProtocolError(
                not_qmp(address, bytes(self._view[start : self._end]))
            ) from None
        if "QMP" not in message:
            raise QMPProtocolError(not_qmp(address, _encode(message)))
        return Greeting.from_wire(message)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> SyncQMPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands --------------------------------------------------------------

    def execute(
        self,
        name: str,
        arguments: Mapping[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
        timeout: float | None = None,
    ) -> object:
        """Run a command; its ``return`` value, or QMPCommandError / QMPConnectionError."""
        sock = self._sock
        if sock is None:
            raise QMPDisconnectedError("not connected")
        # In-band replies come back in request order, so in-band requests go without
        # an id (fewer bytes for QEMU to lex); only out-of-band ones need one.
        request_id: int | None = None
        if oob:
            self._next_id = request_id = self._next_id + 1
            message: dict[str, object] = {"exec-oob": name}
            if arguments is not None:
                message["arguments"] = arguments
            message["id"] = request_id
            payload = _encode(message).encode() + b"\n"
        elif arguments is not None:
            message = {"execute": name, "arguments": arguments}
            payload = _encode(message).encode() + b"\n"
        else:
            cached = self._bare_requests.get(name)
            if cached is None:
                cached = self._bare_requests[name] = bare_request(name)
            payload = cached
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if fds:
                self._send_with_fds(sock, payload, fds)
            else:
                sock.sendall(payload)
        except OSError as error:
            self.close()
            raise QMPDisconnectedError(f"sending {name} failed: {error}") from error
        try:
            while True:
                reply = self._read_message(deadline)
                if "id" in reply:
                    if request_id is None or reply["id"] != request_id:
                        continue  # the late reply of an out-of-band command
                elif "event" in reply:
                    self._backlog.append(QMPEvent.from_wire(reply))
                    continue
                elif self._stale_replies:
                    self._stale_replies -= 1  # answers a command that timed out
                    continue
                elif request_id is not None:
                    continue
                try:
                    return reply["return"]
                except KeyError:
                    raise command_error_from_wire(reply.get("error")) from None
        except QMPTimeoutError:
            if request_id is None:
                self._stale_replies += 1
            raise

    @staticmethod
    def _send_with_fds(sock: socket.socket, payload: bytes, fds: Sequence[int]) -> None:
        if sock.family != socket.AF_UNIX:
            raise QMPDisconnectedError("passing file descriptors needs a unix socket")
        sent = socket.send_fds(sock, [payload], list(fds))
        if sent < len(payload):
            sock.sendall(payload[sent:])

    # -- input -----------------------------------------------------------------

    def _read_message(self, deadline: float | None) -> dict[str, object]:
        while True:
            newline = self._buffer.find(b"\n", self._scan, self._end)
            if newline < 0:
                self._receive(deadline)
                continue
            start = self._start
            if newline - start > self.max_message_size:
                self._too_large()
            if newline + 1 == self._end:  # all consumed: the next read goes in front
                self._start = self._end = self._scan = 0
            else:
                self._start = self._scan = newline + 1
            try:
                message = decode_line(self._view[start:newline])
            except ValueError as error:
                self.close()
                raise QMPProtocolError(
                    f"the server sent invalid JSON: {error}"
                ) from None
            if message is None:  # a blank line
                continue
            if not isinstance(message, dict):
                self.close()
                raise QMPProtocolError(f"the server sent a non-object: {message!r}")
            return message

    def _receive(self, deadline: float | None) -> None:
        """Read what the socket has (waiting until `deadline`) behind the buffer."""
        self._scan = self._end
        if self._end - self._start > self.max_message_size:
            self._too_large()
        if len(self._buffer) - self._end < _MIN_READ:
            self._make_room()
        sock = self._sock
        if sock is None:
            raise QMPDisconnectedError("not connected")
        if deadline is not None:
            # at or past the deadline: one non-blocking look (timeout 0)
            self._set_timeout(max(0.0, deadline - time.monotonic()))
        elif self._timeout is not None:
            self._set_timeout(None)
        try:
            received = sock.recv_into(self._view[self._end :])
        except (TimeoutError, BlockingIOError):
            raise QMPTimeoutError("no reply in time") from None
        except OSError as error:
            self.close()
            raise QMPDisconnectedError(f"the connection failed: {error}") from error
        if not received:
            self.close()
            raise QMPDisconnectedError("the server closed the connection")
        self._end += received

    def _make_room(self) -> None:
        """Move the unconsumed bytes to the front, into a larger buffer if needed."""
        start, end = self._start, self._end
        pending = end - start
        size = len(self._buffer)
        if size - pending < _MIN_READ or pending > size // 2:
            size = max(2 * size, pending + _MIN_READ)
            buffer = bytearray(size)
            buffer[:pending] = self._view[start:end]
            self._buffer, self._view = buffer, memoryview(buffer)
        else:
            self._buffer[:pending] = self._view[start:end]
        self._start, self._end, self._scan = 0, pending, self._scan - start

    def _too_large(self) -> NoReturn:
        self.close()
        raise QMPMessageTooLargeError(
            f"a message from the server exceeds {self.max_message_size} bytes"
        )

    def _set_timeout(self, timeout: float | None) -> None:
        if self._sock is not None:
            self._sock.settimeout(timeout)
        self._timeout = timeout

    # -- events ----------------------------------------------------------------

    def _poll_event(self, deadline: float | None) -> bool:
        """Read one message (an event, or a stray late reply); False on timeout."""
        try:
            message = self._read_message(deadline)
        except QMPTimeoutError:
            return False
        if "event" in message:
            self._backlog.append(QMPEvent.from_wire(message))
        return True

    def events(self, timeout: float | None = 0.0) -> Iterator[QMPEvent]:
        """Yield queued events, then new ones; stops after `timeout` s without one."""
        while True:
            if len(self._backlog):
                yield self._backlog.popleft()
                continue
            deadline = None if timeout is None else time.monotonic() + timeout
            if not self._poll_event(deadline):
                return

    def wait_for(
        self,
        name: str,
        predicate: EventPredicate | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        """Consume the first event `name` accepted by `predicate`, queued or future."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self._backlog.take(name, predicate)
            if event is not None:
                return event
            if not self._poll_event(deadline):
                raise QMPTimeoutError(f"no {name} event within {timeout} s")

    def clear_events(self) -> list[QMPEvent]:
        return self._backlog.clear()
