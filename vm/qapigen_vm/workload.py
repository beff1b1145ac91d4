"""A guest workload: a vCPU thread that dirties pages at a set rate, and obeys throttling.

The thread works in 10 ms timeslices like a vCPU. Each slice dirties ``rate / 100``
pages of the working set, picked by the pattern:

- ``random``: uniformly at random (seeded);
- ``sequential``: in address order, wrapping around the working set;
- ``sparse``: every 16th page of the working set, a different residue each round, so
  dirty pages never form contiguous runs.

Each dirtied page gets ``bytes_per_page`` new random bytes at a random offset (the
whole page when None), and is marked in the dirty log. Auto-converge throttles the
thread the way QEMU throttles a vCPU: at throttle p it sleeps p/(1-p) x 10 ms after
each slice, so its dirty rate drops to (1-p) x rate. Stopping the VM waits for the
slice in progress, so memory is frozen once :meth:`pause` returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

import numpy as np

from .dirty import DirtyLog
from .ram import GuestRam

Pattern = Literal["random", "sequential", "sparse"]
PATTERNS = ("random", "sequential", "sparse")
TIMESLICE = 0.010
SPARSE_STRIDE = 16

# (pages about to be written, the vCPU's quit event) -> returns once they are present
AccessGate = Callable[[np.ndarray, threading.Event], None]


class WorkloadError(ValueError):
    """Bad workload settings."""


class GuestWorkload:
    """Dirties ``rate`` pages per second over ``[first_page, first_page + pages)``."""

    def __init__(
        self,
        ram: GuestRam,
        log: DirtyLog,
        *,
        rate: int,
        first_page: int = 0,
        pages: int | None = None,
        pattern: Pattern = "random",
        seed: int = 0,
        bytes_per_page: int | None = None,
    ) -> None:
        count = ram.page_count - first_page if pages is None else pages
        if rate < 0:
            raise WorkloadError(f"dirty rate must be >= 0 pages/s, got {rate}")
        if first_page < 0 or count <= 0 or first_page + count > ram.page_count:
            raise WorkloadError(
                f"working set of {count} pages at page {first_page} does not fit in "
                f"{ram.page_count} pages of RAM"
            )
        if pattern not in PATTERNS:
            raise WorkloadError(f"unknown workload pattern '{pattern}'")
        if bytes_per_page is not None and not 1 <= bytes_per_page <= ram.page_size:
            raise WorkloadError(
                f"bytes per page must be between 1 and {ram.page_size}, "
                f"got {bytes_per_page}"
            )
        self.ram = ram
        self.log = log
        self.rate = rate
        self.first_page = first_page
        self.page_span = count
        self.pattern = pattern
        self.bytes_per_page = bytes_per_page
        self._rng = np.random.default_rng(seed)
        self._cursor = 0
        self.pages_written = 0
        self._throttle = 0
        self._vcpu_lock = threading.Lock()
        self._runnable = threading.Event()
        self._quit = threading.Event()
        # Postcopy destination: called before each write with the pages about to be
        # touched; blocks while any of them is still on the source.
        self.access_gate: AccessGate | None = None
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------

    @property
    def throttle_percentage(self) -> int:
        return self._throttle

    def set_throttle(self, percentage: int) -> None:
        """0 stops throttling; otherwise clamped to 1..99 as QEMU's cpu throttle is."""
        self._throttle = 0 if percentage <= 0 else min(max(percentage, 1), 99)

    def start(self) -> None:
        """Create the vCPU thread (it only dirties while resumed)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="guest-vcpu", daemon=True
            )
            self._thread.start()

    def resume(self) -> None:
        self.start()
        self._runnable.set()

    def pause(self) -> None:
        """Stop dirtying; returns once no write is in progress."""
        self._runnable.clear()
        with self._vcpu_lock:
            pass

    def close(self) -> None:
        self._quit.set()
        self._runnable.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- the vCPU ---------------------------------------------------------------------

    def _next_pages(self, count: int) -> np.ndarray:
        span = self.page_span
        if self.pattern == "random":
            return self._rng.integers(0, span, size=count) + self.first_page
        if self.pattern == "sparse" and span > SPARSE_STRIDE:
            # position k of the sparse walk: residue k // rows, row k % rows
            rows = -(-span // SPARSE_STRIDE)
            steps = (np.arange(count) + self._cursor) % (rows * SPARSE_STRIDE)
            idx = (steps % rows) * SPARSE_STRIDE + steps // rows
            self._cursor = (self._cursor + count) % (rows * SPARSE_STRIDE)
            return idx[idx < span] + self.first_page
        idx = (np.arange(count) + self._cursor) % span
        self._cursor = (self._cursor + count) % span
        return idx + self.first_page

    def _write(self, pages: np.ndarray) -> None:
        """New random content: the whole page, or bytes_per_page at a random offset."""
        size = self.ram.page_size
        n = self.bytes_per_page or size
        offset = int(self._rng.integers(0, size - n + 1))
        data = np.frombuffer(self._rng.bytes(pages.size * n), dtype=np.uint8)
        self.ram.pages[pages, offset : offset + n] = data.reshape(pages.size, n)

    def _run(self) -> None:
        owed = 0.0
        while not self._quit.is_set():
            if not self._runnable.wait(0.1):
                continue
            slice_start = time.monotonic()
            owed += self.rate * TIMESLICE
            count = int(owed)
            owed -= count
            pages: np.ndarray | None = None
            gate = self.access_gate
            if count and gate is not None:
                # Outside the vCPU lock: a blocked access must not block a stop.
                pages = self._next_pages(min(count, self.page_span * 4))
                gate(pages, self._quit)
            with self._vcpu_lock:
                if count and self._runnable.is_set() and not self._quit.is_set():
                    if pages is None:
                        pages = self._next_pages(min(count, self.page_span * 4))
                    self._write(pages)
                    self.log.mark(pages)
                    self.pages_written += int(pages.size)
            spent = time.monotonic() - slice_start
            pause = max(TIMESLICE - spent, 0.0)
            throttle = self._throttle
            if throttle:
                pause += throttle / (100 - throttle) * TIMESLICE
            if pause:
                self._quit.wait(pause)
