"""Migrations that do not complete: commands during an active migration, cancel, a
destination nobody listens on, a URI with an unknown scheme."""

from __future__ import annotations

from qapigen_migration.types import MigrateSetParameters, MigrationCapabilityStatus
from qapigen_migration.types import MigrationCapability as Cap
from qapigen_migration.types import MigrationStatus as St

from .flows import (
    DESTINATION_EXIT_TIMEOUT,
    FINAL,
    start_crawling_migration,
    start_with_events,
)
from .session import Run


async def cancel_and_finish(run: Run) -> None:
    """Cancel; the source ends cancelled and running, the destination fails and
    exits with status 1."""
    src, dst = run.source, run.destination
    await run.attempt("migrate_cancel", src.qmp.migrate_cancel())
    await run.wait_migration("source final event", src, *FINAL)
    await run.exit_status("destination exit", dst, DESTINATION_EXIT_TIMEOUT)
    await run.query("source after", src)
    await run.run_state("source run state after", src)
    await run.attempt("migrate_cancel again", src.qmp.migrate_cancel())


async def commands_while_active(run: Run) -> None:
    src = run.source
    if not await start_crawling_migration(run):
        return
    await run.query("source active", src)
    await run.run_state("source run state active", src)
    await run.attempt(
        "second migrate",
        src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}"),
    )
    await run.attempt(
        "migrate-set-capabilities while active",
        src.qmp.migrate_set_capabilities(
            capabilities=[MigrationCapabilityStatus(capability=Cap.XBZRLE, state=True)]
        ),
    )
    await run.attempt(
        "migrate-set-parameters while active",
        src.qmp.migrate_set_parameters(MigrateSetParameters(downtime_limit=400)),
    )
    await run.attempt(
        "migrate-continue while active",
        src.qmp.migrate_continue(state=St.PRE_SWITCHOVER),
    )
    await run.attempt(
        "migrate-start-postcopy while active", src.qmp.migrate_start_postcopy()
    )
    await run.attempt("migrate-pause while active", src.qmp.migrate_pause())
    await cancel_and_finish(run)


async def cancel_active(run: Run) -> None:
    if not await start_crawling_migration(run):
        return
    await cancel_and_finish(run)


async def bad_destination(run: Run) -> None:
    """Connection refused on tcp, a missing socket on unix: the migrate command
    succeeds, the migration fails, the source keeps running."""
    src = run.source
    await start_with_events(run)
    for label, uri in (
        ("tcp", f"tcp:127.0.0.1:{run.pair.site.port}"),
        ("unix", f"unix:{run.pair.site.directory / 'nobody.sock'}"),
    ):
        if not await run.attempt(f"migrate {label}", src.qmp.migrate(uri=uri)):
            continue
        await run.wait_migration(f"source final event {label}", src, *FINAL)
        await run.query(f"source after {label}", src)
        await run.run_state(f"source run state after {label}", src)


async def bad_uri(run: Run) -> None:
    """An unknown scheme is refused by the command, and the status becomes failed."""
    src = run.source
    await start_with_events(run)
    await run.attempt("migrate foo:bar", src.qmp.migrate(uri="foo:bar"))
    await run.query("source after foo:bar", src)
    await run.run_state("source run state after foo:bar", src)
    await run.attempt("migrate empty", src.qmp.migrate(uri=""))
    await run.query("source after empty", src)
