"""Hostile migration input: lengths bounded by what the RAM could need, and an incoming
side that gives up on a silent or incomplete source instead of waiting for ever."""

from __future__ import annotations

import socket
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from qapigen_testing.vm_engine import Factory, Vm, same_memory
from qapigen_vm import colo_protocol
from qapigen_vm import source as source_module
from qapigen_vm.codecs import CodecError, make_codec, zstd_available
from qapigen_vm.colo_protocol import ColoError
from qapigen_vm.destination import IncomingTimeouts
from qapigen_vm.multifd import (
    PACKET,
    PKT_PAGES,
    PKT_SYNC,
    MultifdReceiver,
    encode_hello,
)
from qapigen_vm.ram import GuestRam
from qapigen_vm.stream import (
    REC_PAGES,
    RECORD,
    RETURN,
    RP_ACK,
    RP_RECV_BITMAP,
    RP_REQ_PAGES,
    RP_RESUME_ACK,
    StreamError,
    StreamLoader,
    StreamWriter,
    read_message,
)
from qapigen_vm.transport import SocketChannel
from qapigen_vm_qmp.types import COLOMessage

PAGE = 4096


class Replay:
    """A channel that serves the given bytes, then end-of-stream."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def recv_exact(self, into: memoryview) -> None:
        view = into.cast("B") if into.format != "B" else into
        if self.offset + view.nbytes > len(self.data):
            raise EOFError
        view[:] = self.data[self.offset : self.offset + view.nbytes]
        self.offset += view.nbytes

    def send(self, data: bytes | memoryview) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def close(self) -> None:
        pass


def peak_allocation(call: Callable[[], object]) -> int:
    """The most memory Python allocated at once while `call` ran (it may raise)."""
    tracemalloc.start()
    try:
        try:
            call()
        except (ColoError, StreamError):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- lengths: from what the stream can legitimately carry -------------------------


def colo_header(message: COLOMessage, length: int) -> bytes:
    index = colo_protocol.MESSAGES.index(message)
    return colo_protocol.HEAD.pack(colo_protocol.MAGIC, index, length, 0)


def test_a_colo_header_cannot_make_the_receiver_allocate() -> None:
    """16 bytes claiming a 256 MiB payload made a secondary allocate it (R12)."""
    hostile = colo_header(COLOMessage.VMSTATE_SEND, 1 << 28)
    with pytest.raises(ColoError) as caught:
        colo_protocol.receive(Replay(hostile), 1024)
    assert str(caught.value) == (
        "Can't receive COLO message: vmstate-send claims 268435456 bytes of payload, "
        "at most 128 for this VM (1024 pages)"
    )
    assert peak_allocation(lambda: colo_protocol.receive(Replay(hostile), 1024)) < (
        64 << 10
    )


@pytest.mark.parametrize(
    "message, most",
    [
        (COLOMessage.VMSTATE_SEND, 128),  # the dirty bitmap of 1024 pages
        (COLOMessage.VMSTATE_SIZE, colo_protocol.DEVICE_STATE_MAX),
        (COLOMessage.CHECKPOINT_REQUEST, 0),
        (COLOMessage.VMSTATE_LOADED, 0),
    ],
)
def test_each_colo_message_carries_at_most_what_it_needs(
    message: COLOMessage, most: int
) -> None:
    payload = bytes(most)
    fitting = colo_protocol.encode(message, payload)
    assert colo_protocol.receive(Replay(fitting), 1024) == (message, payload)
    with pytest.raises(ColoError, match=f"at most {most} for this VM"):
        colo_protocol.receive(Replay(colo_header(message, most + 1)), 1024)


def return_message(kind: int, length: int) -> bytes:
    return RETURN.pack(kind, length) + bytes(length)


@pytest.mark.parametrize(
    "kind, most",
    [(RP_REQ_PAGES, 4 * 1024), (RP_RECV_BITMAP, 128), (RP_RESUME_ACK, 4)],
)
def test_return_path_lengths_follow_the_ram(kind: int, most: int) -> None:
    assert read_message(Replay(return_message(kind, most)), 1024) == (
        kind,
        bytes(most),
    )
    with pytest.raises(StreamError, match=f"at most {most} for 1024 pages"):
        read_message(Replay(RETURN.pack(kind, most + 1)), 1024)


def test_a_return_path_header_cannot_make_the_source_allocate() -> None:
    hostile = RETURN.pack(RP_REQ_PAGES, 1 << 24)  # was allowed: 16 MiB
    assert peak_allocation(lambda: read_message(Replay(hostile), 1024)) < 64 << 10
    text = RETURN.pack(RP_ACK, 5000)  # ACK and ERROR carry at most 4096 bytes
    with pytest.raises(StreamError, match="at most 4096"):
        read_message(Replay(text), 1024)


def test_loader_buffers_and_records_follow_the_ram() -> None:
    ram = GuestRam(16 * PAGE)
    try:
        loader = StreamLoader(Replay(b""), ram)
        assert loader.record_pages == 16
        # page data, and compressed pages with room to grow (64 bytes each)
        assert loader._raw.nbytes == 16 * (PAGE + 64)
        head = RECORD.pack(REC_PAGES, 17, 0, 0)
        loader.channel = Replay(head)
        with pytest.raises(StreamError, match=r"claims 17 \+ 0 pages \(at most 16"):
            loader.load()
        loader.close()
    finally:
        ram.close()


def test_a_multifd_packet_cannot_claim_more_than_its_pages_can_take() -> None:
    ram = GuestRam(256 * PAGE)
    try:
        receiver = MultifdReceiver([], ram, "zlib", 1, on_error=lambda: None)
        pages = 128
        claimed = 2 * pages * PAGE  # was accepted: twice the page data
        head = PACKET.pack(PKT_PAGES, 1, 0, 0, pages, claimed, 0)
        receiver.channels = [Replay(head)]  # type: ignore[list-item]
        with pytest.raises(StreamError, match=f"claims {pages} pages in {claimed}"):
            receiver._receive(0)
        # what incompressible data really takes passes the check (then fails its
        # checksum here: the packet is made up)
        data = np.random.default_rng(1).bytes(pages * PAGE)
        payload = zlib.compress(data, 1)
        assert len(payload) > pages * PAGE
        head = PACKET.pack(PKT_PAGES, 1, 0, 0, pages, len(payload), 0)
        numbers = struct.pack(f"<{pages}I", *range(pages))
        receiver.channels = [Replay(head + numbers + payload)]  # type: ignore[list-item]
        with pytest.raises(StreamError, match="checksum mismatch in packet 0"):
            receiver._receive(0)
    finally:
        ram.close()


# -- an incoming side that gives up -------------------------------------------------


@pytest.fixture
def vms(tmp_path: Path) -> Iterator[Factory]:
    factory = Factory(tmp_path)
    yield factory
    factory.close()


SHORT = IncomingTimeouts(handshake=0.5, idle=0.5)


def impatient_destination(
    vms: Factory, *, multifd_channels: int = 0, timeouts: IncomingTimeouts = SHORT
) -> Vm:
    """A destination listening on loopback TCP that waits at most `timeouts`."""
    dst = vms.destination(uri="defer")
    dst.engine.incoming_timeouts = timeouts
    if multifd_channels:
        dst.engine.migrate_set_capabilities([("multifd", True)])
        dst.engine.migrate_set_parameters({"multifd-channels": multifd_channels})
    dst.engine.migrate_incoming("tcp:127.0.0.1:0")
    return dst


def connect(dst: Vm) -> socket.socket:
    return socket.create_connection(("127.0.0.1", int(dst.port())), timeout=10)


def gave_up(dst: Vm, reason: str) -> None:
    """Failed with `reason` as its error-desc, never completed, and asked to exit."""
    info = dst.wait("failed", "completed", timeout=10)
    assert info.status is not None and info.status.value == "failed"
    assert info.error_desc == reason
    assert "completed" not in dst.events.statuses()
    assert dst.wait_exit() == [reason]


def stream_writer(sock: socket.socket, dst: Vm) -> StreamWriter:
    """A writer of this project's stream, for a RAM the size of `dst`'s."""
    ram = GuestRam(dst.ram.size)
    return StreamWriter(SocketChannel(sock, "test"), ram)


def test_an_idle_first_connection_fails_the_destination(vms: Factory) -> None:
    dst = impatient_destination(vms)
    with connect(dst):
        gave_up(
            dst,
            "the source connected but sent no migration stream header within 0.5 s",
        )


def test_a_header_dripped_a_byte_at_a_time_still_meets_the_deadline(
    vms: Factory,
) -> None:
    dst = impatient_destination(vms)
    with connect(dst) as sock:
        started = time.monotonic()
        for _ in range(6):  # 1.2 s of one byte every 0.2 s: never silent 0.5 s
            try:
                sock.sendall(b"Q")
            except OSError:
                break  # the destination gave up and closed it
            time.sleep(0.2)
        gave_up(
            dst,
            "the source connected but sent no migration stream header within 0.5 s",
        )
        assert time.monotonic() - started < 5


def test_a_header_then_silence_fails_the_destination(vms: Factory) -> None:
    dst = impatient_destination(vms, timeouts=IncomingTimeouts(handshake=5, idle=0.5))
    with connect(dst) as sock:
        writer = stream_writer(sock, dst)
        writer.header(None)
        writer.sync(1)
        gave_up(dst, "the source has sent nothing for 0.5 s")


def test_a_missing_multifd_channel_fails_the_destination(vms: Factory) -> None:
    dst = impatient_destination(vms, multifd_channels=2)
    with connect(dst) as main, connect(dst) as data:
        stream_writer(main, dst).header(None, 2)
        data.sendall(encode_hello(0, 2))
        gave_up(dst, "multifd: 1 of 2 data channels connected within 0.5 s")


def test_a_source_waiting_in_pre_switchover_keeps_the_destination(
    vms: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keepalives: silence is only a failure when the source really says nothing."""
    monkeypatch.setattr(source_module, "KEEPALIVE_INTERVAL", 0.1)
    dst = impatient_destination(vms, timeouts=IncomingTimeouts(handshake=5, idle=0.5))
    src = vms.source()
    src.engine.migrate_set_capabilities([("pause-before-switchover", True)])
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    src.wait("pre-switchover")
    time.sleep(1.5)  # three times the destination's limit
    assert dst.status() == "active"
    src.engine.migrate_continue("pre-switchover")
    src.wait("completed")
    dst.wait("completed")
    assert same_memory(src.ram, dst.ram)


# -- multifd: a destination never claims memory it does not have ---------------------


def sync_packet(sequence: int, generation: int) -> bytes:
    head = PACKET.pack(PKT_SYNC, 0, 0, sequence, generation, 0, 0)[:16]
    return head + struct.pack("<I", zlib.crc32(head))


def pages_packet(sequence: int, page: int, fill: int) -> bytes:
    numbers = struct.pack("<I", page)
    data = bytes([fill]) * PAGE
    head = PACKET.pack(PKT_PAGES, 0, 0, sequence, 1, len(data), 0)[:16]
    crc = zlib.crc32(data, zlib.crc32(numbers, zlib.crc32(head)))
    return head + struct.pack("<I", crc) + numbers + data


def test_a_data_channel_that_skips_generations_fails_the_load(vms: Factory) -> None:
    """The channel jumps to generation 1000: it used to pass every later barrier
    with its page unapplied, and the destination reported completed without it."""
    dst = impatient_destination(
        vms, multifd_channels=1, timeouts=IncomingTimeouts(handshake=5, idle=5)
    )
    with connect(dst) as main, connect(dst) as data:
        writer = stream_writer(main, dst)
        writer.header(None, 1)
        data.sendall(encode_hello(0, 1))
        data.sendall(sync_packet(0, 1000) + pages_packet(1, 5, 0xAA))
        data.sendall(sync_packet(2, 1001))
        writer.sync(1)
        writer.multifd_sync(1)
        writer.multifd_sync(2)
        writer.end()
        gave_up(dst, "multifd channel 0: sync 1000 where 1 was due")
    assert not dst.ram.pages[5].any()


def test_a_multifd_stream_must_end_after_a_sync(vms: Factory) -> None:
    dst = impatient_destination(
        vms, multifd_channels=1, timeouts=IncomingTimeouts(handshake=5, idle=5)
    )
    with connect(dst) as main, connect(dst) as data:
        writer = stream_writer(main, dst)
        writer.header(None, 1)
        data.sendall(encode_hello(0, 1) + sync_packet(0, 1) + pages_packet(1, 5, 7))
        writer.sync(1)
        writer.multifd_sync(1)
        writer.sync(2)  # a new pass began, its pages may still be on their way
        writer.end()
        gave_up(
            dst,
            "the stream ended without a final multifd sync: pages sent on the data "
            "channels could be missing",
        )


@pytest.mark.parametrize(
    "method",
    [
        "zlib",
        pytest.param(
            "zstd",
            marks=pytest.mark.skipif(
                not zstd_available(), reason="the zstandard package is not installed"
            ),
        ),
    ],
)
def test_junk_after_a_compressed_block_is_refused(method: str) -> None:
    """zstd took a frame followed by anything; zlib refused it: both refuse now."""
    codec = make_codec(method, 1)
    data = np.random.default_rng(3).bytes(2 * PAGE)
    block = bytes(codec.compress(data))
    assert codec.decompress(block, 2 * PAGE) == data
    for damaged in (block + b"junk", block + block, block[:-1]):
        with pytest.raises(CodecError, match=f"{method} data does not"):
            codec.decompress(damaged, 2 * PAGE)
