"""query-migrate answers: the schema's MigrationInfo and MigrationStats, from counters
kept by the engine as the migration really happens."""

from __future__ import annotations

import dataclasses

from .states import MigrationStatus


@dataclasses.dataclass(slots=True)
class RamCounters:
    """Live counters of one outgoing migration (QEMU's ram_counters)."""

    transferred: int = 0
    remaining: int = 0
    total: int = 0
    duplicate: int = 0
    normal: int = 0
    dirty_pages_rate: int = 0
    mbps: float = 0.0
    dirty_sync_count: int = 0
    page_size: int = 4096
    pages_per_second: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class MigrationStats:
    """The schema's MigrationStats (``ram`` member of MigrationInfo)."""

    transferred: int
    remaining: int
    total: int
    duplicate: int
    skipped: int
    normal: int
    normal_bytes: int
    dirty_pages_rate: int
    mbps: float
    dirty_sync_count: int
    postcopy_requests: int
    page_size: int
    multifd_bytes: int
    pages_per_second: int

    @classmethod
    def from_counters(cls, c: RamCounters) -> MigrationStats:
        return cls(
            transferred=c.transferred,
            remaining=c.remaining,
            total=c.total,
            duplicate=c.duplicate,
            skipped=0,
            normal=c.normal,
            normal_bytes=c.normal * c.page_size,
            dirty_pages_rate=c.dirty_pages_rate,
            mbps=c.mbps,
            dirty_sync_count=c.dirty_sync_count,
            postcopy_requests=0,
            page_size=c.page_size,
            multifd_bytes=0,
            pages_per_second=c.pages_per_second,
        )

    def to_wire(self) -> dict[str, object]:
        return {
            f.name.replace("_", "-"): getattr(self, f.name)
            for f in dataclasses.fields(self)
        }


@dataclasses.dataclass(frozen=True, slots=True)
class MigrationInfo:
    """The schema's MigrationInfo; None members are absent on the wire."""

    status: MigrationStatus | None = None
    ram: MigrationStats | None = None
    total_time: int | None = None
    expected_downtime: int | None = None
    downtime: int | None = None
    setup_time: int | None = None
    cpu_throttle_percentage: int | None = None
    error_desc: str | None = None
    socket_address: list[dict[str, str]] | None = None

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, MigrationStatus):
                value = value.value
            elif isinstance(value, MigrationStats):
                value = value.to_wire()
            wire[f.name.replace("_", "-")] = value
        return wire
