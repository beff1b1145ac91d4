"""Multifd with more than the default two channels, through ``-incoming defer``.

The destination waits for as many connections as its own multifd-channels says, so
both sides get the same count before it listens (QEMU's multifd/tcp qtests use 16;
here 4, enough to be more than the default on a 2-core machine).
"""

from __future__ import annotations

from qapigen_migration.types import MigrateSetParameters
from qapigen_migration.types import MigrationCapability as Cap

from .flows import deferred_precopy_with
from .session import Run

CHANNELS = 4


async def multifd_4_defer(run: Run) -> None:
    """multifd-channels 4 on both sides, read back, then a deferred precopy."""
    for side in (run.source, run.destination):
        await run.attempt(
            f"{side.role} multifd-channels {CHANNELS}",
            side.qmp.migrate_set_parameters(
                MigrateSetParameters(multifd_channels=CHANNELS)
            ),
        )
        parameters = await side.qmp.query_migrate_parameters()
        run.note(f"{side.role} multifd-channels", parameters.multifd_channels)
    await deferred_precopy_with(run, Cap.MULTIFD)
