"""One QMP server connection: reading, queueing, answering, within a budget.

A connection holds four things on the server: input not parsed yet, in-band work
queued behind the running command (requests, answers to bad input, descriptors that
came with a later request), replies its client has not taken yet, and descriptors
its client passed. Like QEMU, which suspends a monitor whose request queue is full,
the session stops reading while it holds more than its `budget` (or
`max_queued_requests` requests), and reads on once its client has taken replies or
its queue has moved: so what a client that never reads costs is bounded by the
budget, plus one reply past it and one read (at most 256 KiB) not parsed yet.

Work is also bounded per turn of the event loop (some values or some kilobytes of
input), so a client sending a flood of garbage does not hold up the others. And
once the client is gone, nothing more is parsed, run or written for it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import CommandNotFound, GenericError, QMPCommandError
from .json_stream import JsonInputError, JsonStreamParser, StreamItem
from .passed_fds import (
    FdListeningSocket,
    FdReceivingSocket,
    PassedFds,
    close_fds,
    done_serving,
    serving,
)
from .protocol import (
    NO_REPLY,
    Request,
    RequestRefused,
    capabilities_arguments,
    encode,
    error_reply,
    not_negotiated,
    parse_request,
    reply,
)

if TYPE_CHECKING:
    from .server import QMPServer

logger = logging.getLogger(__name__)

PASSED_FD_COST = 64 * 1024
"""What a passed descriptor counts against its connection's budget: about what the
kernel buffers of a pipe hold, which a descriptor keeps alive."""

_ITEMS_PER_TURN = 64
"""Input values a connection may handle per turn of the event loop."""

_BYTES_PER_TURN = 16 * 1024
"""Input bytes a connection may hand to its parser per turn of the event loop."""


@dataclass(slots=True)
class _FdBatch:
    """Descriptors that came with the read of stream bytes [start, end)."""

    start: int
    end: int
    fds: list[int]


class _FdsArrived:
    """Descriptors waiting in the in-band queue for the request they came with.

    The kernel tells which read brought descriptors, not at which byte: a read ends
    with the message that carried them, but may begin with earlier input. They are
    taken to come with the first value that begins in that read (or, when none
    does, the one it continues), since a client sends them with the start of a
    request. When an earlier request ends in the same read, the descriptors are
    offered from that request on; as they stay until taken, only a descriptor-taking
    command sent without descriptors just before could take them early.
    """

    __slots__ = ("fds",)

    def __init__(self, fds: list[int]) -> None:
        self.fds = fds


_Work = Request | bytes | _FdsArrived
"""In-band work: a request, an encoded answer to write, descriptors to hand over."""


class QMPSession(asyncio.BufferedProtocol):
    """One client connection of a `QMPServer`.

    Input is read into one buffer of the session's (a fresh 256 KiB object per
    read, as asyncio's plain protocols get, costs an mmap/munmap pair each).

    `listener` is the unix listener that accepted it, through which the session
    finds the descriptors passed along with its input (None: no descriptors).
    """

    def __init__(
        self, server: QMPServer, listener: FdListeningSocket | None = None
    ) -> None:
        self.server = server
        self.passed_fds = PassedFds()
        self._listener = listener
        self._fd_socket: FdReceivingSocket | None = None
        self.negotiated = False
        self.oob_enabled = False
        self.dropped_events = 0
        self.closed = False
        self.refused = False  # over the connection limit: told so and closed
        self._transport: asyncio.Transport | None = None
        self._parser = JsonStreamParser(
            max_depth=server.max_depth, max_value_size=server.max_value_size
        )
        self._read_buffer = memoryview(bytearray(_BYTES_PER_TURN))
        self._inbox: deque[bytes] = deque()  # reads not handed to the parser yet
        self._inbox_bytes = 0
        self._received = 0  # stream offset of the end of what was read
        self._fd_batches: deque[_FdBatch] = deque()
        self._parser_drained = True  # the parser has nothing to take until more input
        # In-band work in arrival order, each with its size; the bytes and the
        # descriptors queued are counted.
        self._queue: deque[tuple[_Work, int]] = deque()
        self._queued_bytes = 0
        self._queued_fds = 0
        self._wakeup = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._worker: asyncio.Task[None] | None = None
        self._oob_tasks: set[asyncio.Task[None]] = set()
        self._busy = False  # an in-band command is running
        self._reading_paused = False
        self._pump_scheduled = False
        # the server's limits, looked up on every input value
        self._budget = server.connection_budget
        self._max_queued = server.max_queued_requests

    # -- what the connection holds ---------------------------------------------

    @property
    def unsent_bytes(self) -> int:
        """Output accepted for this client but not yet taken by its socket."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    @property
    def held_bytes(self) -> int:
        """Everything this connection holds, in bytes (descriptors at their cost):
        unsent output, queued work, input not parsed yet, passed descriptors."""
        fds = self._queued_fds + self.passed_fds.held
        fds += sum(len(batch.fds) for batch in self._fd_batches)
        return (
            self.unsent_bytes
            + self._queued_bytes
            + self._inbox_bytes
            + self._parser.held_bytes
            + fds * PASSED_FD_COST
        )

    def _over_budget(self) -> bool:
        """Whether to stop taking input: too much queued or not taken by the client.

        Descriptors waiting for a command are not counted here: only input can
        bring the command that takes them (and QEMU's rule keeps one message's).
        """
        if len(self._queue) + len(self._oob_tasks) >= self._max_queued:
            return True
        transport = self._transport
        held = self._queued_bytes + self._queued_fds * PASSED_FD_COST
        if transport is not None:
            held += transport.get_write_buffer_size()
        # over the budget exactly when the transport has paused writing, if nothing
        # is queued: its high-water mark is the budget (see connection_made)
        return held > self._budget

    # -- asyncio.BufferedProtocol ----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        server = self.server
        if len(server.sessions) >= server.max_connections:
            self.refused = True
            self.closed = True
            refusal = GenericError(
                f"too many QMP connections ({server.max_connections}), "
                "try again later"
            )
            transport.write(encode(error_reply(refusal, False, None)))
            transport.close()
            logger.info("QMP connection refused: %s", refusal.desc)
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sock is not None and self._listener is not None:
            self._fd_socket = self._listener.connection(sock.fileno())
        # pause_writing() when the client holds more than its budget
        budget = server.connection_budget
        transport.set_write_buffer_limits(high=budget, low=budget // 4)
        server.sessions.add(self)
        transport.write(encode(server.greeting.to_wire()))
        self._worker = asyncio.get_running_loop().create_task(self._serve_in_band())

    def connection_lost(self, exc: Exception | None) -> None:
        # Nothing more is read, parsed or written for this client. A command already
        # running finishes (as in QEMU, a disconnect does not abort it); its reply
        # and the rest of the queue are dropped.
        self.closed = True
        self.server.sessions.discard(self)
        for work, _size in self._queue:
            if isinstance(work, _FdsArrived):
                close_fds(work.fds)
        self._queue.clear()
        self._queued_bytes = self._queued_fds = 0
        for batch in self._fd_batches:
            close_fds(batch.fds)
        self._fd_batches.clear()
        self._inbox.clear()
        self._inbox_bytes = 0
        self._parser = JsonStreamParser()  # drops what the old one held
        self.passed_fds.close()
        self._wakeup.set()
        self._writable.set()

    def pause_writing(self) -> None:
        # The client holds more replies than its budget: no new work until it reads.
        self._writable.clear()
        self._update_reading()

    def resume_writing(self) -> None:
        self._writable.set()
        self._pump()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.closed:
            return
        data = self._read_buffer[:nbytes]
        start = self._received
        self._received += nbytes
        fds = None if self._fd_socket is None else self._fd_socket.claim_arrived()
        if fds:
            self._fd_batches.append(_FdBatch(start, self._received, fds))
        if not self._inbox and self._parser_drained:
            self._parser.push(data)  # the usual case: straight to the parser
            self._parser_drained = False
        else:
            self._inbox.append(bytes(data))
            self._inbox_bytes += nbytes
        self._pump()

    # -- input -----------------------------------------------------------------

    def _gone(self) -> bool:
        transport = self._transport
        return self.closed or transport is None or transport.is_closing()

    def _pump(self) -> None:
        """Handle input values while the budget allows, a turn's worth at most."""
        self._pump_scheduled = False
        if self._gone():
            return
        parser = self._parser
        items = 0
        pushed = 0
        while not self._over_budget():
            item = parser.take()
            if item is None:
                if not self._inbox:
                    self._parser_drained = True
                    if self._fd_batches:
                        self._place_fds(None, oob=False)
                    break
                if pushed >= _BYTES_PER_TURN:
                    self._continue_later()
                    break
                pushed += self._push_input()
                continue
            work = self._read_item(item.value)
            if self._fd_batches:
                oob = isinstance(work, Request) and work.oob and self.negotiated
                self._place_fds(item, oob=oob)
            if isinstance(work, Request):
                self._accept(work, item.size)
            else:
                self._answer_in_order(work)
            if self._gone():
                return
            items += 1
            if items >= _ITEMS_PER_TURN:
                self._continue_later()
                break
        self._update_reading()

    def _continue_later(self) -> None:
        """Let other connections have the event loop; go on with the next turn."""
        self._pump_scheduled = True
        asyncio.get_running_loop().call_soon(self._pump)

    def _input_waiting(self) -> bool:
        """Whether input read from the client is not handled yet (or not read)."""
        return self._reading_paused or bool(self._inbox) or not self._parser_drained

    def _push_input(self) -> int:
        """Hand the parser the next slice of what was read; its length.

        A read that brought descriptors is handed over whole, so that where its
        values begin is known when the descriptors are placed.
        """
        data = self._inbox.popleft()
        offset = self._parser.stream_offset
        whole = any(batch.start == offset for batch in self._fd_batches)
        if len(data) > _BYTES_PER_TURN and not whole:
            self._inbox.appendleft(data[_BYTES_PER_TURN:])
            data = data[:_BYTES_PER_TURN]
        self._inbox_bytes -= len(data)
        self._parser.push(data)
        self._parser_drained = False
        return len(data)

    def _read_item(self, value: object) -> Request | dict[str, object]:
        """The request an input value makes, or the error answering it."""
        if isinstance(value, JsonInputError):
            return error_reply(GenericError(value.desc), False, None)
        try:
            return parse_request(value, self.oob_enabled)
        except RequestRefused as refused:
            return error_reply(refused.error, refused.has_id, refused.id)

    def _place_fds(self, item: StreamItem | None, *, oob: bool) -> None:
        """Hand over the descriptor batches that come before `item` (see
        `_FdsArrived`); with None, those no value still being read can claim."""
        parser = self._parser
        while self._fd_batches:
            batch = self._fd_batches[0]
            if item is None:
                start = parser.value_start()
                if start is not None and start < batch.end:
                    return  # the value they came with is not complete yet
            elif item.end <= batch.start:
                return  # `item` ended before the read that brought them
            elif item.start < batch.start:
                following = parser.next_start()
                if following is not None and following < batch.end:
                    return  # a value begins in that read after `item`: theirs
            self._fd_batches.popleft()
            self._fds_arrived(batch.fds, at_once=oob)

    def _fds_arrived(self, fds: list[int], *, at_once: bool) -> None:
        """Hand descriptors over when the commands before them are done.

        An out-of-band command runs as soon as it is read, so its descriptors are
        handed over at once, as QEMU does for whatever it reads.
        """
        if at_once or not (self._queue or self._busy):
            self.passed_fds.arrive(fds)
        else:
            self._enqueue(_FdsArrived(fds))

    def _update_reading(self) -> None:
        """Read from the client only when everything read so far was handled and
        the budget allows more."""
        transport = self._transport
        if transport is None or self._gone():
            return
        pause = (
            self._pump_scheduled
            or bool(self._inbox)
            or not self._parser_drained
            or self._over_budget()
        )
        if pause and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not pause and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False

    # -- requests --------------------------------------------------------------

    def _enqueue(self, work: _Work, size: int = 0) -> None:
        """Queue in-band work; `size` is what it counts against the budget."""
        if isinstance(work, _FdsArrived):
            self._queued_fds += len(work.fds)
        self._queued_bytes += size
        self._queue.append((work, size))
        self._wakeup.set()

    def _dequeue(self) -> _Work:
        work, size = self._queue.popleft()
        if isinstance(work, _FdsArrived):
            self._queued_fds -= len(work.fds)
        self._queued_bytes -= size
        return work

    def _accept(self, request: Request, size: int) -> None:
        if not self.negotiated:
            self._answer_in_order(self._negotiate(request))
        elif request.oob:
            self._start_oob(request)
        else:
            self._enqueue(request, size)

    def _negotiate(self, request: Request) -> dict[str, object]:
        if request.name != "qmp_capabilities":
            return error_reply(not_negotiated(), request.has_id, request.id)
        try:
            oob = capabilities_arguments(
                request.arguments, self.server.greeting.capabilities
            )
        except QMPCommandError as error:
            return error_reply(error, request.has_id, request.id)
        self.negotiated = True
        self.oob_enabled = oob
        return reply({}, request.has_id, request.id)

    def _answer_in_order(self, message: dict[str, object]) -> None:
        """Send an answer behind the in-band commands that came before it."""
        if self._queue or self._busy:
            payload = self._encode(message)
            self._enqueue(payload, len(payload))
        else:
            self.write(message)

    def _start_oob(self, request: Request) -> None:
        server = self.server
        if not server.knows(request.name):
            error: QMPCommandError = CommandNotFound(
                f"The command {request.name} has not been found"
            )
            self.write(error_reply(error, request.has_id, request.id))
        elif not server.allows_oob(request.name):
            error = GenericError(f"The command {request.name} does not support OOB")
            self.write(error_reply(error, request.has_id, request.id))
        else:
            task = asyncio.get_running_loop().create_task(self._run(request))
            self._oob_tasks.add(task)
            task.add_done_callback(self._oob_done)

    def _oob_done(self, task: asyncio.Task[None]) -> None:
        self._oob_tasks.discard(task)
        self._pump()

    async def _serve_in_band(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                if self.closed:
                    return
                self._wakeup.clear()
                if self._input_waiting() and not self._pump_scheduled:
                    self._pump()  # the queue is empty: room for more input
                await self._wakeup.wait()
            # No new work while the client has not taken its replies (QEMU
            # suspends the monitor): this is what bounds a client that never reads.
            if not self._writable.is_set():
                await self._writable.wait()
            if self.closed:
                return
            work = self._dequeue()
            if isinstance(work, bytes):
                self._write_payload(work)
            elif isinstance(work, _FdsArrived):
                self.passed_fds.arrive(work.fds)
            else:
                self._busy = True
                try:
                    await self._run(work)
                finally:
                    self._busy = False
            if self._input_waiting() and not self._pump_scheduled:
                self._pump()

    async def _run(self, request: Request) -> None:
        token = serving(self.passed_fds)
        try:
            result = await self.server.run_command(request)
        except QMPCommandError as error:
            self.write(error_reply(error, request.has_id, request.id))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a handler bug must not take the server down
            logger.exception("QMP command %s failed", request.name)
            failure = GenericError(f"internal error in {request.name}: {error}")
            self.write(error_reply(failure, request.has_id, request.id))
        else:
            if result is not NO_REPLY:
                self.write(reply(result, request.has_id, request.id))
        finally:
            done_serving(token)

    # -- output ----------------------------------------------------------------

    @staticmethod
    def _encode(message: dict[str, object]) -> bytes:
        try:
            return encode(message)
        except (TypeError, ValueError) as error:
            logger.error("unencodable QMP reply %r: %s", message, error)
            failure = GenericError(f"reply is not JSON: {error}")
            return encode(error_reply(failure, "id" in message, message.get("id")))

    def write(self, message: dict[str, object]) -> None:
        """Send `message` now (nothing is sent to a client that is gone)."""
        if not self._gone():
            self._write_payload(self._encode(message))

    def _write_payload(self, payload: bytes) -> None:
        transport = self._transport
        if transport is not None and not self._gone():
            transport.write(payload)

    def send_event(self, payload: bytes) -> None:
        if self._gone() or not self.negotiated:
            return
        if self.unsent_bytes > self.server.event_backlog_bytes:
            self.dropped_events += 1  # bounded output for a client that does not read
            return
        self._write_payload(payload)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks serving this client (its in-band worker, running oob commands)."""
        worker = [] if self._worker is None else [self._worker]
        return worker + list(self._oob_tasks)
