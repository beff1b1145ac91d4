"""What one migration run records: polled statistics and the events that mark it.

Both the progress display and the PNG timeline read this, so a recorded run can be
rendered again (and tested) without any process. Times are seconds since the `migrate`
command was issued, on the wall clock, because QMP event timestamps are wall-clock too.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

from qapigen_migration.types import MigrationInfo, MigrationStatus

FINAL_STATUSES = frozenset(
    {MigrationStatus.COMPLETED, MigrationStatus.FAILED, MigrationStatus.CANCELLED}
)
"""Statuses after which a migration makes no more progress."""

RATE_PERIOD = 1.0
"""QEMU computes dirty-pages-rate at a dirty sync that ends a period of more than this
many seconds (the first period starts at the first sync); before that it reads 0."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One `query-migrate` reply on the source, reduced to what is displayed."""

    time: float
    status: str
    transferred: int = 0
    remaining: int = 0
    total: int = 0
    mbps: float = 0.0
    dirty_pages_rate: int = 0
    page_size: int = 4096
    dirty_sync_count: int = 0
    expected_downtime: int | None = None
    pass_number: int | None = None
    dirty_rate_known: bool = False  # whether QEMU has computed dirty-pages-rate yet

    @classmethod
    def from_info(
        cls,
        info: MigrationInfo,
        time: float,
        pass_number: int | None = None,
        *,
        dirty_rate_known: bool = False,
    ) -> Sample:
        """Reduce a typed reply; before `ram` appears (setup) the counters stay 0.

        `dirty_rate_known`: QEMU has computed the rate (see
        `Timeline.dirty_rate_measured`); a non-zero rate is known in any case.
        """
        status = "none" if info.status is None else info.status.value
        ram = info.ram
        if ram is None:
            return cls(time, status, pass_number=pass_number)
        return cls(
            time=time,
            status=status,
            transferred=ram.transferred,
            remaining=ram.remaining,
            total=ram.total,
            mbps=ram.mbps,
            dirty_pages_rate=ram.dirty_pages_rate,
            # QEMU reports 0 for page-size in some states; a page is never 0 bytes.
            page_size=ram.page_size or 4096,
            dirty_sync_count=ram.dirty_sync_count,
            expected_downtime=info.expected_downtime,
            pass_number=pass_number,
            dirty_rate_known=dirty_rate_known or ram.dirty_pages_rate > 0,
        )

    @property
    def has_ram(self) -> bool:
        return self.total > 0

    @property
    def fraction_done(self) -> float:
        """How much of RAM is no longer waiting to be sent, 0..1."""
        if self.total <= 0:
            return 1.0 if self.status == MigrationStatus.COMPLETED else 0.0
        return min(1.0, max(0.0, 1.0 - self.remaining / self.total))

    @property
    def dirty_bytes_rate(self) -> int:
        return self.dirty_pages_rate * self.page_size

    @property
    def pass_shown(self) -> int:
        """The pass: from MIGRATION_PASS when events are on, else the sync count
        (QEMU numbers passes with the dirty-sync count, so the two agree)."""
        return (
            self.pass_number
            if self.pass_number is not None
            else (self.dirty_sync_count)
        )


class MarkKind(enum.Enum):
    """The moments the timeline marks."""

    PASS = "pass"  # MIGRATION_PASS: a dirty-bitmap sync starts pass N
    STATUS = "status"  # MIGRATION: the source changed state
    STOP = "stop"  # STOP on the source: the guest stops, downtime begins
    RESUME = "resume"  # RESUME on the destination: the guest runs there


@dataclass(frozen=True, slots=True)
class Mark:
    time: float
    kind: MarkKind
    label: str


@dataclass(slots=True)
class Timeline:
    """A run: samples in time order and marks in arrival order."""

    samples: list[Sample] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    def mark_time(self, kind: MarkKind, label: str | None = None) -> float | None:
        """When the first mark of `kind` (and `label`, if given) happened."""
        for mark in self.marks:
            if mark.kind is kind and (label is None or mark.label == label):
                return mark.time
        return None

    @property
    def last_pass(self) -> int | None:
        passes = [int(m.label) for m in self.marks if m.kind is MarkKind.PASS]
        return max(passes) if passes else None

    def dirty_rate_measured(self, time: float, dirty_sync_count: int) -> bool:
        """Whether QEMU has computed dirty-pages-rate by `time`, when a poll saw
        `dirty_sync_count` (see RATE_PERIOD).

        From MIGRATION_PASS events when there are any (their timestamps are when
        each sync happened); otherwise from the polls, erring on "not yet": a sync
        first seen at one poll happened after the poll before it.
        """
        passes = sorted(m.time for m in self.marks if m.kind is MarkKind.PASS)
        if passes:
            return any(t - passes[0] > RATE_PERIOD for t in passes[1:])
        polls = [(s.time, s.dirty_sync_count) for s in self.samples]
        polls.append((time, dirty_sync_count))
        first = next(((t, c) for t, c in polls if c >= 1), None)
        if first is None:
            return False
        first_time = first[0]
        for (before, seen), (_, count) in itertools.pairwise(polls):
            if count > seen and before - first_time > RATE_PERIOD:
                return True  # a sync between these polls, late enough for sure
        return False

    def paused_for(self) -> float | None:
        """Seconds the guest ran nowhere: STOP on the source to RESUME on the
        destination, by the events' timestamps (None without both)."""
        stop = self.mark_time(MarkKind.STOP)
        resume = self.mark_time(MarkKind.RESUME)
        if stop is None or resume is None or resume < stop:
            return None
        return resume - stop
