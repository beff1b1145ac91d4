"""Auto-converge: QEMU's rule for when and how far to throttle the guest.

Evaluated at each dirty-bitmap sync that closes a period of more than a second. When
the bytes dirtied in the period exceed throttle-trigger-threshold percent of the bytes
sent in it, a counter goes up; at 2 it resets and the throttle rises: to
cpu-throttle-initial first, then by cpu-throttle-increment (or, with
cpu-throttle-tailslow, by the smaller step that would bring the dirty rate down to the
threshold) up to max-cpu-throttle. QEMU never resets the counter otherwise.
"""

from __future__ import annotations

import dataclasses

from .params import MigrationParameters


@dataclasses.dataclass(slots=True)
class AutoConverge:
    high_count: int = 0

    def next_throttle(
        self,
        params: MigrationParameters,
        current: int,
        dirty_bytes: int,
        sent_bytes: int,
    ) -> int | None:
        """The new throttle percentage, or None to leave it as it is."""
        threshold = sent_bytes * params.throttle_trigger_threshold // 100
        if dirty_bytes <= threshold:
            return None
        self.high_count += 1
        if self.high_count < 2:
            return None
        self.high_count = 0
        if current == 0:
            wanted = params.cpu_throttle_initial
        else:
            step = params.cpu_throttle_increment
            if params.cpu_throttle_tailslow:
                cpu_now = 100 - current
                cpu_ideal = int(cpu_now * (threshold / dirty_bytes))
                step = min(cpu_now - cpu_ideal, step)
            wanted = min(current + step, params.max_cpu_throttle)
        return min(max(wanted, 1), 99)
