"""XBZRLE: QEMU's encoding, the ageing page cache, the stream record, and migrations."""

from __future__ import annotations

import random
import struct
import zlib

import numpy as np
import pytest

from qapigen_testing.fault_trials import fault_trial, fault_trial_seeds
from qapigen_testing.vm_engine import (
    MIB,
    Factory,
    Mode,
    Vm,
    busy_source,
    migrate_and_check,
)
from qapigen_vm import MigrationInfo
from qapigen_vm.dirty import MigrationBitmap
from qapigen_vm.page_cache import PageCache
from qapigen_vm.ram import GuestRam
from qapigen_vm.stream import (
    HEADER,
    REC_XBZRLE,
    RECORD,
    StreamError,
    StreamLoader,
    StreamWriter,
)
from qapigen_vm.xbzrle import (
    OVERFLOW,
    XbzrleError,
    decode_pages,
    encode_pages,
    parse_runs,
)
from qapigen_vm.xbzrle_sender import XbzrleSender

pytestmark = pytest.mark.timeout(60)

PAGE = 4096
XBZRLE = Mode(capabilities=("xbzrle",))


# -- the encoding ------------------------------------------------------------------------


def reference_encode(old: bytes, new: bytes, dlen: int = PAGE) -> bytes | None:
    """QEMU's encoder written out byte by byte from the format's facts (None:
    overflow), to check the vectorised one against."""

    def uleb(n: int) -> bytes:
        return bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7])

    out = bytearray()
    i = 0
    while i < len(new):
        if len(out) + 2 > dlen:
            return None
        zrun = 0
        while i < len(new) and old[i] == new[i]:
            i += 1
            zrun += 1
        if i == len(new):
            return bytes(out)
        out += uleb(zrun)
        if len(out) + 2 > dlen:
            return None
        begin = i
        while i < len(new) and old[i] != new[i]:
            i += 1
        out += uleb(i - begin)
        if len(out) + i - begin > dlen:
            return None
        out += new[begin:i]
    return bytes(out)


def mutated_pages(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Old pages, and new ones changed in every way that matters to the format."""
    rng = np.random.default_rng(seed)
    old = rng.integers(0, 256, (count, PAGE), dtype=np.uint8)
    new = old.copy()
    for row in range(count):
        style = row % 6
        if style == 0:
            continue  # unchanged
        if style == 1:  # a few scattered bytes
            spots = rng.choice(PAGE, int(rng.integers(1, 40)), replace=False)
        elif style == 2:  # many scattered bytes: near or past the overflow edge
            spots = rng.choice(PAGE, int(rng.integers(1000, 1400)), replace=False)
        elif style == 3:  # one long run (two-byte lengths), maybe at an edge
            begin = int(rng.choice([0, int(rng.integers(1, PAGE - 300)), PAGE - 200]))
            spots = np.arange(begin, begin + int(rng.integers(129, 200)))
        elif style == 4:  # rewritten entirely
            spots = np.arange(PAGE)
        else:  # first and last bytes only
            spots = np.array([0, PAGE - 1])
        new[row, spots] ^= rng.integers(1, 256, spots.size, dtype=np.uint8)
    return old, new


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_encoding_matches_the_reference_byte_for_byte(seed: int) -> None:
    old, new = mutated_pages(seed, 240)
    lengths, data = encode_pages(old, new)
    offset = 0
    for row in range(old.shape[0]):
        expected = reference_encode(old[row].tobytes(), new[row].tobytes())
        if expected is None:
            assert lengths[row] == OVERFLOW, row
            continue
        assert lengths[row] == len(expected), row
        assert data[offset : offset + len(expected)].tobytes() == expected, row
        offset += len(expected)
    assert offset == data.size
    kinds = {int(np.sign(n)) for n in lengths}
    assert kinds == {-1, 0, 1}  # overflow, unchanged and encoded pages all occurred


def test_overflow_edge_follows_qemus_room_checks() -> None:
    # Alternate changed/equal bytes: each run pair takes 3 bytes (1 + 1 + 1 data).
    for changed in range(1360, 1368):
        old = np.zeros((1, PAGE), dtype=np.uint8)
        new = old.copy()
        new[0, 1 : 2 * changed : 2] = 1
        lengths, _ = encode_pages(old, new)
        expected = reference_encode(old[0].tobytes(), new[0].tobytes())
        assert lengths[0] == (OVERFLOW if expected is None else len(expected))


def test_decoding_restores_the_new_pages() -> None:
    old, new = mutated_pages(4, 120)
    lengths, data = encode_pages(old, new)
    fits = lengths >= 0
    base = old[fits].copy()
    decode_pages(base, lengths[fits], data)
    assert np.array_equal(base, new[fits])


def test_known_encoding() -> None:
    old = np.zeros((1, PAGE), dtype=np.uint8)
    new = old.copy()
    new[0, 0:2] = [7, 8]
    new[0, 300] = 9
    _, data = encode_pages(old, new)
    # zrun 0, nzrun 2 "07 08", zrun 298 (two bytes: 0xaa 0x02), nzrun 1 "09"
    assert data.tobytes() == bytes([0, 2, 7, 8, 0xAA, 0x02, 1, 9])


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        (bytes([0, 0, 1]), "empty changed run"),
        (bytes([0, 1, 5, 0, 1, 6]), "empty equal run"),
        (bytes([0]), "truncated run"),
        (bytes([0, 1, 5, 3]), "truncated run"),
        (bytes([0, 5, 1, 2]), "passes the end"),
        (bytes([0x81, 0x20, 1, 1]), "passes the page end"),  # zrun of 4097
        (bytes([0x80, 0x80, 0x01, 1, 1]), "longer than two bytes"),
    ],
)
def test_decoder_rejects_malformed_encodings(encoded: bytes, problem: str) -> None:
    with pytest.raises(XbzrleError, match=problem):
        parse_runs(encoded, PAGE)


def test_bad_page_in_a_batch_leaves_every_page_untouched() -> None:
    old, new = mutated_pages(5, 12)
    lengths, data = encode_pages(old[1:2], new[1:2])
    base = old[:2].copy()
    bad = np.concatenate([data, np.array([0, 0], dtype=np.uint8)])
    with pytest.raises(XbzrleError, match="page 1 of the batch"):
        decode_pages(base, np.array([lengths[0], 2]), bad)
    assert np.array_equal(base, old[:2])


# -- the page cache ----------------------------------------------------------------------


def pages(*numbers: int) -> np.ndarray:
    return np.array(numbers, dtype=np.intp)


def test_cache_is_direct_mapped_and_ages_out_stale_pages() -> None:
    cache = PageCache(4 * PAGE, PAGE)  # 4 slots
    content = np.full((2, PAGE), 1, dtype=np.uint8)
    assert cache.insert(pages(1, 2), content, now=1).all()
    assert cache.lookup(pages(1, 5, 2), now=2).tolist() == [True, False, True]
    # page 5 wants slot 1, whose page 1 was used at sync 2: kept while age + 2 > now
    assert not cache.insert(pages(5), content[:1], now=3).any()
    assert cache.insert(pages(5), content[:1], now=4).all()
    assert cache.lookup(pages(1, 5), now=4).tolist() == [False, True]
    # the same page is always refreshed, whatever its age
    assert cache.insert(pages(2), np.zeros((1, PAGE), np.uint8), now=4).all()
    assert not cache.cached(pages(2)).any()


def test_cache_batch_gives_a_contended_slot_to_the_first_page() -> None:
    cache = PageCache(2 * PAGE, PAGE)
    content = np.arange(3, dtype=np.uint8)[:, None].repeat(PAGE, axis=1)
    stored = cache.insert(pages(4, 6, 5), content, now=1)
    assert stored.tolist() == [True, False, True]
    assert cache.cached(pages(4))[0, 0] == 0


def test_cache_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        PageCache(3 * PAGE, PAGE)


# -- the stream record -------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def send(self, data: bytes | memoryview) -> None:
        self.parts.append(bytes(data))


class Replay:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def recv_exact(self, into: memoryview) -> None:
        view = into.cast("B") if into.format != "B" else into
        if self.offset + view.nbytes > len(self.data):
            raise EOFError
        view[:] = self.data[self.offset : self.offset + view.nbytes]
        self.offset += view.nbytes


def record_xbzrle_stream(ram: GuestRam, rounds: int = 3) -> bytes:
    """A bulk pass, then rounds that change a few bytes of some pages each."""
    rng = np.random.default_rng(11)
    rec = Recorder()
    writer = StreamWriter(rec, ram)
    writer.header(None)
    sender = XbzrleSender(64 * PAGE, PAGE)  # smaller than RAM: slots are contended
    bitmap = MigrationBitmap(ram.page_count)
    bitmap.set_all()
    writer.sync(1)
    while (batch := bitmap.take(100)).size:
        writer.pages(batch)
    for sync in range(2, rounds + 2):
        dirty = rng.choice(ram.page_count, 150, replace=False)
        for page in dirty[:120]:
            ram.pages[page, rng.integers(0, PAGE, 5)] ^= 0x5A
        ram.pages[dirty[120:130]] = 0  # some become zero pages
        bitmap.bits[dirty] = True
        writer.sync(sync)
        while (batch := bitmap.take(100)).size:
            sender.send(writer, batch, sync, last_stage=sync == rounds + 1)
    writer.end()
    assert sender.counters.pages > 0 and sender.counters.cache_miss > 0
    return b"".join(rec.parts)


def load(blob: bytes, size: int) -> GuestRam:
    ram = GuestRam(size)
    loader = StreamLoader(Replay(blob), ram)
    loader.read_header(None)
    progress = loader.load()
    assert progress.xbzrle > 0
    return ram


def test_xbzrle_stream_round_trip() -> None:
    ram = GuestRam(4 * MIB)
    ram.fill_random(3)
    blob = record_xbzrle_stream(ram)
    assert np.array_equal(load(blob, 4 * MIB).pages, ram.pages)


def xbzrle_records(blob: bytes) -> list[int]:
    offsets = []
    offset = HEADER.size
    while offset < len(blob):
        kind, a, b, _ = RECORD.unpack_from(blob, offset)
        if kind == REC_XBZRLE:
            offsets.append(offset)
            length = RECORD.size + 6 * a + b
        elif kind == 1:
            length = RECORD.size + 4 * (a + b) + PAGE * a
        else:
            length = RECORD.size
        offset += length
    return offsets


def test_every_corrupted_byte_of_xbzrle_records_is_detected() -> None:
    ram = GuestRam(4 * MIB)
    ram.fill_random(4)
    blob = record_xbzrle_stream(ram)
    rng = random.Random(5)
    starts = xbzrle_records(blob)
    assert starts
    for _ in range(40):
        start = rng.choice(starts)
        _, a, b, _ = RECORD.unpack_from(blob, start)
        position = start + rng.randrange(RECORD.size + 6 * a + b)
        damaged = bytearray(blob)
        damaged[position] ^= 1 << rng.randrange(8)
        with pytest.raises(StreamError):
            load(bytes(damaged), 4 * MIB)


def forged_xbzrle(page: int, encoded: bytes, length: int | None = None) -> bytes:
    """A well-checksummed XBZRLE record around ``encoded`` (the loader's own checks)."""
    head = RECORD.pack(REC_XBZRLE, 1, len(encoded), 0)[:12]
    index = struct.pack("<I", page) + struct.pack(
        "<H", len(encoded) if length is None else length
    )
    crc = zlib.crc32(encoded, zlib.crc32(index, zlib.crc32(head)))
    return head + struct.pack("<I", crc) + index + encoded


def header(version: int = 2, size: int = 4 * MIB) -> bytes:
    body = HEADER.pack(b"QGVMSTRM", version, HEADER.size, PAGE, size, 0, bytes(16), 0)
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def test_a_checksummed_but_undecodable_page_is_a_decode_error() -> None:
    blob = header() + forged_xbzrle(3, bytes([0, 0, 1]))
    with pytest.raises(StreamError, match="Failed to load XBZRLE page - decode error!"):
        load(blob, 4 * MIB)


def test_an_overlong_page_is_a_len_overflow() -> None:
    blob = header() + forged_xbzrle(3, bytes(10), length=5000)
    with pytest.raises(StreamError, match="XBZRLE page - len overflow!"):
        load(blob, 4 * MIB)


def test_version_1_streams_cannot_carry_xbzrle_records() -> None:
    blob = header(version=1) + forged_xbzrle(3, bytes([0, 1, 1]))
    with pytest.raises(StreamError, match="unknown record type 0x04"):
        load(blob, 4 * MIB)


# -- migrations ---------------------------------------------------------------------------


class ScriptedGuest:
    """A guest driven by the migration's own passes, for exact expectations.

    At MIGRATION_PASS n (n <= rounds) it changes the same ``pages`` and marks them
    dirty, so pass n + 1 sends exactly those pages again; ``rewrite`` replaces them
    entirely, otherwise 8 bytes at offset 1000 + 16n are flipped. After the last
    round the guest is quiet and the migration converges.
    """

    def __init__(self, vm: Vm, pages: np.ndarray, rounds: int, rewrite: bool) -> None:
        self.vm = vm
        self.pages = pages
        self.rounds = rounds
        self.rewrite = rewrite
        self.seen: dict[int, MigrationInfo] = {}
        self._rng = np.random.default_rng(3)
        vm.events.hook = self

    def __call__(self, name: str, data: dict[str, object]) -> None:
        if name != "MIGRATION_PASS":
            return
        number = int(data["pass"])  # type: ignore[call-overload]
        self.seen[number] = self.vm.engine.query_migrate()
        if number > self.rounds:
            return
        ram = self.vm.ram
        if self.rewrite:
            ram.pages[self.pages] = self._rng.integers(
                1, 256, (self.pages.size, PAGE), dtype=np.uint8
            )
        else:
            offset = 1000 + 16 * number
            ram.pages[self.pages, offset : offset + 8] ^= 0xFF
        self.vm.engine.log.mark(self.pages)


def scripted_migration(
    vms: Factory, *, rewrite: bool, cache_size: int | None = None, rounds: int = 5
) -> tuple[MigrationInfo, ScriptedGuest]:
    src = vms.source(8 * MIB)
    XBZRLE.apply(src)
    src.engine.migrate_set_parameters({"max-bandwidth": 64 * MIB, "downtime-limit": 1})
    if cache_size is not None:
        src.engine.migrate_set_parameters({"xbzrle-cache-size": cache_size})
    guest = ScriptedGuest(src, np.arange(600, 900, dtype=np.intp), rounds, rewrite)
    dst = vms.destination(8 * MIB)  # loading needs no capability on this side
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    info = src.wait("completed", "failed", timeout=25)
    assert info.status is not None and info.status.value == "completed", info
    dst.wait("completed")
    assert np.array_equal(src.ram.pages, dst.ram.pages)
    return info, guest


def test_xbzrle_migration_sends_deltas_and_counts_them(vms: Factory) -> None:
    info, guest = scripted_migration(vms, rewrite=False)
    cache, ram = info.xbzrle_cache, info.ram
    assert cache is not None and ram is not None
    # The pages a pass sends carry that pass's change (the hook runs at the sync).
    # Pass 2 sends them whole (cache misses, now cached); passes 3 to 5 as deltas;
    # pass 6 finds them unchanged since (the guest is quiet): hits that send nothing.
    assert cache.cache_size == 64 * MIB  # the default
    assert cache.cache_miss == 300
    assert cache.pages == 4 * 300
    # each delta: zrun (2 bytes, >= 128), nzrun 8 (1 byte), 8 bytes, u16 length
    assert cache.bytes_ == 3 * 300 * (2 + 1 + 8 + 2)
    assert cache.overflow == 0
    assert guest.seen[3].xbzrle_cache is not None
    assert guest.seen[3].xbzrle_cache.cache_miss_rate == 1.0  # pass 2: all misses
    assert cache.cache_miss_rate == 0.0  # later passes: all hits
    assert ram.normal == 2048 - 64 + 300 and ram.duplicate == 64
    # the source sent far less than whole pages for the 1200 delta pages
    assert ram.transferred < (ram.normal + 100) * PAGE
    wire = info.to_wire()["xbzrle-cache"]
    assert isinstance(wire, dict)
    assert set(wire) == {
        "cache-size",
        "bytes",
        "pages",
        "cache-miss",
        "cache-miss-rate",
        "overflow",
    }
    active = guest.seen[4].to_wire()
    assert active["status"] == "active" and "xbzrle-cache" in active


def test_rewritten_pages_overflow_and_go_as_normal_pages(vms: Factory) -> None:
    info, _ = scripted_migration(vms, rewrite=True)
    cache, ram = info.xbzrle_cache, info.ram
    assert cache is not None and ram is not None
    assert cache.cache_miss == 300 and cache.pages == 300  # pass 6: unchanged
    assert cache.overflow == 3 * 300
    assert cache.bytes_ == cache.overflow * PAGE  # QEMU counts a page per overflow
    assert ram.normal == 2048 - 64 + 300 + 3 * 300


def test_cache_size_parameter_sizes_the_next_migrations_cache(vms: Factory) -> None:
    # One slot for 300 pages: the first page of pass 2 takes it, and it stays that
    # page's while it is used every pass (ageing): every other page always misses.
    info, guest = scripted_migration(vms, rewrite=False, cache_size=PAGE)
    cache = info.xbzrle_cache
    assert cache is not None
    assert cache.cache_size == PAGE
    assert cache.pages == 4 and cache.cache_miss == 300 + 4 * 299
    assert guest.vm.engine.query_migrate_cache_size() == PAGE


def test_cache_size_set_mid_migration_applies_to_the_next_one(vms: Factory) -> None:
    src = vms.source(8 * MIB)
    XBZRLE.apply(src)
    src.engine.migrate_set_parameters({"max-bandwidth": 16 * MIB})
    dst = vms.destination(8 * MIB)
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    src.wait("active")
    src.engine.migrate_set_parameters({"xbzrle-cache-size": 1 * MIB})
    info = src.wait("completed", "failed", timeout=25)
    assert info.xbzrle_cache is not None
    assert info.xbzrle_cache.cache_size == 64 * MIB  # as QEMU 7.2: not resized
    assert src.engine.query_migrate_parameters().xbzrle_cache_size == 1 * MIB


def test_xbzrle_with_a_busy_guest(vms: Factory) -> None:
    src = busy_source(vms, 16 * MIB, XBZRLE, rate=20000, pages=1024)
    src.engine.migrate_set_parameters({"max-bandwidth": 32 * MIB})
    dst = vms.destination(16 * MIB)
    migrate_and_check(src, dst)
    info = src.engine.query_migrate()
    assert info.xbzrle_cache is not None and info.xbzrle_cache.cache_miss > 0


def test_xbzrle_over_unix_with_a_deferred_destination(vms: Factory) -> None:
    uri = f"unix:{vms.tmp_path}/xbzrle.sock"
    src = busy_source(vms, 8 * MIB, XBZRLE)
    src.engine.migrate_set_parameters({"max-bandwidth": 64 * MIB})
    dst = vms.destination(8 * MIB, uri="defer")
    XBZRLE.apply(dst)
    dst.engine.migrate_incoming(uri)
    migrate_and_check(src, dst, uri)


@pytest.mark.parametrize("seed", fault_trial_seeds())
def test_xbzrle_fault_trials(vms: Factory, seed: int) -> None:
    fault_trial(vms, seed, XBZRLE)


def test_bitmap_scan_never_returns_a_page_twice_when_it_wraps() -> None:
    # XBZRLE needs each page once per batch; the scan used to revisit the pages it
    # had found before wrapping (and sent them twice).
    bitmap = MigrationBitmap(1024)
    bitmap.set_all()
    bitmap.take(700)
    taken = bitmap.take(700)
    assert taken.size == 324 and np.unique(taken).size == taken.size
    bitmap.bits[[5, 900]] = True
    bitmap.cursor = 950
    assert bitmap.take(10).tolist() == [5, 900]
