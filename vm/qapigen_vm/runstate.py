"""The VM's run state, the vCPU it controls, and the events both emit."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import VmCommandError
from .states import MigrationStatus, RunState
from .workload import GuestWorkload

# An event as the QMP layer will send it: name and data with the schema's member names.
# It is called from engine threads: the QMP server must hop to its own loop (e.g.
# loop.call_soon_threadsafe) before touching asyncio objects.
EventSink = Callable[[str, dict[str, object]], None]


def discard_event(name: str, data: dict[str, object]) -> None:
    """The default sink: nobody listens."""


class RunControl:
    """query-status / stop / cont, and the stops and starts migration performs.

    STOP and RESUME are emitted only on a real transition, as QEMU's vm_stop and
    vm_start do, and are never gated by the events capability.
    """

    def __init__(
        self,
        sink: EventSink,
        initial: RunState,
        workload: GuestWorkload | None = None,
        *,
        autostart: bool = True,
    ) -> None:
        self._sink = sink
        self._lock = threading.RLock()
        self.state = initial
        self.workload = workload
        # -S on a destination: do not start the guest after an incoming migration.
        self.autostart = autostart
        if workload is not None and initial is RunState.RUNNING:
            workload.resume()

    @property
    def running(self) -> bool:
        return self.state is RunState.RUNNING

    def query_status(self) -> dict[str, object]:
        return {
            "running": self.running,
            "singlestep": False,
            "status": self.state.value,
        }

    def vm_stop(self, new_state: RunState) -> bool:
        """Stop the vCPUs if running (STOP), and enter ``new_state`` regardless.

        Returns whether the VM was running.
        """
        with self._lock:
            was_running = self.running
            if was_running and self.workload is not None:
                self.workload.pause()
            self.state = new_state
        if was_running:
            self._sink("STOP", {})
        return was_running

    def vm_start(self) -> None:
        with self._lock:
            if self.running:
                return
            self.state = RunState.RUNNING
            if self.workload is not None:
                self.workload.resume()
        self._sink("RESUME", {})

    def set_state(self, new_state: RunState) -> None:
        with self._lock:
            self.state = new_state

    # -- the commands -----------------------------------------------------------------

    def stop(self) -> None:
        """QMP stop: during an incoming migration it only cancels the autostart."""
        if self.state is RunState.INMIGRATE:
            self.autostart = False
            return
        self.vm_stop(RunState.PAUSED)

    def cont(self) -> None:
        """QMP cont."""
        if self.state is RunState.FINISH_MIGRATE:
            raise VmCommandError("Migration is not finalized yet")
        if self.state is RunState.SHUTDOWN:
            raise VmCommandError("Resetting the Virtual Machine is required")
        if self.state is RunState.INMIGRATE:
            self.autostart = True
            return
        self.vm_start()


class StateCell:
    """A migration state with QEMU's compare-and-set; emits MIGRATION on change.

    ``gate`` decides whether the event goes out (the events capability of this side).
    """

    def __init__(self, sink: EventSink, gate: Callable[[], bool]) -> None:
        self._sink = sink
        self._gate = gate
        self._lock = threading.Lock()
        self.value = MigrationStatus.NONE

    def cmpxchg(self, old: MigrationStatus, new: MigrationStatus) -> bool:
        with self._lock:
            if self.value is not old:
                return False
            self.value = new
        if self._gate():
            self._sink("MIGRATION", {"status": new.value})
        return True

    def reset(self) -> None:
        with self._lock:
            self.value = MigrationStatus.NONE
