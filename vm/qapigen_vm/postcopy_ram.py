"""The destination's RAM during postcopy: which pages are present, and who waits.

After the switch the destination guest runs while some pages are still on the source.
This module plays the role of userfaultfd: a page-present bitmap guarded by a
condition variable. A guest access to a missing page asks the source for it (through
``request``, the return path) and blocks until the page has been placed; received
pages are installed only where the page is still missing, so a page the running guest
has already written is never overwritten (UFFDIO_COPY's EEXIST). The time the vCPU
spends blocked is accounted as postcopy-blocktime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .ram import GuestRam, zero_page_mask

IndexArray = npt.NDArray[np.intp]
ByteArray = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]

# How often a blocked access re-checks whether it should give up (VM shutdown).
WAIT_SLICE = 0.05


class PostcopyRam:
    """Page presence for one postcopy migration (destination side).

    ``request(pages)`` sends a page request to the source; it may fail silently while
    the connection is down, since :meth:`waiting_pages` are asked for again after a
    recovery.
    """

    def __init__(
        self,
        ram: GuestRam,
        missing: BoolArray,
        request: Callable[[IndexArray], None],
    ) -> None:
        self.ram = ram
        self._present = ~missing
        self._request = request
        self._cond = threading.Condition()
        self._released = False
        self._waiting: IndexArray = np.empty(0, dtype=np.intp)
        self.blocktime_ms = 0.0
        self.faults = 0  # guest accesses that had to wait

    # -- the guest side ---------------------------------------------------------------

    def access(self, pages: IndexArray, give_up: threading.Event) -> None:
        """Block until every page in ``pages`` is present (a vCPU's page faults).

        Returns early when ``give_up`` is set or the migration is torn down.
        """
        with self._cond:
            missing = pages[~self._present[pages]]
            if not missing.size or self._released:
                return
            missing = np.unique(missing)
            self._waiting = missing
            self.faults += 1
        started = time.monotonic()
        self._request(missing)
        with self._cond:
            while not self._released and not give_up.is_set():
                if self._present[missing].all():
                    break
                self._cond.wait(WAIT_SLICE)
            self._waiting = np.empty(0, dtype=np.intp)
            self.blocktime_ms += (time.monotonic() - started) * 1000

    def waiting_pages(self) -> IndexArray:
        """The pages the guest is blocked on now (to re-request after a recovery)."""
        with self._cond:
            waiting = self._waiting
        return waiting[~self._present[waiting]]

    # -- the loader side --------------------------------------------------------------

    def place(self, normal: IndexArray, data: ByteArray, zero: IndexArray) -> None:
        """Install received pages that are still missing; drop the rest.

        Only the loader thread places pages and the guest never touches a missing
        page, so the copy itself needs no lock; the bit flips after the data is in.
        """
        with self._cond:
            fresh = ~self._present[normal]
            fresh_zero = zero[~self._present[zero]]
        if fresh.all():
            self.ram.pages[normal] = data
            placed = normal
        else:
            placed = normal[fresh]
            self.ram.pages[placed] = data[fresh]
        if fresh_zero.size:
            stale = fresh_zero[~zero_page_mask(self.ram, fresh_zero)]
            if stale.size:
                self.ram.pages[stale] = 0
        with self._cond:
            self._present[placed] = True
            self._present[fresh_zero] = True
            self._cond.notify_all()

    def missing_mask(self) -> BoolArray:
        with self._cond:
            return ~self._present

    def missing_count(self) -> int:
        with self._cond:
            return int(np.count_nonzero(~self._present))

    def release(self) -> None:
        """Wake every blocked access for good (completion or VM shutdown)."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def vcpu_blocktime(self) -> list[int]:
        """postcopy-vcpu-blocktime: one vCPU (the guest workload)."""
        return [int(self.blocktime_ms)]
