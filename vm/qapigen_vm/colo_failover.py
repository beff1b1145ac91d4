"""What both COLO sides share: the failover request and what query-colo-status shows.

Observed on QEMU 7.2: x-colo-lost-heartbeat only asks for the failover and returns;
the side's COLO thread then performs it (STOP, MIGRATION completed, COLO_EXIT unless
an error already announced one, RESUME). Afterwards query-colo-status shows mode
none, last-mode the side's mode and reason request, also when the COLO_EXIT event
said error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from qapigen_vm_qmp.types import COLOExitReason, COLOMode

from .runstate import EventSink

POLL = 0.05
"""Seconds between looks at a condition another thread may change (teardown)."""


class FailoverSwitch:
    """x-colo-lost-heartbeat's request to one side, and when its failover finished."""

    def __init__(self, mode: COLOMode, sink: EventSink) -> None:
        self.mode = mode
        self._sink = sink
        self._requested = threading.Event()
        self._exit_announced = False
        self.finished_at: float | None = None

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self) -> None:
        self._requested.set()

    def wait(self, timeout: float) -> bool:
        return self._requested.wait(timeout)

    def wait_until_requested(self, abandoned: Callable[[], bool]) -> bool:
        """Block until a failover is asked for (True) or ``abandoned()`` (False)."""
        while not self._requested.wait(POLL):
            if abandoned():
                return False
        return True

    def announce_exit(self, reason: COLOExitReason) -> None:
        """COLO_EXIT, at most once per COLO session (as QEMU's COLO thread)."""
        if self._exit_announced:
            return
        self._exit_announced = True
        self._sink("COLO_EXIT", {"mode": self.mode.value, "reason": reason.value})

    def finish(self) -> None:
        self.finished_at = time.monotonic()


def last_failover(*switches: FailoverSwitch | None) -> tuple[COLOMode, COLOExitReason]:
    """query-colo-status' last-mode and reason: the latest finished failover's."""
    done = [s for s in switches if s is not None and s.finished_at is not None]
    if not done:
        return COLOMode.NONE, COLOExitReason.NONE
    latest = max(done, key=lambda s: s.finished_at or 0.0)
    return latest.mode, COLOExitReason.REQUEST
