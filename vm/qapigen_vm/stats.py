"""query-migrate's statistics: live counters kept by the engine as the migration really
happens, and the VM schema's own generated types built from them (so the answer is the
schema's by construction; the dispatcher encodes it)."""

from __future__ import annotations

import dataclasses

from qapigen_vm_qmp.types import (
    CompressionStats,
    MigrationInfo,
    MigrationStats,
    SocketAddress,
    SocketAddress_Inet,
    XBZRLECacheStats,
    decode_socket_address,
)

__all__ = [
    "CompressionCounters",
    "CompressionStats",
    "MigrationInfo",
    "MigrationStats",
    "RamCounters",
    "SocketAddress_Inet",
    "XBZRLECacheStats",
    "XbzrleCounters",
    "compression_stats",
    "ram_stats",
    "socket_addresses",
    "xbzrle_cache_stats",
]


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
    multifd_bytes: int = 0
    postcopy_requests: int = 0  # page requests served during postcopy


@dataclasses.dataclass(slots=True)
class XbzrleCounters:
    """Live XBZRLE counters (QEMU's xbzrle_counters), as the sender really counts.

    ``pages``: pages sent as a delta or skipped as unchanged (cache hits that fit);
    ``bytes``: the bytes those deltas took on the wire (encoding plus its u16 length;
    the page number is the record's addressing, as QEMU leaves out its page header),
    plus a page size per overflow, as QEMU counts it; ``cache_miss_rate``: misses
    over pages handled since the previous dirty sync.
    """

    cache_size: int = 0
    bytes: int = 0
    pages: int = 0
    cache_miss: int = 0
    cache_miss_rate: float = 0.0
    overflow: int = 0
    handled: int = 0  # pages the XBZRLE path looked at (rate denominator)
    miss_at_sync: int = 0
    handled_at_sync: int = 0

    def close_period(self) -> None:
        """At a dirty sync: the miss rate of the pages handled since the last one."""
        handled = self.handled - self.handled_at_sync
        if handled:
            self.cache_miss_rate = (self.cache_miss - self.miss_at_sync) / handled
        self.miss_at_sync = self.cache_miss
        self.handled_at_sync = self.handled


def xbzrle_cache_stats(c: XbzrleCounters) -> XBZRLECacheStats:
    """The ``xbzrle-cache`` member of query-migrate."""
    return XBZRLECacheStats(
        cache_size=c.cache_size,
        bytes_=c.bytes,
        pages=c.pages,
        cache_miss=c.cache_miss,
        cache_miss_rate=c.cache_miss_rate,
        overflow=c.overflow,
    )


@dataclasses.dataclass(slots=True)
class CompressionCounters:
    """Live compress-capability counters (QEMU's compression_counters).

    ``busy``: times a page found every compression thread occupied (then, without
    compress-wait-thread, it went out uncompressed); ``compressed_size``: bytes of
    compressed data sent; rates are recomputed at each dirty sync.
    """

    pages: int = 0
    busy: int = 0
    busy_rate: float = 0.0
    compressed_size: int = 0
    compression_rate: float = 0.0
    handled: int = 0  # pages offered to compression (busy-rate denominator)
    pages_at_sync: int = 0
    busy_at_sync: int = 0
    size_at_sync: int = 0
    handled_at_sync: int = 0

    def close_period(self, page_size: int) -> None:
        handled = self.handled - self.handled_at_sync
        if handled:
            self.busy_rate = (self.busy - self.busy_at_sync) / handled
        size = self.compressed_size - self.size_at_sync
        pages = self.pages - self.pages_at_sync
        if size:
            self.compression_rate = pages * page_size / size
        self.handled_at_sync = self.handled
        self.busy_at_sync = self.busy
        self.size_at_sync = self.compressed_size
        self.pages_at_sync = self.pages


def compression_stats(c: CompressionCounters) -> CompressionStats:
    """The ``compression`` member of query-migrate."""
    return CompressionStats(
        pages=c.pages,
        busy=c.busy,
        busy_rate=c.busy_rate,
        compressed_size=c.compressed_size,
        compression_rate=c.compression_rate,
    )


def ram_stats(c: RamCounters) -> MigrationStats:
    """The ``ram`` member of query-migrate (``skipped`` stays 0, as QEMU reports it)."""
    return MigrationStats(
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
        postcopy_requests=c.postcopy_requests,
        page_size=c.page_size,
        multifd_bytes=c.multifd_bytes,
        pages_per_second=c.pages_per_second,
    )


def socket_addresses(wire: list[dict[str, object]]) -> list[SocketAddress] | None:
    """query-migrate's ``socket-address`` from a listener's wire form; None (absent)
    when there is none."""
    if not wire:
        return None
    return [decode_socket_address(address) for address in wire]
