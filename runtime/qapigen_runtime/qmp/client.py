"""An asyncio QMP client: many commands in flight, events, out-of-band, fd passing."""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence

from .address import Address, describe, not_qmp, timed_out
from .errors import (
    QMPConnectionError,
    QMPDisconnectedError,
    QMPMessageTooLargeError,
    QMPNegotiationError,
    QMPProtocolError,
    QMPTimeoutError,
    command_error_from_wire,
)
from .events import EventBacklog, QMPEvent, event_matches
from .protocol import OOB, Greeting
from .received_json import decode_line
from .transport import EventPredicate

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""Largest message accepted from the server (a query-qmp-schema reply is ~200 KiB)."""

DEFAULT_EVENT_BACKLOG = 4096
"""Unconsumed events kept per client before the oldest are dropped."""

# QEMU's monitor consumes its input one byte per main-loop iteration, so every byte
# of a request costs server time: requests are sent compact, in-band ones without an
# id (their replies come back in request order), out-of-band ones with small ids.
_encode = json.JSONEncoder(separators=(",", ":")).encode

_READ_BUFFER_SIZE = 64 * 1024
"""Initial size of the receive buffer (it grows for larger messages)."""

_MIN_READ = 4096
"""Room the buffer offers each read at least (the rest is compacted or grown)."""

_MAX_CACHED_REQUESTS = 256
"""Encoded argument-less requests kept, by command name."""


def bare_request(name: str) -> bytes:
    """The request for command `name` without arguments, as sent in band."""
    return _encode({"execute": name}).encode() + b"\n"


class _Waiter:
    __slots__ = ("future", "name", "predicate")

    def __init__(
        self,
        name: str,
        predicate: EventPredicate | None,
        future: asyncio.Future[QMPEvent],
    ) -> None:
        self.name = name
        self.predicate = predicate
        self.future = future


class QMPClient(asyncio.BufferedProtocol):
    """Asynchronous QMP client (implements `AsyncTransport`).

    ``await client.connect(address)`` reads the greeting and negotiates capabilities
    (``oob`` when the server offers it and `negotiate_oob` is set). Any number of
    `execute` calls may be in flight: in-band replies are matched to requests by
    order (QMP answers in-band commands in the order they came), out-of-band ones by
    ``id``. Events are kept in a bounded backlog, read with `events()` or
    `wait_for()`. Input is read into one reused buffer (no allocation per read).
    """

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
        self._waiters: list[_Waiter] = []
        self._event_arrived: asyncio.Event | None = None
        self._pending: dict[int, asyncio.Future[object]] = {}  # out of band, by id
        self._in_band: deque[asyncio.Future[object]] = deque()  # in request order
        self._greeting_future: asyncio.Future[Greeting] | None = None
        self._address: Address | None = None  # the last one connect() was given
        self._next_id = 0
        self._free_ids: list[int] = []  # ids whose reply came back, smallest first
        self._bare_requests: dict[str, bytes] = {}
        self._buffer = bytearray(_READ_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._start = 0  # first byte not consumed yet
        self._end = 0  # end of the bytes received
        self._scan = 0  # where the search for the next newline resumes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._failure: QMPConnectionError | None = None
        self._closed_waiter: asyncio.Future[None] | None = None

    # -- connection ------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._transport is not None and self._failure is None

    @property
    def events_dropped(self) -> int:
        """Events discarded because the backlog was full."""
        return self._backlog.dropped

    async def connect(self, address: Address, *, timeout: float | None = 10.0) -> None:
        """Connect, read the greeting and negotiate; QMPConnectionError on failure."""
        if self.is_connected:
            raise QMPConnectionError("already connected")
        self._loop = loop = asyncio.get_running_loop()
        # a client may reconnect after a disconnect: start from a clean state
        self._failure = None
        self._transport = None
        self._start = self._end = self._scan = 0
        self._greeting_future = loop.create_future()
        self._closed_waiter = loop.create_future()
        self._event_arrived = asyncio.Event()
        self._address = address
        waiting_for = "the connection"  # what a timeout interrupted, for its message
        try:
            async with asyncio.timeout(timeout):
                if isinstance(address, str):
                    await loop.create_unix_connection(lambda: self, address)
                else:
                    await loop.create_connection(lambda: self, address[0], address[1])
                waiting_for = "the QMP greeting"
                self.greeting = await self._greeting_future
                waiting_for = "the reply to qmp_capabilities"
                enable = self.negotiate_oob and OOB in self.greeting.capabilities
                try:
                    await self.execute(
                        "qmp_capabilities", {"enable": [OOB]} if enable else {}
                    )
                except QMPConnectionError:
                    raise
                except Exception as error:
                    raise QMPNegotiationError(
                        f"qmp_capabilities failed: {error}"
                    ) from error
                self.oob_enabled = enable
        except TimeoutError:
            timeout_error = QMPTimeoutError(timed_out(address, waiting_for, timeout))
            self._abort(timeout_error)
            raise timeout_error from None
        except OSError as error:
            self._abort(QMPDisconnectedError(str(error)))
            raise QMPDisconnectedError(
                f"cannot connect to {describe(address)}: {error}"
            ) from error
        except QMPConnectionError as error:
            self._abort(error)
            raise

    async def close(self) -> None:
        """Disconnect; pending commands fail with QMPDisconnectedError."""
        transport = self._transport
        if transport is not None:
            transport.close()
            if self._closed_waiter is not None:
                await asyncio.shield(self._closed_waiter)
        self._fail(QMPDisconnectedError("the client closed the connection"))

    async def __aenter__(self) -> QMPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _abort(self, error: QMPConnectionError) -> None:
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: QMPConnectionError) -> None:
        """Everyone waiting on this connection gets `error` (first failure wins)."""
        if self._failure is None:
            self._failure = error
        error = self._failure
        pending, self._pending = self._pending, {}
        in_band, self._in_band = self._in_band, deque()
        for future in (*pending.values(), *in_band):
            if not future.done():
                future.set_exception(error)
        if self._greeting_future is not None and not self._greeting_future.done():
            self._greeting_future.set_exception(error)
            # When connect() itself failed nobody awaits the greeting any more; mark
            # the exception retrieved so asyncio does not log "never retrieved".
            self._greeting_future.exception()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        if self._event_arrived is not None:
            self._event_arrived.set()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(QMPDisconnectedError(f"the server closed the connection{reason}"))
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._buffer) - self._end < _MIN_READ:
            self._make_room()
        return self._view[self._end :]

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
        else:  # same length: allowed while asyncio holds a view of the buffer
            self._buffer[:pending] = self._view[start:end]
        self._start, self._end, self._scan = 0, pending, self._scan - start

    def buffer_updated(self, nbytes: int) -> None:
        end = self._end = self._end + nbytes
        buffer = self._buffer
        start = self._start
        newline = buffer.find(b"\n", self._scan, end)
        while newline >= 0:
            if newline - start > self.max_message_size:
                self._too_large()
                return
            line = self._view[start:newline]
            try:
                message = decode_line(line)
            except ValueError as error:
                if self._awaiting_greeting():
                    self._not_qmp(line)
                    return
                self._abort(QMPProtocolError(f"the server sent invalid JSON: {error}"))
                return
            start = newline + 1
            if message is not None:
                if self._awaiting_greeting() and not (
                    isinstance(message, dict) and "QMP" in message
                ):
                    self._not_qmp(line)
                    return
                if not isinstance(message, dict):
                    self._abort(
                        QMPProtocolError(f"the server sent a non-object: {message!r}")
                    )
                    return
                self._receive(message)
            newline = buffer.find(b"\n", start, end)
        if start == end:  # everything consumed: the next read starts at the front
            self._start = self._end = self._scan = 0
            return
        self._start, self._scan = start, end
        if end - start > self.max_message_size:
            self._too_large()

    def _awaiting_greeting(self) -> bool:
        future = self._greeting_future
        return future is not None and not future.done()

    def _not_qmp(self, received: memoryview) -> None:
        """The peer's first message is not a greeting: it does not speak QMP."""
        address = self._address if self._address is not None else "?"
        self._abort(QMPProtocolError(not_qmp(address, bytes(received))))

    def _too_large(self) -> None:
        self._start = self._end = self._scan = 0
        self._abort(
            QMPMessageTooLargeError(
                f"a message from the server exceeds {self.max_message_size} bytes"
            )
        )

    def _receive(self, message: dict[str, object]) -> None:
        if "id" in message:
            self._receive_out_of_band(message)
        elif "return" in message or "error" in message:
            if self._in_band:
                self._resolve(self._in_band.popleft(), message)
            # else: a reply nobody asked for (not to this client's requests): ignored
        elif "event" in message:
            self._deliver(QMPEvent.from_wire(message))
        elif "QMP" in message and self._greeting_future is not None:
            if not self._greeting_future.done():
                try:
                    self._greeting_future.set_result(Greeting.from_wire(message))
                except QMPNegotiationError as error:
                    self._greeting_future.set_exception(error)

    def _receive_out_of_band(self, message: dict[str, object]) -> None:
        request_id = message["id"]
        if isinstance(request_id, int):
            future = self._pending.pop(request_id, None)
            if future is not None:
                heapq.heappush(self._free_ids, request_id)
                self._resolve(future, message)
        # Anything else is a reply to a request we no longer track: ignored.

    @staticmethod
    def _resolve(future: asyncio.Future[object], message: dict[str, object]) -> None:
        if future.done():  # cancelled or timed out: nobody wants the reply
            return
        if "return" in message:
            future.set_result(message["return"])
        elif "error" in message:
            future.set_exception(command_error_from_wire(message["error"]))
        else:
            future.set_exception(QMPProtocolError(f"reply without result: {message!r}"))

    def _deliver(self, event: QMPEvent) -> None:
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            try:
                matched = event_matches(event, waiter.name, waiter.predicate)
            except Exception as error:  # a faulty predicate fails its own wait only
                waiter.future.set_exception(error)
                continue
            if matched:
                waiter.future.set_result(event)
                self._waiters = [w for w in self._waiters if not w.future.done()]
                return
        self._backlog.append(event)
        if self._event_arrived is not None:
            self._event_arrived.set()

    # -- commands --------------------------------------------------------------

    async def execute(
        self,
        name: str,
        arguments: Mapping[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
        timeout: float | None = None,
    ) -> object:
        """Run a command; its ``return`` value, or QMPCommandError / QMPConnectionError."""
        transport = self._transport
        loop = self._loop
        if transport is None or loop is None or self._failure is not None:
            raise self._failure or QMPDisconnectedError("not connected")
        future: asyncio.Future[object] = loop.create_future()
        if oob:
            if self._free_ids:
                request_id = heapq.heappop(self._free_ids)
            else:
                self._next_id = request_id = self._next_id + 1
            message: dict[str, object] = {"exec-oob": name}
            if arguments is not None:
                message["arguments"] = arguments
            message["id"] = request_id
            payload = _encode(message).encode() + b"\n"
            self._pending[request_id] = future
            queue = None
        else:
            if arguments is not None:
                payload = _encode({"execute": name, "arguments": arguments}).encode()
                payload += b"\n"
            else:
                payload = self._bare_request(name)
            queue = self._in_band
        if fds:
            await self._send_with_fds(payload, fds, future, queue)
        else:
            if queue is not None:
                queue.append(future)
            transport.write(payload)
        if timeout is None:
            return await future
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            # The request stays accounted for (its future is done) until the late
            # reply comes: it is dropped then.
            future.cancel()
            raise QMPTimeoutError(f"no reply to {name} within {timeout} s") from None

    def _bare_request(self, name: str) -> bytes:
        payload = self._bare_requests.get(name)
        if payload is None:
            payload = bare_request(name)
            if len(self._bare_requests) < _MAX_CACHED_REQUESTS:
                self._bare_requests[name] = payload
        return payload

    async def _send_with_fds(
        self,
        payload: bytes,
        fds: Sequence[int],
        future: asyncio.Future[object],
        queue: deque[asyncio.Future[object]] | None,
    ) -> None:
        """Send `payload` with SCM_RIGHTS, after whatever the transport still holds.

        An in-band request's `future` joins `queue` only as its bytes go out, so the
        order of the queue stays the order of the requests on the wire."""
        transport = self._transport
        assert transport is not None
        raw = transport.get_extra_info("socket")
        if raw is None or raw.family != socket.AF_UNIX:
            raise QMPConnectionError("passing file descriptors needs a unix socket")
        while transport.get_write_buffer_size():
            await asyncio.sleep(0.001)
        # asyncio does not expose sendmsg: use a duplicate of the socket's descriptor.
        with socket.socket(fileno=os.dup(raw.fileno())) as sock:
            sock.setblocking(False)
            while True:
                try:
                    sent = socket.send_fds(sock, [payload], list(fds))
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                except OSError as error:
                    raise QMPDisconnectedError(
                        f"sending file descriptors failed: {error}"
                    ) from error
        if queue is not None:
            queue.append(future)
        if sent < len(payload):
            transport.write(payload[sent:])

    # -- events ----------------------------------------------------------------

    async def events(self) -> AsyncIterator[QMPEvent]:
        """Yield events in arrival order until the connection closes."""
        arrived = self._event_arrived
        if arrived is None:
            return
        while True:
            if len(self._backlog):
                yield self._backlog.popleft()
                continue
            if self._failure is not None:
                return
            arrived.clear()
            await arrived.wait()

    async def wait_for(
        self,
        name: str,
        predicate: EventPredicate | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        """Consume the first event `name` accepted by `predicate`, queued or future."""
        event = self._backlog.take(name, predicate)
        if event is not None:
            return event
        if self._failure is not None:
            raise self._failure
        future: asyncio.Future[QMPEvent] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(name, predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise QMPTimeoutError(f"no {name} event within {timeout} s") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def clear_events(self) -> list[QMPEvent]:
        """Remove and return every queued event."""
        return self._backlog.clear()
