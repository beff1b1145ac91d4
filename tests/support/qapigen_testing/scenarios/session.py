"""The scenario's view of a pair: typed clients on each side, every event recorded.

A scenario waits for events (``wait_for`` consumes them), yet the observation needs
all of them in order: `RecordingTransport` keeps a full log next to the consumable
queue. Commands go through the generated typed clients: `qapigen_migration` for the
migration schema, `qapigen_vm_qmp` (the VM schema, a superset) for the run state,
which migration.json does not define.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from qapigen_migration import commands as migration_commands
from qapigen_migration import events as migration_events
from qapigen_migration.types import (
    MigrationCapability,
    MigrationCapabilityStatus,
    MigrationStatus,
)
from qapigen_runtime.qmp import (
    QMPClient,
    QMPCommandError,
    QMPConnectionError,
    QMPEvent,
)
from qapigen_runtime.qmp.transport import EventPredicate
from qapigen_testing.peers import Pair, Peer
from qapigen_vm_qmp import commands as vm_commands

from .observation import (
    OK,
    ErrorSeen,
    MigrationView,
    Observation,
    member_names,
    normalize_text,
)

EVENT_TIMEOUT = 60.0
"""Seconds a scenario waits for an event before it gives up (and records that)."""

SETTLE_TIMEOUT = 3.0
"""Seconds a transient run state may take to settle (see `Run.run_state`)."""


class RecordingTransport:
    """An `AsyncTransport` over a QMPClient that also logs every event it receives."""

    def __init__(self, client: QMPClient) -> None:
        self.client = client
        self.log: list[QMPEvent] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.client.events():
            self.log.append(event)
            self._changed.set()
        self._changed.set()  # the connection closed: waiters must look again

    async def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
    ) -> object:
        return await self.client.execute(name, arguments, oob=oob, fds=fds)

    async def events(self) -> AsyncIterator[QMPEvent]:
        """The events received so far, all of them (the log consumes nothing)."""
        for event in list(self.log):
            yield event

    async def wait_for(
        self,
        name: str,
        predicate: EventPredicate | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                for index, event in enumerate(self.log):
                    if index in self._taken or event.name != name:
                        continue
                    if predicate is None or predicate(event):
                        self._taken.add(index)
                        return event
                if self._pump.done():
                    raise QMPConnectionError(f"connection closed before {name}")
                await self._changed.wait()

    def clear_events(self) -> list[QMPEvent]:
        """Consume and return the events not consumed yet (the log keeps them)."""
        fresh = [i for i in range(len(self.log)) if i not in self._taken]
        self._taken.update(fresh)
        return [self.log[i] for i in fresh]

    async def close(self) -> None:
        await self.client.close()
        try:
            await asyncio.wait_for(self._pump, 5.0)
        except (TimeoutError, QMPConnectionError):
            self._pump.cancel()


class ScenarioAborted(Exception):
    """A step could not go on (an awaited event never came); already recorded."""


class Side:
    """One peer as a scenario drives it."""

    def __init__(self, role: str, peer: Peer, transport: RecordingTransport) -> None:
        self.role = role
        self.peer = peer
        self.transport = transport
        self.qmp = migration_commands.AsyncClient(transport)
        self.machine = vm_commands.AsyncClient(transport)


class Run:
    """A scenario in progress: both sides connected, an observation being filled.

    `replacements` maps run-specific text (this pair's port and directory) to
    placeholders, so error texts from two pairs compare equal.
    """

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.observation = Observation()
        self.replacements = {
            str(pair.site.directory): "DIR",
            f":{pair.site.port}": ":PORT",
        }
        self._sides: list[Side] = []

    @property
    def source(self) -> Side:
        return self._sides[0]

    @property
    def destination(self) -> Side:
        return self._sides[1]

    async def __aenter__(self) -> Run:
        for role, peer in (
            ("source", self.pair.source),
            ("destination", self.pair.destination),
        ):
            client = await peer.connect()
            self._sides.append(Side(role, peer, RecordingTransport(client)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for side in self._sides:
            await side.transport.close()
        self.observation.finish(
            self.source.transport.log, self.destination.transport.log
        )

    def note(self, label: str, value: object) -> None:
        self.observation.note(label, value)

    def text(self, value: str) -> str:
        return normalize_text(value, self.replacements)

    async def attempt(self, label: str, action: Awaitable[object]) -> bool:
        """Run a command; record `OK` or its error. True when it succeeded."""
        try:
            await action
        except QMPCommandError as error:
            self.note(label, ErrorSeen.of(error, self.replacements))
            return False
        self.note(label, OK)
        return True

    async def query(
        self, label: str, side: Side, settle: bool = False
    ) -> MigrationView:
        """Record `side`'s query-migrate: status, schema members, error-desc.

        With `settle`, a completed destination that still reports the address it
        listened on is asked again (up to SETTLE_TIMEOUT): QEMU drops
        socket-address in a cleanup that may run after MIGRATION completed (after
        a postcopy, usually later). An address that stays is still recorded.
        """
        info = await side.qmp.query_migrate()
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT
        while (
            settle
            and info.status is MigrationStatus.COMPLETED
            and info.socket_address
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.02)
            info = await side.qmp.query_migrate()
        view = MigrationView(
            status=None if info.status is None else info.status.value,
            members=member_names(info),
            error_desc=None if info.error_desc is None else self.text(info.error_desc),
        )
        self.note(label, view)
        return view

    async def run_state(self, label: str, side: Side, settle: bool = False) -> None:
        """Record `side`'s query-status: run state and whether the vCPUs run.

        With `settle`, a transient ``finish-migrate`` is waited out (up to
        SETTLE_TIMEOUT): QEMU's source announces MIGRATION completed and only then,
        in the migration thread's cleanup, moves to ``postmigrate``, so a query
        right after the event races with it. A state that stays is still recorded.
        """
        status = await side.machine.query_status()
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT
        while (
            settle
            and status.status.value == "finish-migrate"
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.02)
            status = await side.machine.query_status()
        self.note(label, (status.status.value, status.running))

    async def wait_migration(
        self, label: str, side: Side, *statuses: MigrationStatus
    ) -> str:
        """Wait for a MIGRATION event with one of `statuses`; record which came.

        Gives up (recording "timeout") after EVENT_TIMEOUT seconds, or when the peer
        went away, and aborts the scenario.
        """
        wanted = set(statuses)
        try:
            event = await migration_events.wait_for(
                side.transport,
                migration_events.MigrationEvent,
                lambda e: e.status in wanted,
                EVENT_TIMEOUT,
            )
        except TimeoutError:
            self.note(label, "timeout")
            raise ScenarioAborted(label) from None
        except QMPConnectionError:
            self.note(label, "disconnected")
            raise ScenarioAborted(label) from None
        self.note(label, event.status.value)
        return event.status.value

    async def wait_until(
        self, side: Side, *statuses: MigrationStatus, timeout: float = EVENT_TIMEOUT
    ) -> str:
        """Poll query-migrate until its status is one of `statuses` (unrecorded)."""
        wanted = {s.value for s in statuses}
        async with asyncio.timeout(timeout):
            while True:
                info = await side.qmp.query_migrate()
                if info.status is not None and info.status.value in wanted:
                    return info.status.value
                await asyncio.sleep(0.02)

    async def exit_status(self, label: str, side: Side, timeout: float) -> None:
        """Record the peer's exit status after up to `timeout` s ("running" if none)."""
        status = await side.peer.exit_status(timeout)
        self.note(label, "running" if status is None else status)

    async def enable(self, side: Side, *capabilities: MigrationCapability) -> None:
        """Turn capabilities on (a failure raises: setups are not what is compared)."""
        await side.qmp.migrate_set_capabilities(
            capabilities=[
                MigrationCapabilityStatus(capability=c, state=True)
                for c in capabilities
            ]
        )

    async def capabilities(self, label: str, side: Side) -> None:
        """Record the schema's capabilities that are on, and the reply's members."""
        reply = await side.qmp.query_migrate_capabilities()
        known = {c.value for c in MigrationCapability}
        self.note(
            label,
            (
                frozenset(
                    c.capability.value
                    for c in reply
                    if c.state and c.capability.value in known
                ),
                frozenset().union(*(member_names(c) for c in reply)),
            ),
        )

    async def parameters(self, label: str, side: Side) -> None:
        """Record the schema's parameters with their values."""
        reply = await side.qmp.query_migrate_parameters()
        wire = reply.to_wire()
        self.note(
            label,
            {key: value for key, value in wire.items() if key not in reply.extra},
        )


ScenarioBody = Callable[[Run], Awaitable[None]]
"""A scenario's steps: drives `Run`'s sides and records into its observation."""


async def observe(pair: Pair, scenario: ScenarioBody) -> Observation:
    """Run `scenario` on `pair`; an aborted scenario keeps what it recorded."""
    async with Run(pair) as run:
        try:
            await scenario(run)
        except ScenarioAborted:
            pass
        except QMPConnectionError:
            # A peer went away where the scenario did not expect it: the steps
            # missing from here on show where.
            run.note("connection lost", True)
    return run.observation
