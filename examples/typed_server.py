"""Serve QMP with the bindings generated from the bundled schema: a stand-in for QEMU's
migration monitor, the kind of double a test suite talks to instead of a real QEMU.

The server implements three commands by subclassing the generated
`CommandHandlerBase`; the dispatcher offers only those (query-commands lists them, the
others get QEMU's CommandNotFound) and checks every request as QEMU does, so the
handler only ever sees typed, valid arguments. A typed client then talks to it over a
unix socket, and a MIGRATION event is sent to it.

    python examples/typed_server.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from qapigen_migration.commands import (
    AsyncClient,
    CommandDispatcher,
    CommandHandlerBase,
)
from qapigen_migration.events import MigrationEvent, to_qmp_event, wait_for
from qapigen_migration.types import (
    MigrateSetParameters,
    MigrationInfo,
    MigrationParameters,
    MigrationStatus,
)
from qapigen_runtime.qmp import CommandNotFound, GenericError, QMPClient, QMPServer


class MigrationMonitor(CommandHandlerBase):
    """Keeps two parameters and a status; everything else is left out."""

    def __init__(self) -> None:
        self.parameters = MigrationParameters(downtime_limit=300, max_bandwidth=1 << 27)
        self.status = MigrationStatus.NONE

    async def query_migrate(self) -> MigrationInfo:
        return MigrationInfo(status=self.status)

    async def query_migrate_parameters(self) -> MigrationParameters:
        return self.parameters

    async def migrate_set_parameters(self, arguments: MigrateSetParameters, /) -> None:
        if arguments.downtime_limit is not None:
            if arguments.downtime_limit > 2000 * 1000:  # QEMU's own bound and words
                raise GenericError(
                    "Parameter 'downtime_limit' expects an integer in the range of"
                    " 0 to 2000000 milliseconds"
                )
            self.parameters.downtime_limit = arguments.downtime_limit
        if arguments.max_bandwidth is not None:
            self.parameters.max_bandwidth = arguments.max_bandwidth


async def main() -> None:
    monitor = MigrationMonitor()
    server = QMPServer(CommandDispatcher(monitor))
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "monitor.qmp")
        await server.listen(path)
        transport = QMPClient()
        await transport.connect(path)
        client = AsyncClient(transport)
        try:
            commands = await transport.execute("query-commands")
            assert isinstance(commands, list)
            offered = sorted(str(c["name"]) for c in commands if isinstance(c, dict))
            print("offered:", ", ".join(offered))

            await client.migrate_set_parameters(
                MigrateSetParameters(downtime_limit=250)
            )
            parameters = await client.query_migrate_parameters()
            print(f"downtime-limit is now {parameters.downtime_limit} ms")

            for call in (
                client.migrate_set_parameters(
                    MigrateSetParameters(downtime_limit=3_000_000)
                ),
                client.migrate_cancel(),  # not implemented by this monitor
            ):
                try:
                    await call
                except (GenericError, CommandNotFound) as error:
                    print(f"refused: {type(error).__name__}: {error.desc}")

            # the monitor's state changes; every client hears about it
            monitor.status = MigrationStatus.ACTIVE
            server.broadcast(to_qmp_event(MigrationEvent(status=monitor.status)))
            event = await wait_for(transport, MigrationEvent, timeout=5)
            print(
                f"event: MIGRATION {event.status.value} at {event.timestamp.datetime}"
            )
            info = await client.query_migrate()
            print(f"query-migrate: {info.to_wire()}")
        finally:
            await transport.close()
            await server.close()


if __name__ == "__main__":
    asyncio.run(main())
