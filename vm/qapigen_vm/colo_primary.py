"""COLO's primary: the source of a migration with x-colo, after the first full one.

It runs in the migration thread of an :class:`~.source.OutgoingMigration` once the
destination has loaded the whole stream and acknowledged it. As QEMU 7.2 does:

- MIGRATION colo, then the guest runs again here (RESUME), and the destination runs
  its copy as the secondary;
- every ``x-checkpoint-delay`` ms (read again at each wait, so a change applies to the
  next checkpoint) a checkpoint: request, the secondary's reply (its guest stopped),
  STOP here, a dirty sync (MIGRATION_PASS with the events capability), the pages the
  guest wrote since the last checkpoint and the device state (the run state), then
  the secondary's "received" and "loaded"; only then RESUME. The bytes count in
  ``ram.transferred``; query-migrate shows nothing but the status while in colo;
- x-colo-lost-heartbeat: STOP, MIGRATION completed, COLO_EXIT (primary, request),
  RESUME: the guest goes on here alone, with its own memory (and runs, even if a
  `stop` had paused it: then without the STOP);
- a broken channel (the secondary died, or migrate_cancel cut it) is only noticed at
  the next checkpoint, which fails: COLO_EXIT (primary, error), the guest keeps
  running, the status stays colo until x-colo-lost-heartbeat completes it (STOP,
  completed, RESUME, no second COLO_EXIT);
- migrate_cancel does not change the status (colo is not one of 7.2's "running"
  states) but shuts the channel down: the secondary sees its stream end, and the
  failover that follows reports reason error;
- migrate-set-parameters with x-checkpoint-delay (any value, the same one too)
  asks for a checkpoint at once; the next one comes x-checkpoint-delay ms later;
- a migrate issued in colo (see ``OutgoingMigration.restart_over_colo``) leaves
  the status at setup: this session is no longer the VM's (query-colo-status shows
  mode none, x-colo-lost-heartbeat is refused). When its next checkpoint is due it
  finds the status changed and ends: COLO_EXIT (primary, error), no checkpoint, the
  guest running; the channel stays open, so the secondary notices nothing;
- over a pipe (exec:) the secondary's first word, that it is ready, can never come:
  the primary enters colo, leaves its guest stopped (finish-migrate) and waits; an
  x-colo-lost-heartbeat then only completes the migration (MIGRATION completed: no
  STOP, no RESUME, no COLO_EXIT; the guest stays stopped), as on QEMU 7.2, whose
  COLO thread stays blocked reading the command's output.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from qapigen_vm_qmp.types import COLOExitReason, COLOMessage, COLOMode

from . import colo_protocol as wire
from .colo_failover import POLL, FailoverSwitch
from .colo_protocol import ColoError
from .states import MigrationStatus, RunState
from .stream import MAX_RECORD_PAGES, StreamError, StreamWriter
from .transport import Channel

if TYPE_CHECKING:
    from .source import OutgoingMigration

S = MigrationStatus
M = COLOMessage


class ColoPrimary:
    """One COLO session on the primary side."""

    def __init__(self, migration: OutgoingMigration, channel: Channel) -> None:
        self.migration = migration
        self.channel = channel
        self.failover = FailoverSwitch(COLOMode.PRIMARY, migration.sink)
        self.checkpoints = 0
        self.error: str | None = None
        self._cut = False
        # Set to end the wait for the next checkpoint early (a checkpoint asked for,
        # or a failover).
        self._prompt = threading.Event()
        self.writer = StreamWriter(channel, migration.ram)
        self._dirty = np.zeros(migration.ram.page_count, dtype=np.bool_)

    # -- from the command side ----------------------------------------------------------

    def request_failover(self) -> None:
        """x-colo-lost-heartbeat: wake the COLO thread, whatever it waits for."""
        self.failover.request()
        self._prompt.set()
        if self.channel.has_return_path:
            self.channel.shutdown()

    def checkpoint_now(self) -> None:
        """x-checkpoint-delay was set while in colo: checkpoint without waiting."""
        self._prompt.set()

    def cut(self) -> None:
        """migrate_cancel while in colo: the channel goes, the status stays."""
        self._cut = True
        self.channel.shutdown()

    # -- the COLO thread ----------------------------------------------------------------

    def enter(self, current: MigrationStatus) -> bool:
        """MIGRATION colo, and the guest runs again; False if a cancel came first."""
        m = self.migration
        if not m.state.cmpxchg(current, S.COLO):
            return False
        if self.channel.has_return_path:  # else it waits for the secondary (run)
            m.runctl.vm_start()
        return True

    def run(self) -> None:
        """Checkpoints until a failover (or the VM's shutdown)."""
        m = self.migration
        if not self.channel.has_return_path:
            self._wait_for_a_secondary_that_cannot_answer()
            return
        try:
            while self._wait_for_checkpoint():
                if m.state.value is not S.COLO:
                    self._orphaned()
                    return
                self._checkpoint()
        except (ColoError, StreamError, OSError) as exc:
            if not self.failover.requested and not m.cancel_requested:
                self._broken(str(exc))
        if m.cancel_requested and not self.failover.requested:
            return  # the VM shuts down
        self._fail_over()

    def _abandoned(self) -> bool:
        return self.migration.cancel_requested

    def _wait_for_checkpoint(self) -> bool:
        """Sleep x-checkpoint-delay; False when a failover or teardown came first."""
        start = time.monotonic()
        while not (self.failover.requested or self._abandoned()):
            if self._prompt.is_set():
                self._prompt.clear()
                return True
            delay = self.migration.settings.parameters.x_checkpoint_delay / 1000
            left = start + delay - time.monotonic()
            if left <= 0:
                return True
            self._prompt.wait(min(left, POLL))
        return False

    def _orphaned(self) -> None:
        """A migrate in colo took the status away: end here, channel left open."""
        self.failover.announce_exit(COLOExitReason.ERROR)
        while not self._abandoned():  # until the VM shuts down
            self.failover.wait(POLL)  # (cannot be requested any more)

    def _wait_for_a_secondary_that_cannot_answer(self) -> None:
        """No return path: wait; a failover only completes the migration."""
        if not self.failover.wait_until_requested(self._abandoned):
            return
        self.migration.state.cmpxchg(S.COLO, S.COMPLETED)
        self.failover.finish()

    def _checkpoint(self) -> None:
        m = self.migration
        channel = self.channel
        pages = m.ram.page_count
        m.count(wire.send(channel, M.CHECKPOINT_REQUEST), 0)
        wire.expect(channel, M.CHECKPOINT_REPLY, pages)
        if self.failover.requested:
            return
        was_running = m.runctl.vm_stop(RunState.COLO)
        try:
            self._send_state(was_running)
            wire.expect(channel, M.VMSTATE_RECEIVED, pages)
            wire.expect(channel, M.VMSTATE_LOADED, pages)
            self.checkpoints += 1
        finally:
            # A stop command during the checkpoint moved the run state on: keep it.
            if was_running and m.runctl.state is RunState.COLO:
                m.runctl.vm_start()

    def _send_state(self, was_running: bool) -> None:
        """The dirty pages since the last checkpoint, then the device state."""
        m = self.migration
        dirty = self._dirty
        dirty[:] = False
        m.log.harvest_into(dirty)
        counters = m.counters
        counters.dirty_sync_count += 1
        if m.settings.capability("events"):
            m.sink("MIGRATION_PASS", {"pass": counters.dirty_sync_count})
        channel = self.channel
        m.count(wire.send(channel, M.VMSTATE_SEND, np.packbits(dirty).tobytes()), 0)
        pages = np.flatnonzero(dirty)
        for first in range(0, int(pages.size), MAX_RECORD_PAGES):
            chunk = pages[first : first + MAX_RECORD_PAGES]
            nbytes, normal, zero = self.writer.pages(chunk)
            counters.normal += normal
            counters.duplicate += zero
            m.count(nbytes, int(chunk.size))
        m.count(self.writer.end(), 0)
        device = {"running": was_running, "checkpoint": self.checkpoints + 1}
        m.count(wire.send(channel, M.VMSTATE_SIZE, json.dumps(device).encode()), 0)

    def _broken(self, text: str) -> None:
        """The checkpoint failed: announce it, keep the guest, wait for failover."""
        self.error = text
        print(f"qapigen-vm: {text}", file=sys.stderr, flush=True)
        self.failover.announce_exit(COLOExitReason.ERROR)
        self.failover.wait_until_requested(self._abandoned)

    def _fail_over(self) -> None:
        """x-colo-lost-heartbeat: the guest goes on here, as an ordinary VM."""
        m = self.migration
        runctl = m.runctl
        runctl.vm_stop(RunState.COLO)
        m.state.cmpxchg(S.COLO, S.COMPLETED)
        reason = COLOExitReason.ERROR if self._cut else COLOExitReason.REQUEST
        self.failover.announce_exit(reason)
        # A guest the user stopped runs too (QEMU 7.2 starts it whatever its state).
        runctl.vm_start()
        self.failover.finish()
