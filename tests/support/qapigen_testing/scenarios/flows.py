"""Migrations that run: precopy over tcp and unix, deferred incoming, pause before
switchover, validate-uuid. Each records statuses, run states, reply members and (at
the end, by `Run`) the events of both sides."""

from __future__ import annotations

import asyncio

from qapigen_migration.types import MigrateSetParameters, SocketAddress_Inet
from qapigen_migration.types import MigrationCapability as Cap
from qapigen_migration.types import MigrationStatus as St
from qapigen_runtime.qmp import QMPConnectionError

from .session import Run, ScenarioAborted

FINAL = (St.COMPLETED, St.FAILED, St.CANCELLED)

DESTINATION_EXIT_TIMEOUT = 30.0
"""Seconds a destination gets to exit after its incoming migration failed."""


async def start_with_events(run: Run) -> None:
    """Both sides emit MIGRATION/MIGRATION_PASS only with the events capability."""
    await run.enable(run.source, Cap.EVENTS)
    await run.enable(run.destination, Cap.EVENTS)


async def wait_resume(run: Run) -> None:
    """The destination's RESUME (autostart) may trail its MIGRATION completed."""
    try:
        await run.destination.transport.wait_for("RESUME", timeout=10.0)
    except (TimeoutError, QMPConnectionError):
        pass  # its absence shows in the event sequence


async def finish_completed(run: Run) -> None:
    """Wait for both sides to finish, then record their final views."""
    src, dst = run.source, run.destination
    await run.wait_migration("source final event", src, *FINAL)
    await run.wait_migration("destination final event", dst, *FINAL)
    await wait_resume(run)
    await run.query("source after", src)
    await run.query("destination after", dst, settle=True)
    await run.run_state("source run state after", src, settle=True)
    await run.run_state("destination run state after", dst)


async def precopy(run: Run, uri: str) -> None:
    src, dst = run.source, run.destination
    await start_with_events(run)
    await run.query("source before", src)
    await run.query("destination before", dst)
    await run.run_state("source run state before", src)
    await run.run_state("destination run state before", dst)
    if not await run.attempt("migrate", src.qmp.migrate(uri=uri)):
        return
    await finish_completed(run)
    # 7.2 refuses to migrate a guest that a completed migration left paused.
    await run.attempt("migrate after completion", src.qmp.migrate(uri=uri))
    await run.query("source after second migrate", src)


async def precopy_tcp(run: Run) -> None:
    await precopy(run, f"tcp:127.0.0.1:{run.pair.site.port}")


async def precopy_unix(run: Run) -> None:
    await precopy(run, f"unix:{run.pair.site.directory / 'migration.sock'}")


async def precopy_quiet(run: Run) -> None:
    """Without the events capability no MIGRATION(_PASS) event is sent, on either
    side; STOP and RESUME still are. The end is found by polling."""
    src, dst = run.source, run.destination
    uri = f"tcp:127.0.0.1:{run.pair.site.port}"
    if not await run.attempt("migrate", src.qmp.migrate(uri=uri)):
        return
    run.note("source final status", await run.wait_until(src, *FINAL))
    run.note("destination final status", await run.wait_until(dst, *FINAL))
    await wait_resume(run)
    await run.query("source after", src)
    await run.query("destination after", dst)
    await run.run_state("source run state after", src)
    await run.run_state("destination run state after", dst)


async def deferred_precopy_with(run: Run, *capabilities: Cap) -> None:
    """Capabilities on both sides before the destination listens (multifd must be
    set then), through -incoming defer; then a precopy to the port it reports."""
    src, dst = run.source, run.destination
    await start_with_events(run)
    await run.enable(src, *capabilities)
    await run.enable(dst, *capabilities)
    await run.capabilities("source capabilities", src)
    await run.capabilities("destination capabilities", dst)
    port = run.pair.site.port
    if not await run.attempt(
        "migrate-incoming", dst.qmp.migrate_incoming(uri=f"tcp:127.0.0.1:{port}")
    ):
        return
    if not await run.attempt("migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{port}")):
        return
    await finish_completed(run)


async def precopy_xbzrle(run: Run) -> None:
    await deferred_precopy_with(run, Cap.XBZRLE)


async def precopy_multifd(run: Run) -> None:
    await deferred_precopy_with(run, Cap.MULTIFD)


async def incoming_defer(run: Run) -> None:
    """`-incoming defer`, then migrate-incoming on port 0: the destination reports the
    port it got in socket-address, and the source migrates there."""
    src, dst = run.source, run.destination
    await start_with_events(run)
    await run.query("destination deferred", dst)
    await run.run_state("destination run state deferred", dst)
    await run.attempt(
        "migrate-incoming defer again", dst.qmp.migrate_incoming(uri="defer")
    )
    await run.attempt(
        "migrate-incoming bad scheme", dst.qmp.migrate_incoming(uri="foo:bar")
    )
    if not await run.attempt(
        "migrate-incoming", dst.qmp.migrate_incoming(uri="tcp:127.0.0.1:0")
    ):
        return
    await run.query("destination listening", dst)
    await run.attempt(
        "migrate-incoming again",
        dst.qmp.migrate_incoming(uri=f"tcp:127.0.0.1:{run.pair.site.port}"),
    )
    info = await dst.qmp.query_migrate()
    addresses = info.socket_address or []
    ports = [a.port for a in addresses if isinstance(a, SocketAddress_Inet)]
    run.note("destination inet addresses", len(ports))
    if not ports:
        raise ScenarioAborted("no port to migrate to")
    # The real port is run-specific: it must not leak into error texts unreplaced.
    run.replacements[f":{ports[0]}"] = ":PORT"
    if not await run.attempt(
        "migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{ports[0]}")
    ):
        return
    await finish_completed(run)


async def pause_before_switchover(run: Run) -> None:
    """pre-switchover holds the migration until migrate-continue names that state."""
    src, dst = run.source, run.destination
    await start_with_events(run)
    await run.enable(src, Cap.PAUSE_BEFORE_SWITCHOVER)
    if not await run.attempt(
        "migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}")
    ):
        return
    await run.wait_migration("source paused", src, St.PRE_SWITCHOVER, *FINAL)
    await run.query("source at pre-switchover", src)
    await run.run_state("source run state at pre-switchover", src)
    await run.query("destination at pre-switchover", dst)
    await run.run_state("destination run state at pre-switchover", dst)
    await run.attempt(
        "migrate-continue wrong state", src.qmp.migrate_continue(state=St.ACTIVE)
    )
    await run.attempt(
        "migrate while paused",
        src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}"),
    )
    await run.attempt(
        "migrate-continue", src.qmp.migrate_continue(state=St.PRE_SWITCHOVER)
    )
    await finish_completed(run)


async def cancel_at_pre_switchover(run: Run) -> None:
    """A cancel releases a migration held at pre-switchover: the source ends
    cancelled and its guest runs again; the destination fails and exits."""
    src, dst = run.source, run.destination
    await start_with_events(run)
    await run.enable(src, Cap.PAUSE_BEFORE_SWITCHOVER)
    if not await run.attempt(
        "migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}")
    ):
        return
    paused = await run.wait_migration("source paused", src, St.PRE_SWITCHOVER, *FINAL)
    if paused != St.PRE_SWITCHOVER.value:
        return
    # QEMU's cancel wakes the paused migration thread before it claims the state:
    # when the thread wins, the source passes through "device" on its way to
    # "cancelling". Which one wins is a race, so that step is not compared.
    run.observation.racy.append(
        ("MIGRATION pre-switchover", "MIGRATION device", "MIGRATION cancelling")
    )
    await run.attempt("migrate_cancel", src.qmp.migrate_cancel())
    await run.wait_migration("source final event", src, *FINAL)
    try:  # the guest resumes after the cancel's cleanup, possibly after the event
        await src.transport.wait_for("RESUME", timeout=10.0)
    except (TimeoutError, QMPConnectionError):
        pass  # its absence shows in the event sequence
    await run.exit_status("destination exit", dst, DESTINATION_EXIT_TIMEOUT)
    await run.query("source after", src)
    await run.run_state("source run state after", src)


async def postcopy(run: Run) -> None:
    """Precopy crawls until migrate-start-postcopy switches to postcopy, which the
    source finishes at full speed (max-postcopy-bandwidth 0 is unlimited)."""
    src, dst = run.source, run.destination
    await run.enable(src, Cap.POSTCOPY_RAM)
    await run.enable(dst, Cap.POSTCOPY_RAM)
    if not await start_crawling_migration(run):
        return
    await run.attempt("migrate-start-postcopy", src.qmp.migrate_start_postcopy())
    await run.wait_migration("source postcopy", src, St.POSTCOPY_ACTIVE, *FINAL)
    await finish_completed(run)
    await run.attempt(
        "migrate-start-postcopy after completion", src.qmp.migrate_start_postcopy()
    )


async def validate_uuid_match(run: Run) -> None:
    """Equal UUIDs: validate-uuid lets the migration complete."""
    await start_with_events(run)
    await run.enable(run.source, Cap.VALIDATE_UUID)
    if not await run.attempt(
        "migrate", run.source.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}")
    ):
        return
    await finish_completed(run)


PEER_CLOSED = "PEER-CLOSED"

PEER_CLOSED_TEXTS = {
    "Connection reset by peer": PEER_CLOSED,
    "Broken pipe": PEER_CLOSED,
}
"""Whether a write to a socket the peer closed fails with ECONNRESET or EPIPE depends
on whether the peer's RST arrived before the write: both mean "the peer closed"."""


async def validate_uuid_mismatch(run: Run) -> None:
    """Different UUIDs: the destination refuses the stream and exits with status 1;
    the source fails when its next write finds the connection closed.

    The migration crawls (see `start_crawling_migration`) so the source is still
    iterating when the destination gives up: on a fast link the source may instead
    have stopped the guest for completion first (then it fails there and resumes
    the guest), and which of the two happens is a race on QEMU too.
    """
    src, dst = run.source, run.destination
    run.replacements.update(PEER_CLOSED_TEXTS)
    await run.enable(src, Cap.VALIDATE_UUID)
    if await start_crawling_migration(run):
        await run.wait_migration("source final event", src, *FINAL)
    await run.exit_status("destination exit", dst, DESTINATION_EXIT_TIMEOUT)
    await run.query("source after", src)
    await run.run_state("source run state after", src)


CRAWL_BANDWIDTH = 16 << 10
"""Bytes per second that keep a 64 MiB idle guest's migration active for seconds
(a zero page costs 9 bytes on the wire: 16384 of them take 9 s at this rate)."""


async def start_crawling_migration(run: Run) -> bool:
    """Start a migration slow enough to act on while it is active; False when it
    did not get there (refused, or already over: then the scenario cannot go on)."""
    src = run.source
    await start_with_events(run)
    await src.qmp.migrate_set_parameters(
        MigrateSetParameters(max_bandwidth=CRAWL_BANDWIDTH)
    )
    if not await run.attempt(
        "migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}")
    ):
        return False
    reached = await run.wait_migration("source reached", src, St.ACTIVE, *FINAL)
    return reached == St.ACTIVE.value


COMPLETION_SETTLE = 0.5
"""Seconds between a destination's completed event and probing its closed port."""

EXTRA_CONNECTION_WAIT = 3.0
"""Seconds a second connection to a destination waits to be closed."""


async def extra_connection(run: Run, label: str) -> None:
    """Connect to the destination's port as a second source would; record whether
    the connection is refused, closed at once, or left open."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", run.pair.site.port)
    except ConnectionRefusedError:
        run.note(label, "refused")
        return
    try:
        data = await asyncio.wait_for(reader.read(1), EXTRA_CONNECTION_WAIT)
        run.note(label, "closed" if data == b"" else "answered")
    except TimeoutError:
        run.note(label, "left open")
    except ConnectionResetError:
        run.note(label, "closed")
    finally:
        writer.close()


async def extra_connection_while_loading(run: Run) -> None:
    """A second source connecting to a destination that is loading: accepted and
    closed at once ("Extra incoming migration connection; ignoring"), the migration
    goes on; once it has completed, the port is closed."""
    src, dst = run.source, run.destination
    if not await start_crawling_migration(run):
        return
    await extra_connection(run, "extra connection while active")
    await run.query("destination after an extra connection", dst)
    await src.qmp.migrate_set_parameters(MigrateSetParameters(max_bandwidth=1 << 40))
    await run.wait_migration("source final event", src, *FINAL)
    await run.wait_migration("destination final event", dst, *FINAL)
    # QEMU closes its listener just after it announces completed: give it the moment
    await asyncio.sleep(COMPLETION_SETTLE)
    await extra_connection(run, "extra connection after completion")
