"""Dirty page tracking: the log the guest marks and the bitmap migration consumes.

Two layers, as in QEMU: the *dirty log* is set by the guest workload whenever it writes
a page (KVM's role); the *migration bitmap* holds the pages still to be sent. A sync
moves the log into the bitmap and clears the log; it returns how many pages were newly
set, which feeds dirty-pages-rate and auto-converge.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

IndexArray = npt.NDArray[np.intp]


class DirtyLog:
    """The guest-side log of written pages. Thread-safe; marking is vectorised."""

    def __init__(self, page_count: int) -> None:
        self.page_count = page_count
        self._log = np.zeros(page_count, dtype=np.bool_)
        self._lock = threading.Lock()

    def mark(self, pages: IndexArray) -> None:
        with self._lock:
            self._log[pages] = True

    def mark_all(self) -> None:
        with self._lock:
            self._log[:] = True

    def clear(self) -> None:
        with self._lock:
            self._log[:] = False

    def harvest_into(self, bitmap: npt.NDArray[np.bool_]) -> int:
        """OR the log into ``bitmap``, clear the log, return the newly set count."""
        with self._lock:
            newly = int(np.count_nonzero(self._log & ~bitmap))
            bitmap |= self._log
            self._log[:] = False
        return newly


class MigrationBitmap:
    """Pages still to send, scanned round-robin from a cursor as QEMU's pass does."""

    def __init__(self, page_count: int) -> None:
        self.page_count = page_count
        self.bits = np.zeros(page_count, dtype=np.bool_)
        self.cursor = 0

    def set_all(self) -> None:
        self.bits[:] = True
        self.cursor = 0

    def count(self) -> int:
        return int(np.count_nonzero(self.bits))

    def take(self, limit: int, *, wrap: bool = True) -> IndexArray:
        """Up to ``limit`` dirty pages from the cursor on, cleared as taken.

        The scan wraps to the start of RAM unless ``wrap`` is false: then it stops at
        the end (the cursor returns to 0), so one call never mixes pages of the round
        that ends there with pages of the next (the first round is special: it is the
        bulk stage). The returned indices are ascending within each wrap segment, so a
        first pass over RAM yields contiguous runs, which the sender copies without
        gathering.
        """
        found: list[IndexArray] = []
        wanted = limit
        start = self.cursor
        scanned = 0
        window = 1 << 16
        while wanted > 0 and scanned < self.page_count:
            # Never look at a page twice: after wrapping, the scan ends where it began
            # (otherwise pages found before the wrap would be returned again).
            stop = min(
                start + window, self.page_count, start + self.page_count - scanned
            )
            hits = np.flatnonzero(self.bits[start:stop])
            if hits.size:
                hits = hits[:wanted] + start
                found.append(hits)
                wanted -= hits.size
                if wanted == 0:
                    self.cursor = int(hits[-1]) + 1
                    break
            scanned += stop - start
            start = 0 if stop == self.page_count else stop
            self.cursor = start
            if start == 0 and not wrap:
                break
        if self.cursor >= self.page_count:
            self.cursor = 0
        if not found:
            return np.empty(0, dtype=np.intp)
        pages = found[0] if len(found) == 1 else np.concatenate(found)
        self.bits[pages] = False
        return pages
