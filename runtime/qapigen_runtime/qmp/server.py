"""An asyncio QMP server that serves a `Dispatcher` the way QEMU's monitor does.

Each connection starts in negotiation mode (only ``qmp_capabilities``), then runs
in-band commands one at a time in order, and ``exec-oob`` commands at once when the
client enabled ``oob``. Input is cut and parsed like QEMU does (json_stream) and bad
input is answered with QEMU's texts; one client's bad input, disconnect or unread
output never affects another client: each connection works within a budget
(see :mod:`.session`), and there is a limit on connections.

On unix sockets the server also receives the file descriptors clients pass with
SCM_RIGHTS (``getfd``): see :mod:`.passed_fds` for QEMU's rules it follows and
`take_passed_fd` for how a command handler gets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from .address import Address
from .errors import CommandNotFound
from .events import NO_TIMESTAMP, QMPEvent, Timestamp
from .json_stream import MAX_NESTING_DEPTH
from .passed_fds import bind_unix_listener
from .protocol import (
    ALREADY_NEGOTIATED,
    OOB,
    Greeting,
    Request,
    encode,
    qemu_version,
)
from .session import PASSED_FD_COST, QMPSession

__all__ = [
    "DEFAULT_CONNECTION_BUDGET",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_VALUE_SIZE",
    "PASSED_FD_COST",
    "Dispatcher",
    "EventEncoder",
    "QMPServer",
    "QMPSession",
]

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
        """Run `name`; return the wire ``return`` value (`protocol.NO_REPLY` for a
        command that gets none) or raise QMPCommandError."""
        ...


class EventEncoder(Protocol):
    """How a server writes typed events under its `-compat` output policy: a
    generated package's `events.event_output(policy)` implements this."""

    def hides(self, name: str) -> bool:
        """Whether event `name` is not sent at all."""
        ...

    def message(self, event: Any) -> QMPEvent | None:
        """The QMP message of typed event `event`, or None when it is not sent."""
        ...


DEFAULT_CONNECTION_BUDGET = 1024 * 1024
"""Bytes one connection may hold before the server stops reading from it."""

DEFAULT_MAX_VALUE_SIZE = 1024 * 1024
"""Bytes the parser may hold for one unfinished input value (QEMU allows 64 MiB)."""

DEFAULT_MAX_CONNECTIONS = 100
"""Connections served at once; further ones are refused."""


class QMPServer:
    """Serves QMP on any number of unix and TCP listeners.

    Limits, per connection (see :mod:`.session`):

    - `max_depth` and `max_value_size` bound one input value: its nesting (QEMU's
      1024) and the bytes its tokens hold while it is read (QEMU allows 64 MiB, the
      default here is 1 MiB); a larger value is answered as QEMU answers one over
      its limit, "JSON token size limit exceeded";
    - the server stops reading from a client while `max_queued_requests` in-band
      requests wait (QEMU's 8), or while the client holds more than
      `connection_budget` bytes: replies it has not taken, work queued for it, and
      descriptors it passed (`PASSED_FD_COST` bytes each);
    - events are dropped (and counted) for a client whose unsent output exceeds
      `event_backlog_bytes`.

    At most `max_connections` clients are served at once; one more gets an error
    message ("too many QMP connections") instead of the greeting, and is closed.

    `events` writes typed events (`send`) under the server's `-compat` output
    policy, and says which events `emit` leaves unsent; give the package's
    `events.event_output(policy)` with the policy its dispatcher has.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        version: dict[str, object] | None = None,
        capabilities: Sequence[str] = (OOB,),
        max_depth: int = MAX_NESTING_DEPTH,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        max_queued_requests: int = 8,
        connection_budget: int = DEFAULT_CONNECTION_BUDGET,
        event_backlog_bytes: int = 1024 * 1024,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        serialize_commands: bool = True,
        events: EventEncoder | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.events = events
        self.greeting = Greeting(
            qemu_version(7, 2, 0, "qapigen") if version is None else version,
            tuple(capabilities),
        )
        self.max_depth = max_depth
        self.max_value_size = max_value_size
        self.max_queued_requests = max_queued_requests
        self.connection_budget = connection_budget
        self.event_backlog_bytes = event_backlog_bytes
        self.max_connections = max_connections
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

    def emit(
        self,
        name: str,
        data: dict[str, object] | None = None,
        stamp: Timestamp = NO_TIMESTAMP,
    ) -> QMPEvent | None:
        """Send event `name` with `data` as given to every negotiated client, stamped
        with `stamp` (now when it has none); return it, or None when the server's
        `events` policy hides the event (`send` also leaves hidden members out of a
        typed event's data)."""
        if self.events is not None and self.events.hides(name):
            return None
        event = QMPEvent.stamped(name, {} if data is None else data, stamp)
        self.broadcast(event)
        return event

    def send(self, event: object) -> QMPEvent | None:
        """Send typed event `event` (an instance of a generated event class) to every
        negotiated client, as the server's `events` encoder writes it: None when the
        policy hides the event. Without an encoder, this is an error."""
        if self.events is None:
            raise TypeError("QMPServer.send needs the server's events encoder")
        message = self.events.message(event)
        if message is not None:
            self.broadcast(message)
        return message

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
