"""The reference VM's migration stream: the project's own format, verified on load.

Layout (all integers little-endian)::

    header  : magic "QGVMSTRM", u16 version, u16 header size, u32 page size,
              u64 RAM size, u32 flags, 16-byte uuid, u32 crc32 of the preceding bytes
    record  : u8 type, 3 pad bytes, u32 a, u32 b, u32 crc32, then a payload
      PAGES : a = normal pages, b = zero pages; payload = (a + b) u32 page numbers
              (normal first), then a x page-size bytes of page data
      SYNC  : a = dirty-sync-count of the pass that begins (no payload)
      END   : a = number of PAGES records sent; the switchover point
    return path (destination -> source): u8 kind (ACK/ERROR), 3 pad, u32 length, text

The crc32 of a record covers its first 12 header bytes and its whole payload, so any
corrupted byte, torn record or shifted boundary is caught before the record touches
guest RAM. END carries the record count, so a lost record is caught too.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid as uuid_mod
import zlib
from collections.abc import Callable
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from .ram import GuestRam, as_bytes, is_contiguous, zero_page_mask

MAGIC: Final = b"QGVMSTRM"
VERSION: Final = 1
HEADER: Final = struct.Struct("<8sHHIQI16sI")
RECORD: Final = struct.Struct("<B3xIII")
RETURN: Final = struct.Struct("<B3xI")

REC_PAGES: Final = 1
REC_SYNC: Final = 2
REC_END: Final = 3

RP_ACK: Final = 1
RP_ERROR: Final = 2
RP_MAX_TEXT: Final = 4096

FLAG_UUID: Final = 1

# A record carries at most this many pages (4 MiB of data): the loader's buffers are
# preallocated to this size and anything bigger is a corrupt stream.
MAX_RECORD_PAGES: Final = 1024

IndexArray = npt.NDArray[np.intp]


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


@dataclasses.dataclass(frozen=True, slots=True)
class StreamHeader:
    page_size: int
    ram_size: int
    uuid: uuid_mod.UUID | None


# -- writing --------------------------------------------------------------------------


class StreamWriter:
    """Writes records; every method returns the bytes it put on the wire."""

    def __init__(self, channel: ByteSink, ram: GuestRam) -> None:
        self.channel = channel
        self.ram = ram
        self.records = 0
        self._data = np.empty((MAX_RECORD_PAGES, ram.page_size), dtype=np.uint8)

    def header(self, source_uuid: uuid_mod.UUID | None) -> int:
        flags = FLAG_UUID if source_uuid is not None else 0
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
        index = np.concatenate((normal_idx, zero_idx)).astype("<u4").tobytes()
        head = RECORD.pack(REC_PAGES, n, int(zero_idx.size), 0)[:12]
        crc = zlib.crc32(as_bytes(data), zlib.crc32(index, zlib.crc32(head)))
        self.channel.send(head + struct.pack("<I", crc) + index)
        if n:
            self.channel.send(as_bytes(data))
        self.records += 1
        return RECORD.size + len(index) + data.nbytes, n, int(zero_idx.size)

    def sync(self, sync_count: int) -> int:
        return self._bare(REC_SYNC, sync_count)

    def end(self) -> int:
        return self._bare(REC_END, self.records)

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
    syncs: int = 0


class StreamLoader:
    """Reads and verifies a stream into guest RAM."""

    def __init__(self, channel: ByteSource, ram: GuestRam) -> None:
        self.channel = channel
        self.ram = ram
        self.progress = LoadProgress()
        self._head = bytearray(RECORD.size)
        self._index = np.empty(2 * MAX_RECORD_PAGES, dtype="<u4")
        self._data = np.empty((MAX_RECORD_PAGES, ram.page_size), dtype=np.uint8)

    def _read(self, into: memoryview, what: str) -> None:
        try:
            self.channel.recv_exact(into)
        except EOFError:
            raise StreamError(
                f"migration stream ended unexpectedly while reading {what}"
            )
        except OSError as exc:
            raise StreamError(
                f"migration stream read failed while reading {what}: "
                f"{exc.strerror or exc}"
            )
        self.progress.bytes += into.nbytes

    def read_header(self, local_uuid: uuid_mod.UUID | None) -> StreamHeader:
        """Check the header: format, geometry, and (validate-uuid) the VM identity."""
        raw = bytearray(HEADER.size)
        self._read(memoryview(raw), "the stream header")
        magic, version, size, page_size, ram_size, flags, uid, crc = HEADER.unpack(raw)
        if magic != MAGIC:
            raise StreamError(f"not a qapigen-vm migration stream (magic {magic!r})")
        if zlib.crc32(raw[:-4]) != crc:
            raise StreamError("migration stream header checksum mismatch")
        if version != VERSION or size != HEADER.size:
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
        source_uuid = uuid_mod.UUID(bytes=bytes(uid)) if flags & FLAG_UUID else None
        if source_uuid is not None and local_uuid is not None:
            if source_uuid != local_uuid:
                raise StreamError(
                    f"UUID received is {source_uuid} and should be {local_uuid}"
                )
        return StreamHeader(page_size, ram_size, source_uuid)

    def load(self, on_sync: Callable[[int], None] | None = None) -> LoadProgress:
        """Apply records until END; raise StreamError on anything wrong."""
        head = memoryview(self._head)
        while True:
            self._read(head, "a record header")
            kind, a, b, crc = RECORD.unpack(self._head)
            if kind == REC_PAGES:
                self._load_pages(a, b, crc)
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
                    return self.progress
                self.progress.syncs = a
                if on_sync is not None:
                    on_sync(a)
            else:
                raise StreamError(
                    f"unknown record type 0x{kind:02x} at stream offset "
                    f"{self.progress.bytes - RECORD.size}"
                )

    def _load_pages(self, normal: int, zero: int, crc: int) -> None:
        record = self.progress.records + 1
        if normal + zero == 0 or normal + zero > MAX_RECORD_PAGES:
            raise StreamError(
                f"record {record} claims {normal} + {zero} pages (at most "
                f"{MAX_RECORD_PAGES} allowed)"
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
        if is_contiguous(normal_idx):
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
