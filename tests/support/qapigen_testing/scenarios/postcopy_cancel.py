"""migrate_cancel during postcopy, in each postcopy state, on both sides.

What a real QEMU 7.2 pair does (observed here, and what these scenarios compare):

- on the destination, migrate_cancel does nothing in any state (it only acts on an
  outgoing migration);
- on the source in postcopy-active: cancelling, then cancelled; the source guest
  stays stopped (run state postmigrate, no RESUME: its pages now live on the
  destination), so a new migrate is refused as after a completed one. The
  destination sees its stream cut: it goes postcopy-paused and keeps running
  (blocked on its missing pages), never completed, never exiting. It still accepts
  migrate-recover, but the source can no longer resume;
- on the source in postcopy-paused (after its own migrate-pause, or after the
  destination cut the connection) or in postcopy-recover: cancelling, and it stays
  cancelling (QEMU's migration thread sleeps on, waiting for a recovery that cancel
  never posts): resume is refused ("no paused migration"), a new migrate too
  ("in progress"), and each further migrate_cancel announces cancelling again.
  (In postcopy-recover, a cancel that lands before QEMU's migration thread has
  woken for the recovery ends the migration instead, as in postcopy-active: a race
  the scenario avoids by waiting; the VM always stays cancelling there.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

from qapigen_migration.types import MigrationStatus as St
from qapigen_testing.peers import free_port

from . import postcopy_recovery
from .flows import FINAL
from .session import Run, ScenarioAborted, Side

RECOVER_SETTLE = 0.5
"""Seconds between postcopy-recover and the cancel (see `cancel_recovering`)."""

PAUSE_SETTLE = 0.5
"""Seconds between both sides reporting postcopy-paused and what comes next: QEMU
7.2's migration thread announces the pause before it starts waiting in it, and a
cancel inside that window ends the migration cancelled instead of stuck cancelling
(seen once in parity runs)."""

STUCK_WATCH = 1.0
"""Seconds a cancelled paused migration is watched to stay cancelling, and a
destination to stay alive (QEMU's never change: any time shows it)."""


async def reach_postcopy(run: Run) -> None:
    """Both sides postcopy-active, the destination guest running."""
    if not await postcopy_recovery.reach_postcopy(run):
        raise ScenarioAborted("the migration did not get to active")


async def both_paused(run: Run) -> None:
    await run.wait_migration("source paused", run.source, St.POSTCOPY_PAUSED, *FINAL)
    await run.wait_migration(
        "destination paused", run.destination, St.POSTCOPY_PAUSED, *FINAL
    )
    await asyncio.sleep(PAUSE_SETTLE)


async def cancel_on_destination(run: Run, state: str) -> None:
    """The destination's migrate_cancel changes nothing."""
    dst = run.destination
    await run.attempt(
        f"destination migrate_cancel in {state}", dst.qmp.migrate_cancel()
    )
    await run.query(f"destination after its cancel in {state}", dst)


async def after_cancel(run: Run) -> None:
    """What is left on each side, and what can still be done."""
    src, dst = run.source, run.destination
    await run.query("source after cancel", src)
    await run.query("destination after cancel", dst)
    await run.run_state("source run state after cancel", src)
    await run.run_state("destination run state after cancel", dst)
    await run.exit_status("destination exit", dst, STUCK_WATCH)
    uri = f"tcp:127.0.0.1:{free_port()}"
    await run.attempt("migrate-recover after cancel", dst.qmp.migrate_recover(uri=uri))
    await run.attempt(
        "migrate resume after cancel", src.qmp.migrate(uri=uri, resume=True)
    )
    await run.attempt(
        "new migrate after cancel",
        src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}"),
    )
    await run.attempt("migrate-pause after cancel", src.qmp.migrate_pause())
    await run.query("destination after migrate-recover", dst)


async def cancel_postcopy_active(run: Run) -> None:
    """Source cancel in postcopy-active: cancelled; the destination pauses."""
    src, dst = run.source, run.destination
    await reach_postcopy(run)
    await cancel_on_destination(run, "postcopy-active")
    await run.attempt("migrate_cancel", src.qmp.migrate_cancel())
    await run.wait_migration("source final event", src, *FINAL)
    await run.wait_migration(
        "destination after the cut", dst, St.POSTCOPY_PAUSED, *FINAL
    )
    await after_cancel(run)
    await run.attempt("migrate_cancel again", src.qmp.migrate_cancel())
    await run.query("source at the end", src)
    await run.run_state("source run state at the end", src)


async def stays_cancelling(run: Run, src: Side) -> None:
    """A cancelled paused postcopy never leaves cancelling; each cancel says so."""
    await run.wait_migration("source cancel event", src, St.CANCELLING, *FINAL)
    await after_cancel(run)
    await run.attempt("migrate_cancel again", src.qmp.migrate_cancel())
    await run.wait_migration("source cancel event again", src, St.CANCELLING, *FINAL)
    await asyncio.sleep(STUCK_WATCH)
    await run.query("source at the end", src)
    await run.run_state("source run state at the end", src)


async def cancel_paused_by_source(run: Run) -> None:
    """migrate-pause on the source, then cancel there: stuck cancelling."""
    src = run.source
    await reach_postcopy(run)
    await run.attempt("migrate-pause", src.qmp.migrate_pause())
    await both_paused(run)
    await cancel_on_destination(run, "postcopy-paused")
    await run.attempt("migrate_cancel", src.qmp.migrate_cancel())
    await stays_cancelling(run, src)


async def cancel_paused_by_cut(run: Run) -> None:
    """The destination cuts the connection (its migrate-pause): the source pauses
    on a broken stream; a cancel then leaves it cancelling too."""
    src, dst = run.source, run.destination
    await reach_postcopy(run)
    await run.attempt("destination migrate-pause", dst.qmp.migrate_pause())
    await both_paused(run)
    await run.attempt("migrate_cancel", src.qmp.migrate_cancel())
    await stays_cancelling(run, src)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and reads them without ever
    answering: a source resuming there stays in postcopy-recover."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []

    def drain(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed
            accepted.append(conn)
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        # shutdown wakes the blocked accept (close alone does not on Linux)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()
        for conn in accepted:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        thread.join(5)


async def cancel_recovering(run: Run) -> None:
    """Resume towards a peer that never answers (postcopy-recover), then cancel:
    stuck cancelling, and the real destination stays paused."""
    src = run.source
    await reach_postcopy(run)
    await run.attempt("migrate-pause", src.qmp.migrate_pause())
    await both_paused(run)
    with silent_listener() as port:
        await run.attempt(
            "migrate resume to a silent peer",
            src.qmp.migrate(uri=f"tcp:127.0.0.1:{port}", resume=True),
        )
        await run.wait_migration(
            "source recovering", src, St.POSTCOPY_RECOVER, St.POSTCOPY_PAUSED, *FINAL
        )
        # QEMU's migrate command sets postcopy-recover, then wakes the migration
        # thread: a cancel that beats the thread ends the migration (cancelled,
        # postmigrate) instead of leaving it cancelling. Let the thread get into
        # its handshake with the silent peer first.
        await asyncio.sleep(RECOVER_SETTLE)
        await run.attempt("migrate_cancel", src.qmp.migrate_cancel())
        await stays_cancelling(run, src)
