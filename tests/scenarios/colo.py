"""COLO (capability x-colo): after the first full migration the source goes on as the
primary and the destination as the secondary, until x-colo-lost-heartbeat makes one
side go on alone.

What QEMU 7.2 shows here (observed on this machine):

- source events: setup, PASS 1, active, STOP, PASS 2, colo, RESUME; destination:
  active, colo, RESUME. query-migrate in colo is just the status on the source, the
  status and the address it listened on on the destination; both guests run;
- x-colo-lost-heartbeat on a side: STOP, MIGRATION completed, COLO_EXIT, RESUME;
  query-colo-status then shows mode none, last-mode the side's, reason request;
- the other side's stream breaking (failover, cancel, death of the peer) gives an
  immediate COLO_EXIT (secondary, error) on the secondary, whose status stays colo
  until its own x-colo-lost-heartbeat; the primary only notices at its next
  checkpoint;
- x-colo-lost-heartbeat outside COLO: "The feature 'colo' is not enabled".

Two things are left out on purpose. The COLO_EXIT reason of a side's own failover
is a race in QEMU, on either side (request or error, depending on whether its COLO
thread or the failover bottom half gets there first: both were seen here), so only
its mode is recorded; the reason of a secondary whose primary went away was always
error. And every scenario ends before the first periodic checkpoint
(x-checkpoint-delay stays at its 20 s default): QEMU 7.2 here, without colo-compare
and block replication, deadlocks its primary at the first checkpoint (its main loop
waits forever for the iothread lock, QMP no longer answers). Checkpoints are tested
on qapigen-vm alone, in tests/test_vm_colo.py.
"""

from __future__ import annotations

from qapigen_migration import events as migration_events
from qapigen_migration.types import MigrationCapability as Cap
from qapigen_migration.types import MigrationStatus as St

from qapigen_runtime.qmp import QMPConnectionError

from .flows import FINAL, start_with_events
from .session import EVENT_TIMEOUT, Run, ScenarioAborted, Side

SECONDARY_KILL_WAIT = 10.0
"""Seconds a killed secondary may take to be gone."""


async def colo_status(run: Run, label: str, side: Side) -> None:
    status = await side.qmp.query_colo_status()
    run.note(label, (status.mode.value, status.last_mode.value, status.reason.value))


async def colo_exit(run: Run, label: str, side: Side, *, reason: bool = True) -> None:
    """Wait for COLO_EXIT; record its mode (and reason, unless that is a race)."""
    try:
        event = await migration_events.wait_for(
            side.transport, migration_events.ColoExitEvent, None, EVENT_TIMEOUT
        )
    except TimeoutError:
        run.note(label, "timeout")
        raise ScenarioAborted(label) from None
    except QMPConnectionError:
        run.note(label, "disconnected")
        raise ScenarioAborted(label) from None
    run.note(
        label, (event.mode.value, event.reason.value if reason else "not compared")
    )


async def resumed(side: Side) -> None:
    """RESUME may trail the MIGRATION event it follows; its absence shows in the
    event sequence."""
    try:
        await side.transport.wait_for("RESUME", timeout=10.0)
    except (TimeoutError, QMPConnectionError):
        pass


async def enter_colo(run: Run) -> bool:
    """x-colo on both sides, migrate, wait until both are in colo and run."""
    src, dst = run.source, run.destination
    await start_with_events(run)
    await run.enable(src, Cap.X_COLO)
    await run.enable(dst, Cap.X_COLO)
    for side in (src, dst):
        await colo_status(run, f"{side.role} colo status before", side)
        await run.attempt(
            f"{side.role} lost-heartbeat before", side.qmp.x_colo_lost_heartbeat()
        )
    if not await run.attempt(
        "migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}")
    ):
        return False
    for side in (src, dst):
        reached = await run.wait_migration(
            f"{side.role} reached", side, St.COLO, *FINAL
        )
        if reached != St.COLO.value:
            return False
    await resumed(src)
    await resumed(dst)
    for side in (src, dst):
        await run.query(f"{side.role} in colo", side)
        await colo_status(run, f"{side.role} colo status in colo", side)
        await run.run_state(f"{side.role} run state in colo", side)
    return True


async def fail_over(run: Run, side: Side, *, reason: bool = True) -> None:
    """x-colo-lost-heartbeat on `side`; record how it ends COLO and what it shows."""
    role = side.role
    await run.attempt(f"{role} lost-heartbeat", side.qmp.x_colo_lost_heartbeat())
    await run.wait_migration(f"{role} final event", side, *FINAL)
    await resumed(side)
    await run.query(f"{role} after failover", side, settle=True)
    await colo_status(run, f"{role} colo status after failover", side)
    await run.run_state(f"{role} run state after failover", side)
    await run.attempt(f"{role} lost-heartbeat again", side.qmp.x_colo_lost_heartbeat())


async def colo_primary_failover(run: Run) -> None:
    """The primary fails over; the secondary sees its stream end, then fails over."""
    src, dst = run.source, run.destination
    if not await enter_colo(run):
        return
    await fail_over(run, src)
    await colo_exit(run, "source COLO_EXIT", src, reason=False)
    await colo_exit(run, "destination COLO_EXIT", dst)
    await run.query("destination after the primary left", dst)
    await colo_status(run, "destination colo status after the primary left", dst)
    await run.run_state("destination run state after the primary left", dst)
    await fail_over(run, dst)


async def colo_secondary_failover(run: Run) -> None:
    """The secondary fails over; the primary, between checkpoints, does not notice
    until its own failover."""
    src, dst = run.source, run.destination
    if not await enter_colo(run):
        return
    await fail_over(run, dst)
    await colo_exit(run, "destination COLO_EXIT", dst, reason=False)
    await run.query("source after the secondary left", src)
    await colo_status(run, "source colo status after the secondary left", src)
    await fail_over(run, src)
    await colo_exit(run, "source COLO_EXIT", src, reason=False)


async def colo_cancel(run: Run) -> None:
    """migrate_cancel in colo: the status stays colo, but the stream is cut."""
    src, dst = run.source, run.destination
    if not await enter_colo(run):
        return
    await run.attempt("migrate_cancel", src.qmp.migrate_cancel())
    await colo_exit(run, "destination COLO_EXIT", dst)
    await run.query("source after cancel", src)
    await colo_status(run, "source colo status after cancel", src)
    await run.run_state("source run state after cancel", src)
    await fail_over(run, src)
    await colo_exit(run, "source COLO_EXIT", src, reason=False)
    await fail_over(run, dst)


async def colo_secondary_killed(run: Run) -> None:
    """The secondary process dies: the primary stays in colo, its guest running,
    until x-colo-lost-heartbeat."""
    src, dst = run.source, run.destination
    if not await enter_colo(run):
        return
    dst.peer.process.kill()
    await run.exit_status("destination exit", dst, SECONDARY_KILL_WAIT)
    await run.query("source after the secondary died", src)
    await colo_status(run, "source colo status after the secondary died", src)
    await run.run_state("source run state after the secondary died", src)
    await fail_over(run, src)
    await colo_exit(run, "source COLO_EXIT", src, reason=False)
