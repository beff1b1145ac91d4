"""The reference VM's migration stream: the project's own format, verified on load.

Layout (all integers little-endian)::

    header  : magic "QGVMSTRM", u16 version, u16 header size, u32 page size,
              u64 RAM size, u32 flags, 16-byte uuid, u32 crc32 of the preceding bytes
    record  : u8 type, 3 pad bytes, u32 a, u32 b, u32 crc32, then a payload
      PAGES : a = normal pages, b = zero pages; payload = (a + b) u32 page numbers
              (normal first), then a x page-size bytes of page data
      XBZRLE: a = pages, b = encoded bytes; payload = a u32 page numbers, a u16
              encoded lengths, then the b bytes of the pages' XBZRLE encodings
              (QEMU's format, see :mod:`.xbzrle`), each applied on top of the page
              the destination already holds (version 2)
      COMPRESSED: a = pages, b = payload bytes after the page numbers and lengths;
              payload = a u32 page numbers, a u32 lengths, then each page as one
              complete zlib stream (the compress capability; version 2)
      MULTIFD_SYNC: a = generation, one more than the last; everything the data
              channels carried before their SYNC a is applied before the main
              channel goes on (version 2; see :mod:`.multifd`); a multifd stream's
              END follows one, so nothing sent on a data channel can be missed
      SYNC  : a = dirty-sync-count of the pass that begins (no payload)
      END   : a = number of PAGES and XBZRLE records sent; the switchover point
      POSTCOPY: a = pages of RAM, b = payload bytes; payload = packed bitmap (numpy
              bit order) of the pages the destination must treat as missing; only
              PAGES records follow, each page installed only where still missing
      RESUME: a postcopy recovery connection (header flag bit 2) goes on after the
              handshake (no payload)
      KEEPALIVE: nothing to apply (version 3): a source that has nothing to send
              for a while (waiting for migrate-continue) says it is still there,
              so that a destination can give up on one that went silent
    return path (destination -> source): u8 kind, 3 pad, u32 length, payload: the
              text of ACK/ERROR, or postcopy's REQ_PAGES (u32 page numbers),
              RECV_BITMAP (packed bitmap of pages still missing), RESUME_ACK;
              every length is checked against what the RAM size allows for its
              kind (`return_path_limit`) before the payload is read

The crc32 of a record covers its first 12 header bytes and its whole payload, so any
corrupted byte, torn record or shifted boundary is caught before the record touches
guest RAM. END carries the record count, so a lost record is caught too.

Version 2 added the XBZRLE, COMPRESSED and MULTIFD_SYNC records and the multifd header flag (bit 1;
bits 8-15 hold the number of data channels), version 3 the KEEPALIVE record; the
loader still reads version 1 and 2 streams, in which those are refused. Header flag bit 3 says the source has x-colo:
after END the connection carries COLO's checkpoints (see :mod:`.colo_protocol`).
"""

from __future__ import annotations

import dataclasses
import struct
import uuid as uuid_mod
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from .ram import GuestRam, as_bytes, is_contiguous, zero_page_mask
from .xbzrle import XbzrleError, decode_pages

MAGIC: Final = b"QGVMSTRM"
VERSION: Final = 3
OLDEST_VERSION: Final = 1  # the loader still reads streams of this version on
HEADER: Final = struct.Struct("<8sHHIQI16sI")
RECORD: Final = struct.Struct("<B3xIII")
RETURN: Final = struct.Struct("<B3xI")

REC_PAGES: Final = 1
REC_SYNC: Final = 2
REC_END: Final = 3
REC_XBZRLE: Final = 4  # since version 2
REC_MULTIFD_SYNC: Final = 5  # since version 2
REC_COMPRESSED: Final = 6  # since version 2
REC_POSTCOPY: Final = 7  # since version 2: the switch to postcopy (see below)
REC_RESUME: Final = 8  # since version 2: a recovered postcopy goes on
REC_KEEPALIVE: Final = 9  # since version 3: the source is still there

RP_ACK: Final = 1
RP_ERROR: Final = 2
RP_MAX_TEXT: Final = 4096
# Postcopy's return-path messages (payload: binary, at most RP_MAX_PAYLOAD bytes)
RP_REQ_PAGES: Final = 3  # u32 page numbers the destination's guest waits for
RP_RECV_BITMAP: Final = 4  # packed bitmap of the pages the destination still lacks
RP_RESUME_ACK: Final = 5  # the destination is ready to go on after a recovery

FLAG_UUID: Final = 1
FLAG_MULTIFD: Final = 2
FLAG_RESUME: Final = 4  # a postcopy recovery connection, not a new migration
FLAG_COLO: Final = 8  # x-colo: after END the two sides go on as COLO (colo_*.py)
MULTIFD_SHIFT: Final = 8  # flags bits 8-15: multifd data channels

# A record carries at most this many pages (4 MiB of data), and never more than the
# RAM has: the loader's buffers are preallocated to that size, and a record that
# claims more is a corrupt stream.
MAX_RECORD_PAGES: Final = 1024
ZLIB_PAGE_SLACK: Final = 64  # most a page can grow by in its own zlib stream

IndexArray = npt.NDArray[np.intp]
ByteArray = npt.NDArray[np.uint8]
LengthArray = npt.NDArray[np.int64]


class StreamError(Exception):
    """The incoming stream is malformed, corrupted, truncated or not for this VM."""


class ByteSink(Protocol):
    """Where a stream is written (a socket, a pipe)."""

    def send(self, data: bytes | memoryview) -> None: ...


class ByteSource(Protocol):
    """Where a stream is read from."""

    def recv_exact(self, into: memoryview) -> None:
        """Fill ``into`` completely; raise EOFError if the peer closed first."""
        ...


class PagePlacer(Protocol):
    """Where postcopy puts received pages (see :mod:`.postcopy_ram`)."""

    def place(self, normal: IndexArray, data: ByteArray, zero: IndexArray) -> None:
        """Install pages the destination still lacks; drop the others."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class StreamHeader:
    page_size: int
    ram_size: int
    uuid: uuid_mod.UUID | None
    multifd_channels: int = 0  # 0: no multifd
    resume: bool = False  # a postcopy recovery connection
    colo: bool = False  # the source asks for COLO after the first full migration


# -- writing --------------------------------------------------------------------------


class StreamWriter:
    """Writes records; every method returns the bytes it put on the wire."""

    def __init__(self, channel: ByteSink, ram: GuestRam) -> None:
        self.channel = channel
        self.ram = ram
        self.records = 0
        self._data = np.empty((MAX_RECORD_PAGES, ram.page_size), dtype=np.uint8)

    def header(
        self,
        source_uuid: uuid_mod.UUID | None,
        multifd_channels: int = 0,
        *,
        resume: bool = False,
        colo: bool = False,
    ) -> int:
        flags = FLAG_UUID if source_uuid is not None else 0
        if resume:
            flags |= FLAG_RESUME
        if colo:
            flags |= FLAG_COLO
        if multifd_channels:
            flags |= FLAG_MULTIFD | multifd_channels << MULTIFD_SHIFT
        raw = source_uuid.bytes if source_uuid is not None else bytes(16)
        body = HEADER.pack(
            MAGIC,
            VERSION,
            HEADER.size,
            self.ram.page_size,
            self.ram.size,
            flags,
            raw,
            0,
        )[:-4]
        data = body + struct.pack("<I", zlib.crc32(body))
        self.channel.send(data)
        return len(data)

    def pages(self, pages: IndexArray) -> tuple[int, int, int]:
        """Send ``pages`` (at most MAX_RECORD_PAGES) from guest RAM as one record.

        Page data is copied out of RAM first, so the checksum matches what is sent even
        while the guest keeps writing; a page changed after the copy is dirty again
        and goes out in a later pass. Returns (bytes, normal pages, zero pages).
        """
        normal_idx, data, zero_idx = self.snapshot(pages)
        nbytes = self.send_pages(normal_idx, data, zero_idx)
        return nbytes, int(normal_idx.size), int(zero_idx.size)

    def snapshot(self, pages: IndexArray) -> tuple[IndexArray, ByteArray, IndexArray]:
        """Split ``pages`` into (non-zero pages, a copy of their data, zero pages).

        The copy lives in a buffer the next snapshot reuses.
        """
        zero = zero_page_mask(self.ram, pages)
        normal_idx = pages[~zero]
        zero_idx = pages[zero]
        n = int(normal_idx.size)
        data = self._data[:n]
        if is_contiguous(normal_idx):
            start = int(normal_idx[0])
            data[:] = self.ram.pages[start : start + n]
        elif n:
            np.take(self.ram.pages, normal_idx, axis=0, out=data)
        return normal_idx, data, zero_idx

    def send_pages(
        self, normal_idx: IndexArray, data: ByteArray, zero_idx: IndexArray
    ) -> int:
        """One PAGES record of whole pages (``data`` rows) and zero pages."""
        n = int(normal_idx.size)
        if n + zero_idx.size == 0:
            return 0
        index = np.concatenate((normal_idx, zero_idx)).astype("<u4").tobytes()
        head = RECORD.pack(REC_PAGES, n, int(zero_idx.size), 0)[:12]
        data = np.ascontiguousarray(data)
        crc = zlib.crc32(as_bytes(data), zlib.crc32(index, zlib.crc32(head)))
        self.channel.send(head + struct.pack("<I", crc) + index)
        if n:
            self.channel.send(as_bytes(data))
        self.records += 1
        return RECORD.size + len(index) + data.nbytes

    def xbzrle(
        self, pages: IndexArray, lengths: LengthArray, encoded: ByteArray
    ) -> int:
        """One XBZRLE record: ``encoded`` holds the pages' encodings back to back."""
        if not pages.size:
            return 0
        index = pages.astype("<u4").tobytes() + lengths.astype("<u2").tobytes()
        head = RECORD.pack(REC_XBZRLE, int(pages.size), int(encoded.size), 0)[:12]
        encoded = np.ascontiguousarray(encoded)
        crc = zlib.crc32(as_bytes(encoded), zlib.crc32(index, zlib.crc32(head)))
        self.channel.send(head + struct.pack("<I", crc) + index)
        self.channel.send(as_bytes(encoded))
        self.records += 1
        return RECORD.size + len(index) + int(encoded.size)

    def compressed(self, pages: IndexArray, blobs: list[bytes]) -> int:
        """One COMPRESSED record: each page's own zlib stream."""
        index = pages.astype("<u4").tobytes()
        index += np.array([len(b) for b in blobs], dtype="<u4").tobytes()
        payload = b"".join(blobs)
        head = RECORD.pack(REC_COMPRESSED, int(pages.size), len(payload), 0)[:12]
        crc = zlib.crc32(payload, zlib.crc32(index, zlib.crc32(head)))
        self.channel.send(head + struct.pack("<I", crc) + index)
        self.channel.send(payload)
        self.records += 1
        return RECORD.size + len(index) + len(payload)

    def sync(self, sync_count: int) -> int:
        return self._bare(REC_SYNC, sync_count)

    def multifd_sync(self, generation: int) -> int:
        return self._bare(REC_MULTIFD_SYNC, generation)

    def end(self) -> int:
        return self._bare(REC_END, self.records)

    def postcopy_start(self, missing: npt.NDArray[np.bool_]) -> int:
        """The switch to postcopy: ``missing`` marks the pages the destination must
        treat as absent (QEMU's discard bitmap); they come later, each at most once
        per connection."""
        payload = np.packbits(missing).tobytes()
        head = RECORD.pack(REC_POSTCOPY, int(missing.size), len(payload), 0)[:12]
        crc = zlib.crc32(payload, zlib.crc32(head))
        self.channel.send(head + struct.pack("<I", crc) + payload)
        return RECORD.size + len(payload)

    def resume(self) -> int:
        """After a recovery handshake: page records follow again."""
        return self._bare(REC_RESUME, 0)

    def keepalive(self) -> int:
        """Nothing to send for a while: the destination must not give up."""
        return self._bare(REC_KEEPALIVE, 0)

    def _bare(self, kind: int, value: int) -> int:
        head = RECORD.pack(kind, value, 0, 0)[:12]
        self.channel.send(head + struct.pack("<I", zlib.crc32(head)))
        return RECORD.size


# -- loading --------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class LoadProgress:
    """What the loader has applied so far (the destination's statistics)."""

    bytes: int = 0
    records: int = 0
    normal: int = 0
    zero: int = 0
    xbzrle: int = 0
    compressed: int = 0
    syncs: int = 0


class StreamLoader:
    """Reads and verifies a stream into guest RAM."""

    def __init__(
        self, channel: ByteSource, ram: GuestRam, decompress_threads: int = 1
    ) -> None:
        self.channel = channel
        self.ram = ram
        self.decompress_threads = decompress_threads
        self._pool: ThreadPoolExecutor | None = None
        # In postcopy, pages go through the placer (never over a page the running
        # destination guest may already have written).
        self.placer: PagePlacer | None = None
        self.progress = LoadProgress()
        self.version = VERSION
        self.header: StreamHeader | None = None  # once read_header has read it
        self.multifd_generation = 0  # the last MULTIFD_SYNC applied
        self._head = bytearray(RECORD.size)
        # Every length the stream states is checked against what this RAM could
        # legitimately need before a byte of it is read.
        self.record_pages = min(MAX_RECORD_PAGES, ram.page_count)
        pages = self.record_pages
        self._index = np.empty(2 * pages, dtype="<u4")
        self._lengths = np.empty(pages, dtype="<u2")
        # page data, or compressed pages that may each grow a little
        self._raw = np.empty(pages * (ram.page_size + ZLIB_PAGE_SLACK), dtype=np.uint8)
        self._data = self._raw[: pages * ram.page_size].reshape(pages, ram.page_size)

    def _read(self, into: memoryview, what: str) -> None:
        try:
            self.channel.recv_exact(into)
        except EOFError:
            raise StreamError(
                f"migration stream ended unexpectedly while reading {what}"
            ) from None
        except TimeoutError as exc:  # a silent source: the reason says it all
            raise StreamError(str(exc)) from None
        except OSError as exc:
            raise StreamError(
                f"migration stream read failed while reading {what}: "
                f"{exc.strerror or exc}"
            ) from exc
        self.progress.bytes += into.nbytes

    def read_header(
        self, local_uuid: uuid_mod.UUID | None, magic: bytes = b""
    ) -> StreamHeader:
        """Check the header: format, geometry, and (validate-uuid) the VM identity.

        ``magic``: the header's first bytes when the caller has already read them
        (a multifd destination reads them to tell its connections apart).
        """
        raw = bytearray(HEADER.size)
        raw[: len(magic)] = magic
        self.progress.bytes += len(magic)
        self._read(memoryview(raw)[len(magic) :], "the stream header")
        magic, version, size, page_size, ram_size, flags, uid, crc = HEADER.unpack(raw)
        if magic != MAGIC:
            raise StreamError(f"not a qapigen-vm migration stream (magic {magic!r})")
        if zlib.crc32(raw[:-4]) != crc:
            raise StreamError("migration stream header checksum mismatch")
        if not OLDEST_VERSION <= version <= VERSION or size != HEADER.size:
            raise StreamError(
                f"unsupported migration stream version {version} (this VM reads "
                f"{VERSION})"
            )
        if page_size != self.ram.page_size:
            raise StreamError(
                f"page size mismatch: stream has {page_size}, this VM uses "
                f"{self.ram.page_size}"
            )
        if ram_size != self.ram.size:
            raise StreamError(
                f"RAM size mismatch: stream has {ram_size} bytes, this VM has "
                f"{self.ram.size}"
            )
        self.version = version
        channels = (flags >> MULTIFD_SHIFT) & 0xFF if flags & FLAG_MULTIFD else 0
        if version < 2 and channels:
            raise StreamError("multifd in a version 1 stream")
        source_uuid = uuid_mod.UUID(bytes=bytes(uid)) if flags & FLAG_UUID else None
        if source_uuid is not None and local_uuid is not None:
            if source_uuid != local_uuid:
                raise StreamError(
                    f"UUID received is {source_uuid} and local is {local_uuid}"
                )
        resume = bool(flags & FLAG_RESUME)
        self.header = StreamHeader(
            page_size, ram_size, source_uuid, channels, resume, bool(flags & FLAG_COLO)
        )
        return self.header

    def load(
        self,
        on_sync: Callable[[int], None] | None = None,
        on_multifd_sync: Callable[[int], None] | None = None,
        on_postcopy: Callable[[npt.NDArray[np.bool_]], None] | None = None,
    ) -> LoadProgress:
        """Apply records until END; raise StreamError on anything wrong.

        ``on_multifd_sync`` is called at each MULTIFD_SYNC record (a stream without
        multifd must not have any).
        """
        head = memoryview(self._head)
        last_kind = previous = 0  # previous: the last record before, keepalives aside
        while True:
            if last_kind != REC_KEEPALIVE:
                previous = last_kind
            self._read(head, "a record header")
            kind, a, b, crc = RECORD.unpack(self._head)
            last_kind = kind
            if kind == REC_PAGES:
                self._load_pages(a, b, crc)
            elif self.placer is not None and kind in (REC_XBZRLE, REC_COMPRESSED):
                raise StreamError(f"record type 0x{kind:02x} is not valid in postcopy")
            elif kind == REC_XBZRLE and self.version >= 2:
                self._load_xbzrle(a, b, crc)
            elif kind == REC_COMPRESSED and self.version >= 2:
                self._load_compressed(a, b, crc)
            elif kind == REC_POSTCOPY and self.version >= 2 and self.placer is None:
                if on_postcopy is None:
                    raise StreamError(
                        "the source switched to postcopy but this VM's postcopy-ram "
                        "capability is off"
                    )
                on_postcopy(self._read_postcopy(a, b, crc))
            elif kind == REC_MULTIFD_SYNC and on_multifd_sync is not None:
                self._check_bare(head, b, crc)
                if a != self.multifd_generation + 1:
                    raise StreamError(
                        f"multifd sync {a} where {self.multifd_generation + 1} was due"
                    )
                self.multifd_generation = a
                on_multifd_sync(a)
            elif kind == REC_KEEPALIVE and self.version >= 3:
                self._check_bare(head, b, crc)
            elif kind in (REC_SYNC, REC_END):
                if zlib.crc32(head[:12]) != crc or b != 0:
                    raise StreamError(
                        f"checksum mismatch in record {self.progress.records + 1}"
                    )
                if kind == REC_END:
                    if a != self.progress.records:
                        raise StreamError(
                            f"stream ended after {self.progress.records} page records "
                            f"but the source sent {a}"
                        )
                    multifd = on_multifd_sync is not None and self.placer is None
                    if multifd and previous != REC_MULTIFD_SYNC:
                        raise StreamError(
                            "the stream ended without a final multifd sync: pages "
                            "sent on the data channels could be missing"
                        )
                    return self.progress
                self.progress.syncs = a
                if on_sync is not None:
                    on_sync(a)
            else:
                raise StreamError(
                    f"unknown record type 0x{kind:02x} at stream offset "
                    f"{self.progress.bytes - RECORD.size}"
                )

    def _read_postcopy(self, count: int, size: int, crc: int) -> npt.NDArray[np.bool_]:
        if count != self.ram.page_count or size != (count + 7) // 8:
            raise StreamError(
                f"postcopy switch for {count} pages in {size} bytes (this VM has "
                f"{self.ram.page_count} pages)"
            )
        payload = bytearray(size)
        self._read(memoryview(payload), "the postcopy switch's page bitmap")
        if zlib.crc32(payload, zlib.crc32(memoryview(self._head)[:12])) != crc:
            raise StreamError("checksum mismatch in the postcopy switch record")
        bits = np.unpackbits(np.frombuffer(bytes(payload), dtype=np.uint8))
        return bits[:count].astype(np.bool_)

    def read_resume(self) -> None:
        """The RESUME record that ends a recovery handshake."""
        head = memoryview(self._head)
        self._read(head, "the postcopy resume record")
        kind, a, b, crc = RECORD.unpack(self._head)
        if kind != REC_RESUME or a or b or zlib.crc32(head[:12]) != crc:
            raise StreamError(f"expected a postcopy resume record, got type {kind}")

    def _load_compressed(self, count: int, size: int, crc: int) -> None:
        record = self.progress.records + 1
        page_size = self.ram.page_size
        # zlib grows incompressible data by a few bytes per page (well under 64)
        limit = count * (page_size + ZLIB_PAGE_SLACK)
        if not 0 < count <= self.record_pages or size > limit:
            raise StreamError(
                f"record {record} claims {count} compressed pages in {size} bytes"
            )
        index = self._index[: 2 * count]
        payload = self._raw[:size]
        self._read(as_bytes(index), f"record {record}'s page numbers and lengths")
        self._read(as_bytes(payload), f"record {record}'s compressed data")
        check = zlib.crc32(memoryview(self._head)[:12])
        check = zlib.crc32(as_bytes(index), check)
        check = zlib.crc32(as_bytes(payload), check)
        if check != crc:
            raise StreamError(f"checksum mismatch in record {record}")
        pages = index[:count].astype(np.intp)
        lengths = index[count:].astype(np.int64)
        if int(pages.max()) >= self.ram.page_count:
            raise StreamError(
                f"record {record} addresses page {int(pages.max())} beyond the RAM "
                f"({self.ram.page_count} pages)"
            )
        if int(lengths.sum()) != size:
            raise StreamError(f"record {record}: page lengths do not add up to {size}")
        ends = np.cumsum(lengths)
        raw = payload.tobytes()
        blobs = [
            raw[e - n : e] for e, n in zip(ends.tolist(), lengths.tolist(), strict=True)
        ]
        out = np.empty((count, page_size), dtype=np.uint8)
        failures = list(self._inflate_all(blobs, out))
        if failures:
            position, text = failures[0]
            raise StreamError(
                f"record {record}: failed to decompress page {int(pages[position])}: "
                f"{text}"
            )
        self.ram.pages[pages] = out
        self.progress.records = record
        self.progress.compressed += count

    def _inflate_all(
        self, blobs: list[bytes], out: npt.NDArray[np.uint8]
    ) -> list[tuple[int, str]]:
        """Inflate each blob into its row of ``out`` on the decompress threads (zlib
        releases the GIL); returns (position, reason) for every page that failed."""
        threads = max(1, self.decompress_threads)
        parts = [range(i, len(blobs), threads) for i in range(threads)]

        def inflate(part: range) -> list[tuple[int, str]]:
            failed = []
            for i in part:
                inflater = zlib.decompressobj()
                try:
                    data = inflater.decompress(blobs[i], out.shape[1] + 1)
                except zlib.error as exc:
                    failed.append((i, str(exc)))
                    continue
                if len(data) != out.shape[1] or not inflater.eof:
                    failed.append((i, f"not exactly one page ({len(data)} bytes)"))
                    continue
                out[i] = np.frombuffer(data, dtype=np.uint8)
            return failed

        if threads == 1 or len(blobs) < 2:
            return inflate(range(len(blobs)))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="decompress")
        results = self._pool.map(inflate, parts)
        return sorted(f for part in results for f in part)

    def close(self) -> None:
        """Stop the decompress threads (if any were started)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _check_bare(self, head: memoryview, b: int, crc: int) -> None:
        if zlib.crc32(head[:12]) != crc or b != 0:
            raise StreamError(
                f"checksum mismatch in record {self.progress.records + 1}"
            )

    def _load_pages(self, normal: int, zero: int, crc: int) -> None:
        record = self.progress.records + 1
        if normal + zero == 0 or normal + zero > self.record_pages:
            raise StreamError(
                f"record {record} claims {normal} + {zero} pages (at most "
                f"{self.record_pages} allowed)"
            )
        index = self._index[: normal + zero]
        data = self._data[:normal]
        self._read(as_bytes(index), f"record {record}'s page numbers")
        if normal:
            self._read(as_bytes(data), f"record {record}'s page data")
        check = zlib.crc32(memoryview(self._head)[:12])
        check = zlib.crc32(as_bytes(index), check)
        check = zlib.crc32(as_bytes(data), check)
        if check != crc:
            raise StreamError(f"checksum mismatch in record {record}")
        if int(index.max()) >= self.ram.page_count:
            raise StreamError(
                f"record {record} addresses page {int(index.max())} beyond the RAM "
                f"({self.ram.page_count} pages)"
            )
        normal_idx = index[:normal].astype(np.intp)
        zero_idx = index[normal:].astype(np.intp)
        if self.placer is not None:
            self.placer.place(normal_idx, data, zero_idx)
        elif is_contiguous(normal_idx):
            start = int(normal_idx[0])
            self.ram.pages[start : start + normal] = data
        elif normal:
            self.ram.pages[normal_idx] = data
        if zero:
            # Only touch pages that are not zero already: writing zeros would fault in
            # (and, for a file backend, allocate) memory for nothing.
            stale = zero_idx[~zero_page_mask(self.ram, zero_idx)]
            if stale.size:
                self.ram.pages[stale] = 0
        self.progress.records = record
        self.progress.normal += normal
        self.progress.zero += zero

    def _load_xbzrle(self, count: int, size: int, crc: int) -> None:
        record = self.progress.records + 1
        page_size = self.ram.page_size
        if not 0 < count <= self.record_pages or size > count * page_size:
            raise StreamError(
                f"record {record} claims {count} XBZRLE pages in {size} bytes (at "
                f"most {self.record_pages} pages of at most {page_size} bytes allowed)"
            )
        index = self._index[:count]
        lengths = self._lengths[:count]
        data = self._data.reshape(-1)[:size]
        self._read(as_bytes(index), f"record {record}'s page numbers")
        self._read(as_bytes(lengths), f"record {record}'s encoded lengths")
        self._read(as_bytes(data), f"record {record}'s XBZRLE data")
        check = zlib.crc32(memoryview(self._head)[:12])
        check = zlib.crc32(as_bytes(index), check)
        check = zlib.crc32(as_bytes(lengths), check)
        check = zlib.crc32(as_bytes(data), check)
        if check != crc:
            raise StreamError(f"checksum mismatch in record {record}")
        pages = index.astype(np.intp)
        if int(pages.max()) >= self.ram.page_count:
            raise StreamError(
                f"record {record} addresses page {int(pages.max())} beyond the RAM "
                f"({self.ram.page_count} pages)"
            )
        if np.unique(pages).size != count:
            raise StreamError(f"record {record} repeats a page number")
        widths = lengths.astype(np.int64)
        too_long = np.flatnonzero(widths > page_size)
        if too_long.size or int(widths.sum()) != size:
            where = int(pages[too_long[0]]) if too_long.size else None
            raise StreamError(
                f"record {record}: Failed to load XBZRLE page - len overflow!"
                + (f" (page {where})" if where is not None else "")
            )
        base = self.ram.pages[pages]
        try:
            decode_pages(base, widths, data)
        except XbzrleError as exc:
            raise StreamError(
                f"record {record}: Failed to load XBZRLE page - decode error! ({exc})"
            ) from None
        self.ram.pages[pages] = base
        self.progress.records = record
        self.progress.xbzrle += count


# -- return path ----------------------------------------------------------------------


def encode_reply(kind: int, text: str = "") -> bytes:
    raw = text.encode("utf-8")[:RP_MAX_TEXT]
    return RETURN.pack(kind, len(raw)) + raw


def read_reply(channel: ByteSource) -> tuple[int, str]:
    """One return-path message; EOFError if the destination closed without one."""
    head = bytearray(RETURN.size)
    channel.recv_exact(memoryview(head))
    kind, length = RETURN.unpack(head)
    if kind not in (RP_ACK, RP_ERROR) or length > RP_MAX_TEXT:
        raise StreamError(f"malformed return-path message (kind {kind})")
    text = bytearray(length)
    if length:
        channel.recv_exact(memoryview(text))
    return kind, text.decode("utf-8", "replace")


def encode_message(kind: int, payload: bytes) -> bytes:
    """A postcopy return-path message (page request, bitmap, resume ack)."""
    return RETURN.pack(kind, len(payload)) + payload


def return_path_limit(kind: int, page_count: int) -> int | None:
    """The most bytes a return-path message of ``kind`` can carry for a RAM of
    ``page_count`` pages (None: not a kind of message)."""
    if kind in (RP_ACK, RP_ERROR):
        return RP_MAX_TEXT
    if kind == RP_REQ_PAGES:
        return 4 * page_count  # each page at most once: u32 page numbers
    if kind == RP_RECV_BITMAP:
        return (page_count + 7) // 8  # one bit per page
    if kind == RP_RESUME_ACK:
        return 4
    return None


def read_message(channel: ByteSource, page_count: int) -> tuple[int, bytes]:
    """Any return-path message: (kind, payload); ACK and ERROR carry UTF-8 text.

    The stated length is checked against what the kind can carry for this RAM of
    ``page_count`` pages before the payload is read.
    """
    head = bytearray(RETURN.size)
    channel.recv_exact(memoryview(head))
    kind, length = RETURN.unpack(head)
    limit = return_path_limit(kind, page_count)
    if limit is None:
        raise StreamError(f"malformed return-path message (kind {kind})")
    if length > limit:
        raise StreamError(
            f"malformed return-path message (kind {kind}): {length} bytes, at most "
            f"{limit} for {page_count} pages"
        )
    payload = bytearray(length)
    if length:
        channel.recv_exact(memoryview(payload))
    return kind, bytes(payload)
