"""The source's XBZRLE path: which pages go as deltas, and the cache behind them.

Per batch of dirty pages, as QEMU's ``ram_save_target_page`` decides page by page:

- a zero page goes as a zero page, and its cache slot learns the zeros;
- a cached page (a hit) is encoded against its cached copy: an unchanged page is
  skipped, a delta that fits goes in an XBZRLE record, one that overflows goes as a
  normal page; except in the final stage the cache takes the new content;
- an uncached page (a miss) is inserted if the cache's ageing allows and goes as a
  normal page.

Whatever is sent comes from one snapshot of the batch, and the cache takes exactly
that snapshot, so the cache always holds what the destination holds for a cached page.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .page_cache import PageCache
from .stats import XbzrleCounters
from .stream import StreamWriter
from .xbzrle import OVERFLOW, encode_pages

IndexArray = npt.NDArray[np.intp]

LENGTH_FIELD = 2  # bytes of an encoded page's length in the XBZRLE record


class XbzrleSender:
    """Sends batches through XBZRLE; statistics go to ``counters``."""

    def __init__(self, cache_size: int, page_size: int) -> None:
        self.cache = PageCache(cache_size, page_size)
        self.counters = XbzrleCounters(cache_size=cache_size)
        self.page_size = page_size

    def send(
        self,
        writer: StreamWriter,
        pages: IndexArray,
        sync_count: int,
        *,
        last_stage: bool,
    ) -> tuple[int, int, int]:
        """Send ``pages``; returns (bytes, normal pages, zero pages) like
        ``StreamWriter.pages``; XBZRLE pages are in ``counters``."""
        cache = self.cache
        c = self.counters
        # A batch must name each page once (a delta applies on top of the previous
        # content); MigrationBitmap.take can repeat pages when its scan wraps.
        pages = np.unique(pages)
        normal_idx, data, zero_idx = writer.snapshot(pages)
        if zero_idx.size and not last_stage:
            zeros = np.zeros((zero_idx.size, self.page_size), dtype=np.uint8)
            cache.insert(zero_idx, zeros, sync_count)

        hit = cache.lookup(normal_idx, sync_count)
        hit_idx = normal_idx[hit]
        new = data[hit]
        lengths, encoded = encode_pages(cache.cached(hit_idx), new)
        changed = lengths != 0
        if not last_stage:
            cache.update(hit_idx[changed], new[changed])
        miss = ~hit
        if not last_stage and miss.any():
            cache.insert(normal_idx[miss], data[miss], sync_count)

        overflowed = lengths == OVERFLOW
        delta = lengths > 0
        as_normal = miss.copy()
        as_normal[np.flatnonzero(hit)[overflowed]] = True
        c.handled += int(normal_idx.size)
        c.cache_miss += int(miss.sum())
        c.pages += int((lengths >= 0).sum())
        c.overflow += int(overflowed.sum())
        c.bytes += int(lengths[delta].sum()) + LENGTH_FIELD * int(delta.sum())
        c.bytes += self.page_size * int(overflowed.sum())

        nbytes = writer.send_pages(normal_idx[as_normal], data[as_normal], zero_idx)
        nbytes += writer.xbzrle(hit_idx[delta], lengths[delta], encoded)
        return nbytes, int(as_normal.sum()), int(zero_idx.size)
