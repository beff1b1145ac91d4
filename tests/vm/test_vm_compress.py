"""compress: zlib pages from compression threads, their statistics, faults included."""

from __future__ import annotations

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
from qapigen_vm import GuestRam
from qapigen_vm.stream import (
    HEADER,
    REC_COMPRESSED,
    RECORD,
    StreamError,
    StreamLoader,
)

pytestmark = pytest.mark.timeout(60)

PAGE = 4096


def compress(
    threads: int = 2, level: int = 1, wait: bool = True, **extra: object
) -> Mode:
    parameters: dict[str, object] = {
        "compress-threads": threads,
        "compress-level": level,
        "compress-wait-thread": wait,
    }
    parameters.update(extra)
    return Mode(capabilities=("compress",), parameters=parameters)


def patterned_source(vms: Factory, mode: Mode, size: int = 8 * MIB) -> Vm:
    """Random pages with a constant tail in part of them, and some zero pages."""
    src = vms.source(size)
    src.ram.pages[600:1600, 1024:] = 0x42
    mode.apply(src)
    return src


def expected_compressed_size(ram: GuestRam, level: int) -> tuple[int, int]:
    """(pages, bytes) that compressing every non-zero page on its own gives."""
    nonzero = np.flatnonzero(ram.pages.any(axis=1))
    total = sum(len(zlib.compress(ram.pages[p].tobytes(), level)) for p in nonzero)
    return int(nonzero.size), total


@pytest.mark.parametrize("level", [1, 6, 9])
def test_every_page_compressed_and_counted(vms: Factory, level: int) -> None:
    src = patterned_source(vms, compress(threads=3, level=level))
    dst = vms.destination()
    migrate_and_check(src, dst)
    info = src.engine.query_migrate()
    stats, ram = info.compression, info.ram
    assert stats is not None and ram is not None
    pages, size = expected_compressed_size(src.ram, level)
    assert stats.pages == pages and stats.compressed_size == size
    assert stats.busy == 0 and stats.busy_rate == 0.0  # the thread was waited for
    assert ram.normal == 0 and ram.duplicate == 2048 - pages
    assert ram.transferred > size and ram.transferred < size + 64 * 1024
    assert stats.compression_rate > 1.0  # a third of the pages half constant
    wire = info.to_wire()["compression"]
    assert isinstance(wire, dict)
    assert set(wire) == {
        "pages",
        "busy",
        "busy-rate",
        "compressed-size",
        "compression-rate",
    }


def test_busy_threads_send_normal_pages_without_wait_thread(vms: Factory) -> None:
    # level 9 on one thread is slow: most groups find the thread busy
    src = patterned_source(vms, compress(threads=1, level=9, wait=False))
    dst = vms.destination()
    migrate_and_check(src, dst)
    info = src.engine.query_migrate()
    stats, ram = info.compression, info.ram
    assert stats is not None and ram is not None
    assert stats.busy > 0 and stats.pages > 0
    assert stats.busy == ram.normal  # every busy page went as a normal page
    assert stats.busy + stats.pages + ram.duplicate == 2048
    assert 0.0 < stats.busy_rate <= 1.0


def test_decompress_threads_on_the_destination(vms: Factory) -> None:
    src = patterned_source(vms, compress(threads=2))
    dst = vms.destination(uri="defer")
    dst.engine.migrate_set_parameters({"decompress-threads": 4})
    dst.engine.migrate_incoming(f"unix:{vms.tmp_path}/compress.sock")
    migrate_and_check(src, dst, f"unix:{vms.tmp_path}/compress.sock")


def test_compression_gives_way_to_xbzrle_after_the_first_pass(vms: Factory) -> None:
    mode = Mode(
        capabilities=("compress", "xbzrle"),
        parameters={"compress-threads": 2},
    )
    src = busy_source(vms, 16 * MIB, mode, rate=20000, pages=1024)
    src.engine.migrate_set_parameters({"max-bandwidth": 64 * MIB})
    dst = vms.destination(16 * MIB)
    migrate_and_check(src, dst)
    info = src.engine.query_migrate()
    assert info.compression is not None and info.xbzrle_cache is not None
    # only the first pass compresses: at most every page once
    assert 0 < info.compression.pages <= 4096
    assert info.xbzrle_cache.cache_miss > 0


def test_compress_with_a_dirtying_guest(vms: Factory) -> None:
    src = busy_source(vms, 16 * MIB, compress(threads=2), rate=20000, pages=2048)
    src.engine.migrate_set_parameters({"max-bandwidth": 64 * MIB})
    dst = vms.destination(16 * MIB)
    migrate_and_check(src, dst)
    info = src.engine.query_migrate()
    assert info.compression is not None and info.compression.pages > 4096 - 64


def header(size: int) -> bytes:
    body = HEADER.pack(b"QGVMSTRM", 2, HEADER.size, PAGE, size, 0, bytes(16), 0)
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def forged_compressed(page: int, blob: bytes) -> bytes:
    head = RECORD.pack(REC_COMPRESSED, 1, len(blob), 0)[:12]
    index = struct.pack("<II", page, len(blob))
    crc = zlib.crc32(blob, zlib.crc32(index, zlib.crc32(head)))
    return head + struct.pack("<I", crc) + index + blob


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


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        (b"not zlib at all", "failed to decompress page 3"),
        (zlib.compress(bytes(100)), "not exactly one page"),
        (zlib.compress(bytes(PAGE + 1)), "not exactly one page"),
    ],
)
def test_checksummed_but_bad_compressed_pages_are_refused(
    blob: bytes, problem: str
) -> None:
    ram = GuestRam(MIB)
    loader = StreamLoader(Replay(header(MIB) + forged_compressed(3, blob)), ram, 2)
    loader.read_header(None)
    with pytest.raises(StreamError, match=problem):
        loader.load()
    loader.close()
    assert not ram.pages.any()  # nothing was applied


@pytest.mark.parametrize("seed", fault_trial_seeds())
def test_compress_fault_trials(vms: Factory, seed: int) -> None:
    fault_trial(vms, seed, compress(threads=2), stream_bytes=8 * MIB)
