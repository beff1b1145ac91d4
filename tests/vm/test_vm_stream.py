"""The migration stream format: round trips, and every kind of damage is caught."""

from __future__ import annotations

import random
import struct
import uuid
import zlib

import numpy as np
import pytest

from qapigen_vm.dirty import MigrationBitmap
from qapigen_vm.ram import GuestRam
from qapigen_vm.stream import (
    HEADER,
    REC_PAGES,
    RECORD,
    StreamError,
    StreamLoader,
    StreamWriter,
)

SIZE = 4 << 20  # 1024 pages
UUID_A = uuid.UUID("11111111-2222-3333-4444-555555555555")
UUID_B = uuid.UUID("99999999-2222-3333-4444-555555555555")


class Recorder:
    """A channel that keeps what is sent."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def send(self, data: bytes | memoryview) -> None:
        self.parts.append(bytes(data))

    def blob(self) -> bytes:
        return b"".join(self.parts)


class Replay:
    """A channel that serves recorded bytes, then end-of-stream."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def recv_exact(self, into: memoryview) -> None:
        view = into.cast("B") if into.format != "B" else into
        if self.offset + view.nbytes > len(self.data):
            raise EOFError
        view[:] = self.data[self.offset : self.offset + view.nbytes]
        self.offset += view.nbytes


def make_source(seed: int = 7) -> GuestRam:
    ram = GuestRam(SIZE)
    ram.fill_random(seed)
    rng = np.random.default_rng(seed)
    ram.pages[rng.choice(ram.page_count, 200, replace=False)] = 0  # zero pages
    return ram


def record_stream(
    ram: GuestRam, source_uuid: uuid.UUID | None = None, chunk: int = 100
) -> bytes:
    """A full pass, then a second pass over a scattered subset of pages."""
    rec = Recorder()
    writer = StreamWriter(rec, ram)
    writer.header(source_uuid)
    bitmap = MigrationBitmap(ram.page_count)
    bitmap.set_all()
    writer.sync(1)
    while (pages := bitmap.take(chunk)).size:
        writer.pages(pages)
    bitmap.bits[::7] = True
    writer.sync(2)
    while (pages := bitmap.take(chunk)).size:
        writer.pages(pages)
    writer.end()
    return rec.blob()


def load(
    blob: bytes, local_uuid: uuid.UUID | None = None, size: int = SIZE
) -> GuestRam:
    ram = GuestRam(size)
    loader = StreamLoader(Replay(blob), ram)
    loader.read_header(local_uuid)
    loader.load()
    return ram


def test_round_trip_is_byte_identical() -> None:
    source = make_source()
    loaded = load(record_stream(source))
    assert np.array_equal(loaded.pages, source.pages)


def test_zero_records_clear_stale_destination_pages() -> None:
    source = make_source()
    blob = record_stream(source)
    ram = GuestRam(SIZE)
    ram.fill_random(99)  # the destination had other content
    loader = StreamLoader(Replay(blob), ram)
    loader.read_header(None)
    progress = loader.load()
    assert np.array_equal(ram.pages, source.pages)
    assert progress.zero > 0 and progress.normal > 0 and progress.syncs == 2


def test_every_single_corrupted_byte_is_detected() -> None:
    blob = record_stream(make_source(), chunk=256)
    rng = random.Random(1234)
    positions = rng.sample(range(len(blob)), 60) + [0, HEADER.size, len(blob) - 1]
    for position in positions:
        damaged = bytearray(blob)
        damaged[position] ^= 1 << rng.randrange(8)
        with pytest.raises(StreamError):
            load(bytes(damaged))


def test_every_truncation_is_detected() -> None:
    blob = record_stream(make_source(), chunk=256)
    rng = random.Random(99)
    for cut in rng.sample(range(len(blob)), 40) + [0, len(blob) - 1]:
        with pytest.raises(StreamError, match="ended unexpectedly"):
            load(blob[:cut])


def _record_offsets(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each record in a stream (header excluded)."""
    out = []
    offset = HEADER.size
    while offset < len(blob):
        kind, a, b, _ = RECORD.unpack_from(blob, offset)
        length = RECORD.size
        if kind == REC_PAGES:
            length += 4 * (a + b) + 4096 * a
        out.append((offset, length))
        offset += length
    return out


def test_a_dropped_record_is_detected() -> None:
    blob = record_stream(make_source(), chunk=256)
    records = _record_offsets(blob)
    offset, length = records[2]  # a whole, valid PAGES record goes missing
    assert RECORD.unpack_from(blob, offset)[0] == REC_PAGES
    with pytest.raises(StreamError, match="page records but the source sent"):
        load(blob[:offset] + blob[offset + length :])


def _header(page_size: int = 4096, ram_size: int = SIZE, version: int = 1) -> bytes:
    body = HEADER.pack(
        b"QGVMSTRM", version, HEADER.size, page_size, ram_size, 0, bytes(16), 0
    )[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"NOTASTRM" + bytes(HEADER.size - 8), "not a qapigen-vm migration stream"),
        (_header(ram_size=SIZE * 2), "RAM size mismatch: stream has 8388608 bytes"),
        (_header(page_size=8192), "page size mismatch: stream has 8192"),
        (_header(version=9), "unsupported migration stream version 9"),
    ],
)
def test_header_checks(header: bytes, message: str) -> None:
    with pytest.raises(StreamError, match=message):
        load(header)


def test_out_of_range_page_is_refused_even_with_a_valid_checksum() -> None:
    head = RECORD.pack(REC_PAGES, 0, 1, 0)[:12]
    index = struct.pack("<I", 5000)
    crc = zlib.crc32(index, zlib.crc32(head))
    blob = _header() + head + struct.pack("<I", crc) + index
    with pytest.raises(StreamError, match="addresses page 5000 beyond the RAM"):
        load(blob)


def test_oversized_record_is_refused_before_reading_it() -> None:
    head = RECORD.pack(REC_PAGES, 5000, 0, 0)
    with pytest.raises(StreamError, match="claims 5000 \\+ 0 pages"):
        load(_header() + head)


def test_unknown_record_type() -> None:
    head = RECORD.pack(0x7F, 0, 0, 0)
    with pytest.raises(StreamError, match="unknown record type 0x7f"):
        load(_header() + head)


def test_validate_uuid() -> None:
    source = make_source()
    blob = record_stream(source, source_uuid=UUID_A)
    assert np.array_equal(load(blob, UUID_A).pages, source.pages)
    # no UUID on the destination: nothing to compare with
    assert np.array_equal(load(blob, None).pages, source.pages)
    with pytest.raises(StreamError) as caught:
        load(blob, UUID_B)
    assert str(caught.value) == f"UUID received is {UUID_A} and local is {UUID_B}"
    # the source did not send one (capability off or no -uuid): no check either
    assert np.array_equal(load(record_stream(source), UUID_B).pages, source.pages)
