"""Guest RAM as a real buffer: an anonymous mapping, or a file that *is* the RAM.

With ``memory-backend-file,share=on`` the mapping is MAP_SHARED, so the file holds the
guest's memory byte for byte (QEMU's behaviour, which lets tests compare the two sides'
files after a migration). ``share=off`` maps the file privately: its content is the
initial RAM and guest writes never reach it.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

PAGE_SIZE = 4096

# Linux >= 5.14: fault pages in writable without changing their content, so it can run
# while a loader writes the same RAM.
_MADV_POPULATE_WRITE = 23
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to call
    _libc = None

PageArray = npt.NDArray[np.uint8]


class RamError(Exception):
    """The RAM could not be created as asked (bad size, unusable backing file)."""


class GuestRam:
    """A page-aligned RAM block with numpy views for vectorised page work."""

    def __init__(
        self,
        size: int,
        *,
        backing_file: str | os.PathLike[str] | None = None,
        share: bool = False,
        name: str = "pc.ram",
    ) -> None:
        """``name``: the RAM block's name in messages (QEMU's main RAM is pc.ram)."""
        if size <= 0 or size % PAGE_SIZE:
            raise RamError(
                f"RAM size {size} is not a positive multiple of the page size "
                f"({PAGE_SIZE})"
            )
        self.size = size
        self.page_size = PAGE_SIZE
        self.page_count = size // PAGE_SIZE
        self.backing_file = None if backing_file is None else Path(backing_file)
        self.shared = share and backing_file is not None
        if self.backing_file is None:
            try:
                self._map = mmap.mmap(
                    -1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                )
            except OSError as exc:  # ENOMEM: more than the host will commit
                raise RamError(
                    f"cannot set up guest memory '{name}': {exc.strerror}"
                ) from None
            # As QEMU does for guest RAM: transparent huge pages cut the page-fault
            # cost of first touch (a destination writes every page once) by 512x.
            if hasattr(mmap, "MADV_HUGEPAGE"):
                self._map.madvise(mmap.MADV_HUGEPAGE)
        else:
            self._map = self._map_file(self.backing_file, size, share)
        self.buffer = memoryview(self._map)
        # (pages, page_size) bytes, and the same memory as 64-bit words for fast
        # zero-page tests.
        self.pages: PageArray = np.frombuffer(self._map, dtype=np.uint8).reshape(
            self.page_count, PAGE_SIZE
        )
        self.words = np.frombuffer(self._map, dtype=np.uint64).reshape(
            self.page_count, PAGE_SIZE // 8
        )

    @staticmethod
    def _map_file(path: Path, size: int, share: bool) -> mmap.mmap:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RamError(
                f"cannot open memory backend file '{path}': {exc.strerror}"
            ) from exc
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            flags = mmap.MAP_SHARED if share else mmap.MAP_PRIVATE
            return mmap.mmap(fd, size, flags=flags)
        except OSError as exc:
            raise RamError(
                f"cannot map memory backend file '{path}': {exc.strerror}"
            ) from exc
        finally:
            os.close(fd)

    def populate(self, first_page: int, count: int) -> bool:
        """Fault ``count`` pages in for writing, keeping their content.

        A page's first write costs a page fault (several microseconds on a VM host);
        a destination populates its RAM while it waits for the source, so loading
        pays memcpy only. Returns False where the kernel cannot do it.
        """
        if _libc is None or count <= 0:
            return False
        address = int(self.pages.__array_interface__["data"][0])
        result = _libc.madvise(
            ctypes.c_void_p(address + first_page * PAGE_SIZE),
            ctypes.c_size_t(count * PAGE_SIZE),
            ctypes.c_int(_MADV_POPULATE_WRITE),
        )
        return bool(result == 0)

    def read(self, offset: int, length: int) -> bytes:
        """A copy of guest memory (the hook that replaces qtest's memread)."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise RamError(f"read of {length} bytes at {offset} is outside the RAM")
        return bytes(self.buffer[offset : offset + length])

    def write(self, offset: int, data: bytes) -> None:
        """Write guest memory (test set-up and the qtest-style memwrite)."""
        if offset < 0 or offset + len(data) > self.size:
            raise RamError(f"write of {len(data)} bytes at {offset} is outside the RAM")
        self.buffer[offset : offset + len(data)] = data

    def fill_random(self, seed: int) -> None:
        """Fill the whole RAM with seeded pseudo-random bytes (benchmarks, tests)."""
        rng = np.random.default_rng(seed)
        step = 64 << 20  # bytes per batch: bounded temporary memory
        for start in range(0, self.size, step):
            stop = min(start + step, self.size)
            self.buffer[start:stop] = rng.bytes(stop - start)

    def flush(self) -> None:
        """Push a shared file mapping to the file (no-op for anonymous RAM)."""
        if self.shared:
            self._map.flush()

    def close(self) -> None:
        self.flush()
        # Views must go before the mapping can close; callers must not keep any.
        del self.pages
        del self.words
        self.buffer.release()
        try:
            self._map.close()
        except BufferError:
            # A numpy view is still alive somewhere (e.g. a test's slice); the
            # mapping is then freed when the last view goes.
            pass


def as_bytes(array: np.ndarray) -> memoryview:
    """A flat byte view of a C-contiguous array, without copying (empty is fine)."""
    if not array.flags.c_contiguous:
        raise ValueError("as_bytes needs a C-contiguous array (it must not copy)")
    return array.reshape(-1).view(np.uint8).data


def is_contiguous(pages: np.ndarray) -> bool:
    """True when the page indices are one ascending run (slice access, no gather)."""
    if not pages.size or int(pages[-1]) - int(pages[0]) + 1 != pages.size:
        return False
    # The end points can agree by accident (e.g. [0, 0, 2]); check every step.
    return pages.size < 3 or bool((np.diff(pages) == 1).all())


def zero_page_mask(ram: GuestRam, pages: np.ndarray) -> npt.NDArray[np.bool_]:
    """Which of ``pages`` are all zero.

    Random or busy memory almost never has a zero first word, so only pages whose first
    64-bit word is zero get the full 512-word test: the common case costs one word read
    per page.
    """
    if is_contiguous(pages):
        words = ram.words[int(pages[0]) : int(pages[-1]) + 1]
    else:
        words = ram.words[pages]
    mask: npt.NDArray[np.bool_] = words[:, 0] == 0
    candidates = np.flatnonzero(mask)
    if candidates.size:
        mask[candidates] = ~words[candidates].any(axis=1)
    return mask
