"""The compress capability's source side: zlib pages from a pool of threads.

As QEMU's compression threads: ``compress-threads`` workers each take a group of
pages, compress every page on its own (one complete zlib stream per page, at
``compress-level``) and hand the result back; the migration thread writes finished
groups to the stream as COMPRESSED records. When every worker is busy the migration
thread waits for one (``compress-wait-thread`` on) or sends the group as normal pages
and counts it ``busy`` (off). A page goes out once per pass, so results of one pass may
arrive in any order; before a new pass (and at the end) every outstanding group is
written, so no older copy of a page can follow a newer one.
"""

from __future__ import annotations

import queue
import threading
import zlib
from typing import Final

import numpy as np
import numpy.typing as npt

from .stats import CompressionCounters
from .stream import StreamWriter

IndexArray = npt.NDArray[np.intp]
ByteArray = npt.NDArray[np.uint8]

GROUP_PAGES: Final = 64  # pages per job: amortises the hand-over, keeps threads busy

_Job = tuple[IndexArray, ByteArray]
_Result = tuple[IndexArray, list[bytes]]


class CompressSender:
    """Compresses groups of pages on ``threads`` workers; counters in ``counters``."""

    def __init__(self, threads: int, level: int, wait_for_thread: bool) -> None:
        self.level = level
        self.wait_for_thread = wait_for_thread
        self.counters = CompressionCounters()
        self._free = threading.Semaphore(threads)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[_Result | BaseException] = queue.SimpleQueue()
        self._outstanding = 0
        self._workers = [
            threading.Thread(target=self._work, name=f"compress-{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            pages, data = job
            try:
                blobs = [zlib.compress(row, self.level) for row in data]
                self._results.put((pages, blobs))
            except BaseException as exc:  # handed to the migration thread
                self._results.put(exc)
            finally:
                self._free.release()

    def send(self, writer: StreamWriter, pages: IndexArray) -> tuple[int, int, int]:
        """Send a batch: zero pages at once, the rest through the workers (or as
        normal pages when they are busy). Returns (bytes, normal, zero) written now;
        compressed pages are counted in ``counters`` when written."""
        normal_idx, data, zero_idx = writer.snapshot(pages)
        nbytes = writer.send_pages(normal_idx[:0], data[:0], zero_idx)
        normal = 0
        c = self.counters
        for first in range(0, int(normal_idx.size), GROUP_PAGES):
            group = slice(first, first + GROUP_PAGES)
            count = int(normal_idx[group].size)
            c.handled += count
            if not self._free.acquire(blocking=self.wait_for_thread):
                c.busy += count
                nbytes += writer.send_pages(
                    normal_idx[group], data[group], zero_idx[:0]
                )
                normal += count
                continue
            self._jobs.put((normal_idx[group].copy(), data[group].copy()))
            self._outstanding += 1
            nbytes += self.write_finished(writer, wait=False)
        return nbytes, normal, int(zero_idx.size)

    def write_finished(self, writer: StreamWriter, *, wait: bool) -> int:
        """Write the groups compressed so far (all outstanding ones if ``wait``)."""
        nbytes = 0
        while self._outstanding:
            try:
                result = self._results.get(block=wait)
            except queue.Empty:
                break
            self._outstanding -= 1
            if isinstance(result, BaseException):
                raise result
            pages, blobs = result
            nbytes += writer.compressed(pages, blobs)
            self.counters.pages += int(pages.size)
            self.counters.compressed_size += sum(len(blob) for blob in blobs)
        return nbytes

    def close(self) -> None:
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join(2)
