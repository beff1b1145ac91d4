"""An asyncio QMP server that serves a `Dispatcher` the way QEMU's monitor does.

Each connection starts in negotiation mode (only ``qmp_capabilities``), then runs
in-band commands one at a time in order, and ``exec-oob`` commands at once when the
client enabled ``oob``. Input is cut and parsed like QEMU does (json_stream) and bad
input is answered with QEMU's texts; one client's bad input, disconnect or unread
output never affects another client.

On unix sockets the server also receives the file descriptors clients pass with
SCM_RIGHTS (``getfd``): see :mod:`.passed_fds` for QEMU's rules it follows and
`take_passed_fd` for how a command handler gets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Collection, Sequence
from typing import Protocol

from .address import Address
from .errors import CommandNotFound, GenericError, QMPCommandError
from .events import QMPEvent
from .json_stream import (
    MAX_NESTING_DEPTH,
    MAX_VALUE_SIZE,
    JsonInputError,
    JsonStreamParser,
)
from .passed_fds import (
    FdListeningSocket,
    FdReceivingSocket,
    PassedFds,
    bind_unix_listener,
    close_fds,
    done_serving,
    serving,
)
from .protocol import (
    ALREADY_NEGOTIATED,
    OOB,
    Greeting,
    Request,
    RequestRefused,
    capabilities_arguments,
    encode,
    error_reply,
    not_negotiated,
    parse_request,
    qemu_version,
    reply,
)

logger = logging.getLogger(__name__)

QMP_CAPABILITIES = "qmp_capabilities"
QUERY_COMMANDS = "query-commands"


class Dispatcher(Protocol):
    """The commands a server offers; generated dispatchers implement this."""

    def command_names(self) -> Sequence[str]:
        """Every command this dispatcher runs (wire names)."""
        ...

    def oob_command_names(self) -> Collection[str]:
        """The commands that may run out of band (``allow-oob`` in the schema)."""
        ...

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        """Run `name`; return the wire ``return`` value or raise QMPCommandError."""
        ...


class QMPServer:
    """Serves QMP on any number of unix and TCP listeners.

    Limits, per connection: `max_depth` and `max_value_size` bound one input value
    (QEMU's values); at most `max_queued_requests` in-band requests wait before the
    server stops reading from that client; events are dropped (and counted) for a
    client whose unsent output exceeds `event_backlog_bytes`.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        version: dict[str, object] | None = None,
        capabilities: Sequence[str] = (OOB,),
        max_depth: int = MAX_NESTING_DEPTH,
        max_value_size: int = MAX_VALUE_SIZE,
        max_queued_requests: int = 8,
        event_backlog_bytes: int = 1024 * 1024,
        serialize_commands: bool = True,
    ) -> None:
        self.dispatcher = dispatcher
        self.greeting = Greeting(
            qemu_version(7, 2, 0, "qapigen") if version is None else version,
            tuple(capabilities),
        )
        self.max_depth = max_depth
        self.max_value_size = max_value_size
        self.max_queued_requests = max_queued_requests
        self.event_backlog_bytes = event_backlog_bytes
        # QEMU runs in-band commands of all monitors one at a time on its main loop;
        # the lock gives handlers the same atomicity.
        self._command_lock = asyncio.Lock() if serialize_commands else None
        self._servers: list[asyncio.Server] = []
        self._unix_paths: list[str] = []
        self.sessions: set[QMPSession] = set()
        self._refresh_commands()

    def _refresh_commands(self) -> None:
        self._commands = frozenset(self.dispatcher.command_names())
        self._oob_commands = frozenset(self.dispatcher.oob_command_names())

    # -- listeners -------------------------------------------------------------

    async def listen(
        self, address: Address, *, replace_any_file: bool = False
    ) -> Address:
        """Start listening; return the bound address (the real port for port 0).

        A unix socket path replaces a stale socket file there, or with
        `replace_any_file` any file but a directory (QEMU's rule); its clients can
        pass file descriptors.
        """
        loop = asyncio.get_running_loop()
        if isinstance(address, str):
            listener = bind_unix_listener(address, replace_any_file=replace_any_file)
            try:
                server = await loop.create_unix_server(
                    lambda: QMPSession(self, listener), sock=listener
                )
            except BaseException:
                listener.close()
                with contextlib.suppress(OSError):
                    os.unlink(address)
                raise
            self._unix_paths.append(address)
            self._servers.append(server)
            return address
        host, port = address
        server = await loop.create_server(lambda: QMPSession(self), host, port)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        return (str(bound[0]), int(bound[1]))

    async def close(self, timeout: float = 5.0) -> None:
        """Stop listening and disconnect every client.

        Commands still running get `timeout` seconds to finish, then are cancelled.
        """
        for server in self._servers:
            server.close()
        sessions = list(self.sessions)
        for session in sessions:
            session.close()
        tasks = [task for session in sessions for task in session.tasks()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for path in self._unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._unix_paths.clear()

    async def __aenter__(self) -> QMPServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- events ----------------------------------------------------------------

    def emit(self, name: str, data: dict[str, object] | None = None) -> QMPEvent:
        """Send event `name` to every negotiated client; return it."""
        event = QMPEvent.now(name, data)
        self.broadcast(event)
        return event

    def broadcast(self, event: QMPEvent) -> None:
        payload = encode(event.to_wire())
        for session in self.sessions:
            session.send_event(payload)

    # -- commands --------------------------------------------------------------

    async def run_command(self, request: Request) -> object:
        """Run an in-band or out-of-band command of a negotiated client."""
        name = request.name
        if name == QMP_CAPABILITIES:
            raise CommandNotFound(ALREADY_NEGOTIATED)
        if name not in self._commands:
            if name == QUERY_COMMANDS:
                return self.command_list()
            raise CommandNotFound(f"The command {name} has not been found")
        if request.oob or self._command_lock is None:
            return await self.dispatcher.dispatch(name, request.arguments)
        async with self._command_lock:
            return await self.dispatcher.dispatch(name, request.arguments)

    def command_list(self) -> list[dict[str, object]]:
        """The ``query-commands`` answer."""
        names = set(self._commands) | {QMP_CAPABILITIES, QUERY_COMMANDS}
        return [{"name": name} for name in sorted(names)]

    def knows(self, name: str) -> bool:
        """Whether `name` is a command of this server (built-ins included)."""
        return name in self._commands or name in (QMP_CAPABILITIES, QUERY_COMMANDS)

    def allows_oob(self, name: str) -> bool:
        return name in self._oob_commands


class QMPSession(asyncio.Protocol):
    """One client connection.

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
        self._transport: asyncio.Transport | None = None
        self._parser = JsonStreamParser(
            max_depth=server.max_depth, max_value_size=server.max_value_size
        )
        # In-band work in arrival order: requests, answers to write, and the
        # descriptors that arrived before the request they came with.
        self._queue: deque[Request | dict[str, object] | _FdsArrived] = deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._oob_tasks: set[asyncio.Task[None]] = set()
        self._busy = False  # an in-band command is running
        self._reading_paused = False
        self._writing_paused = False

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sock is not None and self._listener is not None:
            self._fd_socket = self._listener.connection(sock.fileno())
        self.server.sessions.add(self)
        transport.write(encode(self.server.greeting.to_wire()))
        self._worker = asyncio.get_running_loop().create_task(self._serve_in_band())

    def connection_lost(self, exc: Exception | None) -> None:
        # A command already running finishes (as in QEMU, a disconnect does not
        # abort it); its reply and the rest of the queue are dropped.
        self.closed = True
        self.server.sessions.discard(self)
        for item in self._queue:
            if isinstance(item, _FdsArrived):
                close_fds(item.fds)
        self._queue.clear()
        self.passed_fds.close()
        self._wakeup.set()

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests.
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        fds = None if self._fd_socket is None else self._fd_socket.claim_arrived()
        continued = bool(fds) and self._parser.held_bytes > 0
        items = self._parser.feed(data)
        # Where the descriptors go among the values read: see _FdsArrived.
        fds_before = 0
        if continued and (len(items) > 1 or (items and self._parser.held_bytes)):
            fds_before = 1  # the first value that began in `data`
        for index, item in enumerate(items):
            work = self._read_item(item)
            if fds and index == fds_before:
                oob = isinstance(work, Request) and work.oob and self.negotiated
                self._fds_arrived(fds, at_once=oob)
            if isinstance(work, Request):
                self._accept(work)
            else:
                self._answer_in_order(work)
        if fds and fds_before >= len(items):
            self._fds_arrived(fds, at_once=False)
        self._update_reading()

    def _read_item(self, item: object) -> Request | dict[str, object]:
        """The request an input value makes, or the error answering it."""
        if isinstance(item, JsonInputError):
            return error_reply(GenericError(item.desc), False, None)
        try:
            return parse_request(item, self.oob_enabled)
        except RequestRefused as refused:
            return error_reply(refused.error, refused.has_id, refused.id)

    def _fds_arrived(self, fds: list[int], *, at_once: bool) -> None:
        """Hand descriptors over when the commands before them are done.

        An out-of-band command runs as soon as it is read, so its descriptors are
        handed over at once, as QEMU does for whatever it reads.
        """
        if at_once or not (self._queue or self._busy):
            self.passed_fds.arrive(fds)
        else:
            self._queue.append(_FdsArrived(fds))
            self._wakeup.set()

    # -- requests --------------------------------------------------------------

    def _accept(self, request: Request) -> None:
        if not self.negotiated:
            self._answer_in_order(self._negotiate(request))
        elif request.oob:
            self._start_oob(request)
        else:
            self._queue.append(request)
            self._wakeup.set()

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
        """Queue an answer behind the in-band commands that came before it."""
        if self._queue or self._busy:
            self._queue.append(message)
            self._wakeup.set()
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
            task.add_done_callback(self._oob_tasks.discard)

    async def _serve_in_band(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                if self.closed:
                    return
                self._wakeup.clear()
                self._update_reading()
                await self._wakeup.wait()
            item = queue.popleft()
            if isinstance(item, dict):
                self.write(item)
            elif isinstance(item, _FdsArrived):
                self.passed_fds.arrive(item.fds)
            else:
                self._busy = True
                try:
                    await self._run(item)
                finally:
                    self._busy = False

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
            self.write(reply(result, request.has_id, request.id))
        finally:
            done_serving(token)

    # -- output ----------------------------------------------------------------

    def write(self, message: dict[str, object]) -> None:
        if self._transport is not None and not self.closed:
            try:
                payload = encode(message)
            except (TypeError, ValueError) as error:
                logger.error("unencodable QMP reply %r: %s", message, error)
                payload = encode(
                    error_reply(
                        GenericError(f"reply is not JSON: {error}"),
                        "id" in message,
                        message.get("id"),
                    )
                )
            self._transport.write(payload)

    @property
    def unsent_bytes(self) -> int:
        """Output accepted for this client but not yet taken by its socket."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def send_event(self, payload: bytes) -> None:
        transport = self._transport
        if transport is None or self.closed or not self.negotiated:
            return
        if transport.get_write_buffer_size() > self.server.event_backlog_bytes:
            self.dropped_events += 1  # bounded output for a client that does not read
            return
        transport.write(payload)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self.closed:
            return
        pause = (
            self._writing_paused or len(self._queue) >= self.server.max_queued_requests
        )
        if pause and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not pause and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks serving this client (its in-band worker, running oob commands)."""
        worker = [] if self._worker is None else [self._worker]
        return worker + list(self._oob_tasks)


class _FdsArrived:
    """Descriptors waiting in the in-band queue for the request they came with.

    The kernel tells which read brought descriptors, not at which byte: a read ends
    with the message that carried them, but may begin with earlier input. They are
    taken to come with the first request that begins in that read (or, when none
    does, the one it continues), since a client sends them with the start of a
    request. When an earlier request ends in the same read, the descriptors are
    offered from that request on; as they stay until taken, only a descriptor-taking
    command sent without descriptors just before could take them early.
    """

    __slots__ = ("fds",)

    def __init__(self, fds: list[int]) -> None:
        self.fds = fds
