"""The XBZRLE page cache: what the destination holds for recently sent pages.

Direct-mapped like QEMU's ``page_cache.c``: ``cache_size / page_size`` slots, page p
lives in slot ``p & (slots - 1)``. A slot remembers the page number, its content as
last sent, and its age (the dirty-sync count when it was last used). A lookup hits only
for the same page number and refreshes the age. An insert always replaces the same
page, but evicts a different one only when that one is stale: not used during the
current or the previous sync (``age + 2 <= now``), so pages that keep changing are not
pushed out by pages that change once.

All operations take a batch of page numbers and work with numpy; within a batch the
first page of a contended slot wins, as a page-by-page loop in that order would.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ByteArray = npt.NDArray[np.uint8]
IndexArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

EMPTY = -1


class PageCache:
    """``size`` bytes of cached pages (a power of two, at least one page)."""

    def __init__(self, size: int, page_size: int) -> None:
        if size < page_size or size & (size - 1):
            raise ValueError(
                f"cache size {size} is not a power of two of at least {page_size}"
            )
        self.size = size
        self.page_size = page_size
        self.slots = size // page_size
        self.page = np.full(self.slots, EMPTY, dtype=np.int64)
        self.age = np.zeros(self.slots, dtype=np.int64)
        # np.zeros maps lazily: a large cache costs memory only for slots in use.
        self.data: ByteArray = np.zeros((self.slots, page_size), dtype=np.uint8)

    def slot_of(self, pages: IndexArray) -> IndexArray:
        return pages & (self.slots - 1)

    def lookup(self, pages: IndexArray, now: int) -> BoolArray:
        """Which pages are cached; hits get age ``now``."""
        slots = self.slot_of(pages)
        hit: BoolArray = self.page[slots] == pages
        self.age[slots[hit]] = now
        return hit

    def cached(self, pages: IndexArray) -> ByteArray:
        """Copies of the cached content of ``pages`` (all must be hits)."""
        result: ByteArray = self.data[self.slot_of(pages)]
        return result

    def insert(self, pages: IndexArray, content: ByteArray, now: int) -> BoolArray:
        """Store ``content`` rows for ``pages`` where the rules allow; which were."""
        slots = self.slot_of(pages)
        held = self.page[slots]
        allowed = (held == EMPTY) | (held == pages) | (self.age[slots] + 2 <= now)
        # One page per slot per batch: the first allowed one (np.unique's index).
        candidates = np.flatnonzero(allowed)
        _, first = np.unique(slots[candidates], return_index=True)
        chosen = candidates[first]
        stored = np.zeros(pages.size, dtype=np.bool_)
        stored[chosen] = True
        target = slots[chosen]
        self.page[target] = pages[chosen]
        self.age[target] = now
        self.data[target] = content[chosen]
        return stored

    def update(self, pages: IndexArray, content: ByteArray) -> None:
        """Replace the content of pages known to be cached (hits of this batch)."""
        self.data[self.slot_of(pages)] = content
