"""A blocking QMP client over a plain socket, with the async client's surface.

The command path is kept short on purpose (one ``sendall``, ``recv_into`` a reused
buffer until a line, one JSON decode): it is benchmarked against a bare socket loop.
A fresh ``recv(n)`` would allocate an n-byte object per read, which glibc serves
with mmap/munmap for large n: a system call pair per reply.

Commands go one at a time, in band without an id (see `client` for why): before
each one, what the server sent unasked and the client already read is looked at, so
an extra reply that came with the previous one is caught as a protocol error instead
of being taken for the next command's.

Deadlines are kept by the kernel (SO_RCVTIMEO, SO_SNDTIMEO on the blocking socket),
changed only when a deadline needs a shorter wait than the one set: no poll() and
no extra system call per command.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import NoReturn

from .address import (
    Address,
    connecting,
    not_qmp,
    open_socket,
    timed_out,
)
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
from .protocol import EVENT, GREETING, OOB, Greeting, message_kind, refusal
from .received_json import MultiLineMessage, decode_line
from .requests import (
    CLIENT_TIMEOUT,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_EVENT_BACKLOG,
    DEFAULT_EVENT_BACKLOG_BYTES,
    DEFAULT_MAX_MESSAGE_SIZE,
    Timeout,
    bare_request,
    check_reply_id,
    encode_request,
)
from .transport import EventPredicate

_READ_BUFFER_SIZE = 64 * 1024
"""Initial size of the receive buffer (it grows for larger messages)."""

_MIN_READ = 4096
"""Room the buffer offers each read at least (the rest is compacted or grown)."""


class SyncQMPClient:
    """Blocking QMP client (implements `SyncTransport`); not thread-safe.

    `execute` waits `command_timeout` seconds at most (None: for ever) unless given
    its own timeout, which bounds sending the request too: a request the server
    does not take in time leaves the connection closed (half of it may have gone).
    Events are kept as in `QMPClient`, bounded by count and by bytes.
    """

    def __init__(
        self,
        *,
        negotiate_oob: bool = True,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        event_backlog: int = DEFAULT_EVENT_BACKLOG,
        event_backlog_bytes: int = DEFAULT_EVENT_BACKLOG_BYTES,
        command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        self.negotiate_oob = negotiate_oob
        self.max_message_size = max_message_size
        self.command_timeout = command_timeout
        self.greeting: Greeting | None = None
        self.oob_enabled = False
        self._backlog = EventBacklog(event_backlog, event_backlog_bytes)
        self._sock: socket.socket | None = None
        self._buffer = bytearray(_READ_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._start = 0  # first byte not consumed yet
        self._end = 0  # end of the bytes received
        self._scan = 0  # where the search for the next newline resumes
        self._multi_line: MultiLineMessage | None = None  # a message spanning lines
        self._line_start = 0  # where the line being read of such a message begins
        self._next_id = 0
        self._bare_requests: dict[str, bytes] = {}  # encoded argument-less requests
        self._stale_replies = 0  # in-band replies still owed to timed-out commands
        self._stale_ids: set[int] = set()  # ids of timed-out out-of-band commands
        self._last_size = 0  # bytes of the last message read
        self._socket_timeouts = {socket.SO_RCVTIMEO: 0.0, socket.SO_SNDTIMEO: 0.0}

    @property
    def is_connected(self) -> bool:
        return self._sock is not None

    @property
    def events_dropped(self) -> int:
        """Events discarded because the backlog was full."""
        return self._backlog.dropped

    def connect(self, address: Address, *, timeout: float | None = 10.0) -> None:
        """Connect, read the greeting and negotiate; QMPConnectionError on failure.

        `timeout` bounds all of it, the answer to ``qmp_capabilities`` included.
        """
        if self._sock is not None:
            raise QMPConnectionError("already connected")
        # a client may reconnect: nothing of the old session
        self._start = self._end = self._scan = 0
        self._multi_line = None
        self._stale_replies = 0
        self._stale_ids.clear()
        deadline = None if timeout is None else time.monotonic() + timeout
        with connecting(address, timeout):
            self._sock = open_socket(address, timeout)
        # Blocking from now on, deadlines kept by the kernel (see _socket_timeout).
        self._sock.settimeout(None)
        self._socket_timeouts = dict.fromkeys(self._socket_timeouts, 0.0)
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
        except QMPTimeoutError:
            self.close()
            raise QMPTimeoutError(timed_out(address, waiting_for, timeout)) from None
        except BaseException:
            self.close()
            raise

    def _read_greeting(self, address: Address, deadline: float | None) -> Greeting:
        """The first message: the greeting, a refusal (a server over its connection
        limit says so instead), or proof that the peer does not speak QMP."""
        start = self._start
        try:
            message = self._read_message(deadline)
        except QMPProtocolError:
            raise QMPProtocolError(
                not_qmp(address, bytes(self._view[start : self._end]))
            ) from None
        if "QMP" in message:
            return Greeting.from_wire(message)
        if "error" in message:
            raise refusal(message)
        line = bytes(self._view[start : start + self._last_size])  # still there
        raise QMPProtocolError(not_qmp(address, line))

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
        timeout: Timeout = CLIENT_TIMEOUT,
    ) -> object:
        """Run a command; its ``return`` value, or QMPCommandError / QMPConnectionError.

        `timeout` (seconds, None for none) defaults to the client's
        `command_timeout`.
        """
        if timeout is CLIENT_TIMEOUT:
            timeout = self.command_timeout
        sock = self._sock
        if sock is None:
            raise QMPDisconnectedError("not connected")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._take_unasked(deadline)
        request_id: int | None = None
        if oob:
            self._next_id = request_id = self._next_id + 1
            payload = encode_request(name, arguments, True, request_id)
        elif arguments is not None:
            payload = encode_request(name, arguments, False, None)
        else:
            cached = self._bare_requests.get(name)
            if cached is None:
                cached = self._bare_requests[name] = bare_request(name)
            payload = cached
        self._send(sock, name, payload, fds, deadline)
        try:
            while True:
                message = self._read_message(deadline)
                if (
                    "return" in message
                    and request_id is None
                    and "id" not in message
                    and not self._stale_replies
                ):
                    return message["return"]  # the common case, checked first
                if self._is_event(message):
                    continue
                if "id" in message:
                    reply_id = check_reply_id(message)
                    if reply_id != request_id:
                        self._stale_reply(message)
                        continue
                elif request_id is not None or self._stale_replies:
                    self._stale_reply(message)
                    continue
                try:
                    return message["return"]
                except KeyError:
                    raise command_error_from_wire(message.get("error")) from None
        except QMPTimeoutError:
            if request_id is None:
                self._stale_replies += 1
            else:
                self._stale_ids.add(request_id)
            raise QMPTimeoutError(f"no reply to {name} within {timeout} s") from None
        except QMPProtocolError:
            self.close()
            raise

    def _send(
        self,
        sock: socket.socket,
        name: str,
        payload: bytes,
        fds: Sequence[int],
        deadline: float | None,
    ) -> None:
        """Send a request within the deadline; a server that does not take it in
        time costs the connection (part of the request may have gone out)."""
        if fds and sock.family != socket.AF_UNIX:
            raise QMPDisconnectedError("passing file descriptors needs a unix socket")
        try:
            self._socket_timeout(socket.SO_SNDTIMEO, deadline)
            if fds:
                sent = socket.send_fds(sock, [payload], list(fds))
                if sent < len(payload):
                    sock.sendall(payload[sent:])
            else:
                sock.sendall(payload)
        except (BlockingIOError, QMPTimeoutError):
            self.close()
            raise QMPTimeoutError(
                f"sending {name} timed out: the server does not read "
                "(the connection was closed)"
            ) from None
        except OSError as error:
            self.close()
            raise QMPDisconnectedError(f"sending {name} failed: {error}") from error

    def _socket_timeout(self, option: int, deadline: float | None) -> None:
        """Make the kernel give up a blocking send or receive at `deadline` (or
        not at all); QMPTimeoutError when it is already past.

        The option is changed only when it would wait past the deadline, or much
        less than it could; it is set a little short of the deadline, so that the
        next command's (a little later) keeps it. A wait that ends early is retried
        by the caller.
        """
        current = self._socket_timeouts[option]  # 0: no limit
        if deadline is None:
            wanted = 0.0
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QMPTimeoutError("the deadline passed")
            if current and remaining / 2 <= current <= remaining:
                return
            wanted = remaining * 0.8 if remaining > 0.01 else remaining
        if wanted == current:
            return
        sock = self._sock
        if sock is None:
            raise QMPDisconnectedError("not connected")
        seconds, fraction = divmod(wanted, 1.0)
        sock.setsockopt(
            socket.SOL_SOCKET,
            option,
            struct.pack(
                "ll", int(seconds), max(1, int(fraction * 1e6)) if wanted else 0
            ),
        )
        self._socket_timeouts[option] = wanted

    def _stale_reply(self, message: dict[str, object]) -> None:
        """Drop the late reply of a command that timed out; any other reply is not
        to any command of this client."""
        if "id" in message:
            reply_id = check_reply_id(message)
            if reply_id in self._stale_ids:
                self._stale_ids.discard(reply_id)
                return
        elif self._stale_replies:
            self._stale_replies -= 1
            return
        self.close()
        raise QMPProtocolError(f"a reply to no command: {message!r}")

    def _is_event(self, message: dict[str, object]) -> bool:
        """Keep an event (True); a reply is False; anything else is not QMP."""
        kind = self._kind(message)
        if kind == EVENT:
            self._backlog.append(QMPEvent.from_wire(message), self._last_size)
            return True
        return False

    def _kind(self, message: dict[str, object]) -> str:
        try:
            kind = message_kind(message)
        except QMPProtocolError:
            self.close()
            raise
        if kind == GREETING:
            self.close()
            raise QMPProtocolError(f"the server sent a second greeting: {message!r}")
        return kind

    def _take_unasked(self, deadline: float | None) -> None:
        """Look at what the server sent unasked and the client already read (no
        system call): events are kept, a reply must be the late one of a
        timed-out command."""
        while self._buffer.find(b"\n", self._scan, self._end) >= 0:
            message = self._read_message(deadline)
            if not self._is_event(message):
                self._stale_reply(message)

    # -- input -----------------------------------------------------------------

    def _read_message(self, deadline: float | None) -> dict[str, object]:
        """The next message (one line, or several for a pretty-printed one).

        A `deadline` already past reads what is there without waiting (a timeout
        of 0 is "only what already arrived").
        """
        while True:
            newline = self._buffer.find(b"\n", self._scan, self._end)
            if newline < 0:
                self._scan = self._end
                self._receive(deadline)
                continue
            start = self._start
            if newline - start > self.max_message_size:
                self._too_large()
            self._scan = newline + 1
            if self._multi_line is not None:
                line = self._view[self._line_start : newline]
                if self._multi_line.feed_line(line) is None:
                    self._line_start = newline + 1
                    continue
                self._multi_line = None
            message = self._decode(start, newline)
            if self._multi_line is not None:
                continue
            if newline + 1 == self._end:  # all consumed: the next read goes in front
                self._start = self._end = self._scan = 0
            else:
                self._start = newline + 1
            if message is None:  # a blank line
                continue
            self._last_size = newline - start
            return message

    def _decode(self, start: int, newline: int) -> dict[str, object] | None:
        line = self._view[start:newline]
        try:
            message = decode_line(line)
        except ValueError as error:
            self._multi_line = MultiLineMessage.starting(line)
            if self._multi_line is None:
                self.close()
                raise QMPProtocolError(
                    f"the server sent invalid JSON: {error}"
                ) from None
            self._line_start = newline + 1
            return None
        if message is not None and not isinstance(message, dict):
            self.close()
            raise QMPProtocolError(f"the server sent a non-object: {message!r}")
        return message

    def _receive(self, deadline: float | None) -> None:
        """Read what the socket has (waiting until `deadline`) behind the buffer.

        A deadline already past reads only what already arrived.
        """
        if self._end - self._start > self.max_message_size:
            self._too_large()
        if len(self._buffer) - self._end < _MIN_READ:
            self._make_room()
        sock = self._sock
        if sock is None:
            raise QMPDisconnectedError("not connected")
        flags = 0
        if deadline is not None and deadline <= time.monotonic():
            flags = socket.MSG_DONTWAIT  # only what already arrived
        else:
            self._socket_timeout(socket.SO_RCVTIMEO, deadline)
        try:
            received = sock.recv_into(self._view[self._end :], 0, flags)
        except BlockingIOError:
            if deadline is None or deadline <= time.monotonic():
                raise QMPTimeoutError("no reply in time") from None
            return  # the kernel's wait ended early (see _socket_timeout)
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
        self._line_start -= start

    def _too_large(self) -> NoReturn:
        self.close()
        raise QMPMessageTooLargeError(
            f"a message from the server exceeds {self.max_message_size} bytes"
        )

    # -- events ----------------------------------------------------------------

    def _poll_event(self, deadline: float | None) -> bool:
        """Read one message (an event, or a late reply); False on timeout."""
        try:
            message = self._read_message(deadline)
        except QMPTimeoutError:
            return False
        if not self._is_event(message):
            self._stale_reply(message)
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
