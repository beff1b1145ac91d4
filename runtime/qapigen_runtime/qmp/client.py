"""An asyncio QMP client: many commands in flight, events, out-of-band, fd passing.

Replies are matched to requests strictly. QMP answers in-band commands in the order
they came, and QEMU 7.2 reads its input one byte per main-loop turn (each request
byte costs it ~4 us), so a command sent while no other in-band command is in flight
goes without an id: its reply is the next one. A command sent while others are in
flight carries a small id, as do out-of-band ones, so that a reply that does not
fit (an extra one, one out of order, one to a request never sent) is caught instead
of being handed to the wrong command. A message that is no reply, event or greeting,
or a reply to nothing, ends the connection with a QMPProtocolError.
"""

from __future__ import annotations

import asyncio
import heapq
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
from .protocol import EVENT, GREETING, OOB, Greeting, message_kind, refusal
from .received_json import MultiLineMessage, decode_line
from .requests import (
    CLIENT_TIMEOUT,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_EVENT_BACKLOG,
    DEFAULT_EVENT_BACKLOG_BYTES,
    DEFAULT_MAX_MESSAGE_SIZE,
    ClientDefault,
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

_MAX_CACHED_REQUESTS = 256
"""Encoded argument-less requests kept, by command name."""


def _timed_out(name: str, timeout: float | None) -> QMPTimeoutError:
    return QMPTimeoutError(f"no reply to {name} within {timeout} s")


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


class _InBand:
    """An in-band request awaiting its reply (its id, or None when sent without)."""

    __slots__ = ("future", "request_id")

    def __init__(self, future: asyncio.Future[object], request_id: int | None) -> None:
        self.future = future
        self.request_id = request_id


class QMPClient(asyncio.BufferedProtocol):
    """Asynchronous QMP client (implements `AsyncTransport`).

    ``await client.connect(address)`` reads the greeting and negotiates capabilities
    (``oob`` when the server offers it and `negotiate_oob` is set). Any number of
    `execute` calls may be in flight (see the module docstring for how replies are
    matched); each waits `command_timeout` seconds at most unless given its own
    timeout (None: no limit). A server that does not read holds back further
    requests (they wait, within their timeout, until it takes the earlier ones).

    Events are kept in a backlog bounded by count (`event_backlog`) and by bytes
    (`event_backlog_bytes`), dropping the oldest (`events_dropped` counts them),
    and read with `events()` or `wait_for()`. Input is read into one reused buffer;
    messages are one per line, or span lines as QEMU's ``-qmp-pretty`` writes them.
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
        self._waiters: list[_Waiter] = []
        self._event_arrived: asyncio.Event | None = None
        self._writable: asyncio.Event | None = None
        # awaited replies by id: the future and whether the request was in band
        self._pending: dict[int, tuple[asyncio.Future[object], bool]] = {}
        # commands under the default timeout, in the order sent (so in the order
        # of their deadlines), and the one timer that expires the oldest
        self._deadlines: deque[tuple[float, asyncio.Future[object], str]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._greeted = False
        self._in_band: deque[_InBand] = deque()  # in request order
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
        self._multi_line: MultiLineMessage | None = None  # a message spanning lines
        self._line_start = 0  # where the line being read of such a message begins
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

    @property
    def unsent_bytes(self) -> int:
        """Requests written but not yet taken by the server's socket."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    async def connect(self, address: Address, *, timeout: float | None = 10.0) -> None:
        """Connect, read the greeting and negotiate; QMPConnectionError on failure."""
        if self.is_connected:
            raise QMPConnectionError("already connected")
        self._loop = loop = asyncio.get_running_loop()
        # a client may reconnect after a disconnect: start from a clean state
        self._failure = None
        self._transport = None
        self._start = self._end = self._scan = 0
        self._multi_line = None
        self._greeting_future = loop.create_future()
        self._closed_waiter = loop.create_future()
        self._event_arrived = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._greeted = False
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
                        "qmp_capabilities",
                        {"enable": [OOB]} if enable else {},
                        timeout=None,  # the connect timeout bounds it
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
        self._deadlines.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for future in (
            *(future for future, _in_band in pending.values()),
            *(entry.future for entry in in_band),
        ):
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
        if self._writable is not None:
            self._writable.set()

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

    def pause_writing(self) -> None:
        # The server does not take our requests: further ones wait (see execute).
        if self._writable is not None:
            self._writable.clear()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()

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
        self._line_start -= start

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self._read_messages(nbytes)
        except QMPConnectionError as error:
            self._start = self._end = self._scan = 0
            self._abort(error)
        except Exception as error:  # whatever the input, never asyncio's fatal error
            self._start = self._end = self._scan = 0
            self._abort(
                QMPProtocolError(f"unreadable message from the server: {error}")
            )

    def _read_messages(self, nbytes: int) -> None:
        end = self._end = self._end + nbytes
        buffer = self._buffer
        start = self._start
        newline = buffer.find(b"\n", self._scan, end)
        while newline >= 0:
            if newline - start > self.max_message_size:
                self._too_large()
                return
            if self._multi_line is not None:
                message = self._continue_multi_line(start, newline)
            else:
                message = self._decode(start, newline)
            if self._multi_line is None:
                size = newline - start
                if message is not None:
                    if self._greeted:
                        self._receive(message, size)
                    else:
                        self._greeting(message, self._view[start:newline])
                    if self._failure is not None:
                        return
                start = self._start = newline + 1
            newline = buffer.find(b"\n", newline + 1, end)
        if start == end:  # everything consumed: the next read starts at the front
            self._start = self._end = self._scan = 0
            return
        self._start, self._scan = start, end
        if end - start > self.max_message_size:
            self._too_large()

    def _decode(self, start: int, newline: int) -> dict[str, object] | None:
        """The message on the line [start, newline), or None for a blank line; a
        line that opens a value it does not close starts a multi-line message."""
        line = self._view[start:newline]
        try:
            message = decode_line(line)
        except ValueError as error:
            self._multi_line = MultiLineMessage.starting(line)
            if self._multi_line is None:
                if not self._greeted:
                    raise self._not_qmp(line) from None
                raise QMPProtocolError(
                    f"the server sent invalid JSON: {error}"
                ) from None
            self._line_start = newline + 1
            return None
        if message is not None and not isinstance(message, dict):
            if not self._greeted:
                raise self._not_qmp(line)
            raise QMPProtocolError(f"the server sent a non-object: {message!r}")
        return message

    def _continue_multi_line(
        self, start: int, newline: int
    ) -> dict[str, object] | None:
        multi_line = self._multi_line
        assert multi_line is not None
        line_start = self._line_start
        closed_at = multi_line.feed_line(self._view[line_start:newline])
        if closed_at is None:
            self._line_start = newline + 1
            return None
        self._multi_line = None
        return self._decode(start, newline)

    def _greeting(self, message: dict[str, object], received: memoryview) -> None:
        """The first message: the greeting, a refusal (a server over its connection
        limit says so instead), or proof that the peer does not speak QMP."""
        greeting = self._greeting_future
        if "QMP" in message and greeting is not None and not greeting.done():
            greeting.set_result(Greeting.from_wire(message))
            self._greeted = True
        elif "error" in message:
            raise refusal(message)
        else:
            raise self._not_qmp(received)

    def _not_qmp(self, received: memoryview) -> QMPProtocolError:
        """The error for a peer whose first message is not a greeting."""
        address = self._address if self._address is not None else "?"
        return QMPProtocolError(not_qmp(address, bytes(received)))

    def _too_large(self) -> None:
        self._start = self._end = self._scan = 0
        self._abort(
            QMPMessageTooLargeError(
                f"a message from the server exceeds {self.max_message_size} bytes"
            )
        )

    def _receive(self, message: dict[str, object], size: int) -> None:
        in_band = self._in_band
        if "return" in message and in_band:
            # the common cases first: the reply to the oldest in-band command
            request_id = message.get("id")
            oldest = in_band[0]
            if request_id is None and "id" not in message:
                if oldest.request_id is None:
                    self._resolve(in_band.popleft().future, message)
                    return
            elif request_id == oldest.request_id and type(request_id) is int:
                del self._pending[request_id]
                heapq.heappush(self._free_ids, request_id)
                self._resolve(in_band.popleft().future, message)
                return
        kind = message_kind(message)
        if kind == EVENT:
            self._deliver(QMPEvent.from_wire(message), size)
        elif kind == GREETING:
            raise QMPProtocolError(f"the server sent a second greeting: {message!r}")
        elif "id" in message:
            self._receive_with_id(message)
        else:
            if not in_band:
                raise QMPProtocolError(f"a reply to no command: {message!r}")
            if in_band[0].request_id is not None:
                raise QMPProtocolError(
                    f"a reply without the id of its request: {message!r}"
                )
            self._resolve(in_band.popleft().future, message)

    def _receive_with_id(self, message: dict[str, object]) -> None:
        request_id = check_reply_id(message)
        pending = self._pending.pop(request_id, None)
        if pending is None:
            raise QMPProtocolError(f"a reply to no command: {message!r}")
        future, is_in_band = pending
        heapq.heappush(self._free_ids, request_id)
        if is_in_band:
            in_band = self._in_band
            if not in_band or in_band[0].future is not future:
                raise QMPProtocolError(f"a reply out of order: {message!r}")
            in_band.popleft()
        self._resolve(future, message)

    def _resolve(
        self, future: asyncio.Future[object], message: dict[str, object]
    ) -> None:
        if not future.done():  # else cancelled or timed out: nobody wants it
            if "return" in message:
                future.set_result(message["return"])
            else:
                future.set_exception(command_error_from_wire(message["error"]))
        deadlines = self._deadlines
        while deadlines and deadlines[0][1].done():
            deadlines.popleft()

    def _deliver(self, event: QMPEvent, size: int) -> None:
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
        self._backlog.append(event, size)
        if self._event_arrived is not None:
            self._event_arrived.set()

    # -- commands --------------------------------------------------------------

    def _take_id(self) -> int:
        if self._free_ids:
            return heapq.heappop(self._free_ids)
        self._next_id += 1
        return self._next_id

    async def execute(
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
        `command_timeout`; it bounds sending the request too.
        """
        default_timeout = timeout is CLIENT_TIMEOUT
        if default_timeout:
            timeout = self.command_timeout
        assert not isinstance(timeout, ClientDefault)
        loop = self._loop
        writable = self._writable
        if loop is None or writable is None or self._failure is not None:
            raise self._failure or QMPDisconnectedError("not connected")
        deadline = None if timeout is None else loop.time() + timeout
        if not writable.is_set() or fds:
            # the slow paths: waiting for the server to read, passing descriptors
            return await self._execute_waiting(
                name, arguments, oob, fds, timeout, deadline
            )
        transport = self._transport
        if transport is None:
            raise QMPDisconnectedError("not connected")
        future = self._send(transport, name, arguments, oob)
        if deadline is None:
            return await future
        deadlines = self._deadlines
        if default_timeout and (not deadlines or deadlines[-1][0] <= deadline):
            # one timer for all such commands (see _watch), not one per command
            self._watch(future, name, deadline)
            return await future
        assert timeout is not None
        return await self._await_reply(future, name, timeout, deadline)

    def _send(
        self,
        transport: asyncio.Transport,
        name: str,
        arguments: Mapping[str, object] | None,
        oob: bool,
    ) -> asyncio.Future[object]:
        """Write the request; the future of its reply.

        An in-band request sent while other in-band requests are in flight gets
        an id, as do out-of-band ones: then every reply can be checked.
        """
        assert self._loop is not None
        future: asyncio.Future[object] = self._loop.create_future()
        request_id: int | None = None
        if oob or self._in_band:
            request_id = new_id = self._take_id()
            self._pending[new_id] = (future, not oob)
            if arguments is None and not oob:
                payload = self._bare_request_with_id(name, new_id)
            else:
                payload = encode_request(name, arguments, oob, new_id)
        else:
            if arguments is not None:
                payload = encode_request(name, arguments, False, None)
            else:
                payload = self._bare_request(name)
        if not oob:
            self._in_band.append(_InBand(future, request_id))
        transport.write(payload)
        return future

    async def _await_reply(
        self, future: asyncio.Future[object], name: str, timeout: float, deadline: float
    ) -> object:
        try:
            async with asyncio.timeout_at(deadline):
                return await future
        except TimeoutError:
            # The request stays accounted for (its future is done) until the late
            # reply comes: it is dropped then.
            future.cancel()
            raise _timed_out(name, timeout) from None

    def _watch(
        self, future: asyncio.Future[object], name: str, deadline: float
    ) -> None:
        """Fail `future` with QMPTimeoutError at `deadline` unless it is done.

        Commands under the default timeout are sent in the order of their deadlines
        (`execute` sees to it), so one timer, set for the oldest, serves them all.
        """
        self._deadlines.append((deadline, future, name))
        if self._watchdog is None:
            assert self._loop is not None
            self._watchdog = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._watchdog = None
        loop = self._loop
        assert loop is not None
        deadlines = self._deadlines
        now = loop.time()
        while deadlines:
            deadline, future, name = deadlines[0]
            if not future.done():
                if deadline > now:
                    self._watchdog = loop.call_at(deadline, self._expire)
                    return
                # as for an explicit timeout: the late reply will be dropped
                future.set_exception(_timed_out(name, self.command_timeout))
            deadlines.popleft()

    async def _execute_waiting(
        self,
        name: str,
        arguments: Mapping[str, object] | None,
        oob: bool,
        fds: Sequence[int],
        timeout: float | None,
        deadline: float | None,
    ) -> object:
        """`execute` when the server has not taken what was written before (a
        server that does not read holds further requests back), or with
        descriptors to pass."""
        future: asyncio.Future[object] | None = None
        try:
            async with asyncio.timeout_at(deadline):
                writable = self._writable
                assert writable is not None
                await writable.wait()
                transport = self._transport
                if self._failure is not None or transport is None:
                    raise self._failure or QMPDisconnectedError("not connected")
                if fds:
                    future = await self._send_with_fds(name, arguments, oob, fds)
                else:
                    future = self._send(transport, name, arguments, oob)
                return await future
        except TimeoutError:
            if future is not None:
                future.cancel()
            raise _timed_out(name, timeout) from None

    def _bare_request_with_id(self, name: str, request_id: int) -> bytes:
        """`_bare_request` with ``"id"`` appended (the same bytes encode_request
        would give, from a cached prefix)."""
        return self._bare_request(name)[:-2] + b',"id":%d}\n' % request_id

    def _bare_request(self, name: str) -> bytes:
        payload = self._bare_requests.get(name)
        if payload is None:
            payload = bare_request(name)
            if len(self._bare_requests) < _MAX_CACHED_REQUESTS:
                self._bare_requests[name] = payload
        return payload

    async def _send_with_fds(
        self,
        name: str,
        arguments: Mapping[str, object] | None,
        oob: bool,
        fds: Sequence[int],
    ) -> asyncio.Future[object]:
        """Send a request with SCM_RIGHTS, after whatever the transport still holds;
        the future of its reply. It always carries an id (others may be sent
        while it waits).

        An in-band request joins the queue of awaited replies only as its bytes go
        out, so the order of the queue stays the order of the requests on the wire.
        """
        transport = self._transport
        assert transport is not None and self._loop is not None
        raw = transport.get_extra_info("socket")
        if raw is None or raw.family != socket.AF_UNIX:
            raise QMPConnectionError("passing file descriptors needs a unix socket")
        while transport.get_write_buffer_size():
            await asyncio.sleep(0.001)
        future: asyncio.Future[object] = self._loop.create_future()
        request_id = self._take_id()
        payload = encode_request(name, arguments, oob, request_id)
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
                    heapq.heappush(self._free_ids, request_id)
                    raise QMPDisconnectedError(
                        f"sending file descriptors failed: {error}"
                    ) from error
        self._pending[request_id] = (future, not oob)
        if not oob:
            self._in_band.append(_InBand(future, request_id))
        if sent < len(payload):
            transport.write(payload[sent:])
        return future

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
