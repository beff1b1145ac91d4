"""Postcopy paused and recovered: migrate-pause on the source, migrate-recover on the
destination, migrate resume=true, then completion (QEMU's postcopy/recovery qtest);
and the destination's postcopy-blocktime.

Checked on a real QEMU 7.2 pair against qapigen-vm with the same observations: the
events of both sides (destination: postcopy-paused, setup, postcopy-recover,
postcopy-active, completed), the errors of migrate-recover on a source and of
migrate-pause while paused, and the run states at the end. The destination's view
after completion is not recorded: whether QEMU still shows its socket-address then
depends on timing.
"""

from __future__ import annotations

import asyncio

from qapigen_migration.types import MigrateSetParameters
from qapigen_migration.types import MigrationCapability as Cap
from qapigen_migration.types import MigrationStatus as St
from qapigen_testing.peers import free_port

from .flows import FINAL, start_crawling_migration, wait_resume
from .session import Run

# Slow enough that postcopy is still running when the pause comes (as the qtest).
POSTCOPY_CRAWL = 4096
SETTLE = 0.5  # seconds


async def reach_postcopy(run: Run) -> bool:
    """Both sides in postcopy-active, crawling, the destination guest running; False
    when the migration did not get to active (the scenario cannot go on)."""
    src, dst = run.source, run.destination
    await run.enable(src, Cap.POSTCOPY_RAM)
    await run.enable(dst, Cap.POSTCOPY_RAM)
    await src.qmp.migrate_set_parameters(
        MigrateSetParameters(max_postcopy_bandwidth=POSTCOPY_CRAWL)
    )
    if not await start_crawling_migration(run):
        return False
    await run.attempt("migrate-start-postcopy", src.qmp.migrate_start_postcopy())
    await run.wait_migration("source postcopy", src, St.POSTCOPY_ACTIVE, *FINAL)
    await run.wait_migration("destination postcopy", dst, St.POSTCOPY_ACTIVE, *FINAL)
    # Pausing before the destination runs the guest would kill it for good.
    await asyncio.sleep(SETTLE)
    return True


async def postcopy_recovery(run: Run) -> None:
    src, dst = run.source, run.destination
    if not await reach_postcopy(run):
        return
    await run.attempt("migrate-pause", src.qmp.migrate_pause())
    await run.wait_migration("source paused", src, St.POSTCOPY_PAUSED, *FINAL)
    await run.wait_migration("destination paused", dst, St.POSTCOPY_PAUSED, *FINAL)
    await run.query("source paused view", src)
    await run.query("destination paused view", dst)
    await run.attempt(
        "migrate-recover on the source",
        src.qmp.migrate_recover(uri="tcp:127.0.0.1:0"),
    )
    uri = f"tcp:127.0.0.1:{free_port()}"
    await run.attempt("migrate-recover", dst.qmp.migrate_recover(uri=uri))
    await run.query("destination after migrate-recover", dst)
    await run.attempt("migrate-pause while paused", src.qmp.migrate_pause())
    await src.qmp.migrate_set_parameters(MigrateSetParameters(max_postcopy_bandwidth=0))
    await run.attempt("migrate resume", src.qmp.migrate(uri=uri, resume=True))
    await run.wait_migration("source final event", src, *FINAL)
    await run.wait_migration("destination final event", dst, *FINAL)
    await wait_resume(run)
    await run.query("source after", src)
    await run.run_state("source run state after", src, settle=True)
    await run.run_state("destination run state after", dst)


async def postcopy_blocktime(run: Run) -> None:
    """postcopy-blocktime on the destination: its query-migrate shows
    postcopy-blocktime and postcopy-vcpu-blocktime once completed, not before."""
    src, dst = run.source, run.destination
    await run.enable(src, Cap.POSTCOPY_RAM)
    await run.enable(dst, Cap.POSTCOPY_RAM, Cap.POSTCOPY_BLOCKTIME)
    if not await start_crawling_migration(run):
        return
    await run.query("destination during precopy", dst)
    await run.attempt("migrate-start-postcopy", src.qmp.migrate_start_postcopy())
    await run.wait_migration("destination postcopy", dst, St.POSTCOPY_ACTIVE, *FINAL)
    await run.query("destination during postcopy", dst)
    await run.wait_migration("source final event", src, *FINAL)
    await run.wait_migration("destination final event", dst, *FINAL)
    await wait_resume(run)
    # QEMU drops its socket-address a moment after a postcopy completes
    await asyncio.sleep(SETTLE)
    await run.query("destination after", dst)
