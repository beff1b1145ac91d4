"""multifd: normal pages over extra connections, each with its own checked packets.

The source opens the main channel (the stream of :mod:`.stream`: header, zero pages,
syncs, end) and then ``multifd-channels`` data channels to the same address. A data
channel starts with a hello and then carries packets::

    hello  : magic "QGVMMFDC", u16 version, u16 channel id, u16 channel count,
             2 pad bytes, u32 crc32 of the preceding bytes
    packet : u8 kind, u8 method, u16 pad, u32 sequence number, u32 a, u32 b,
             u32 crc32 (of the first 16 bytes and the payload), then the payload
      PAGES: a = pages, b = payload bytes after the page numbers; payload = a u32
             page numbers, then the pages' data, compressed by ``method``
             (none/zlib/zstd) as one block of a x page-size bytes
      SYNC : a = generation (no payload)

Sequence numbers count each channel's packets, so a lost packet is caught. Ordering
between channels matters only across passes (a page goes out once per pass), so at
every pass boundary the source sends SYNC g on every data channel and MULTIFD_SYNC g
on the main channel; on the destination each data channel stops at SYNC g until the
main channel reaches MULTIFD_SYNC g and every channel has arrived (a barrier, as
QEMU's multifd sync is), so no page of the next pass lands before an older write.
Generations count up by one on every channel (a channel that jumped ahead would pass
later barriers with its packets unapplied), and the main channel's END follows a
MULTIFD_SYNC, so a completed load has every page the data channels carried.
"""

from __future__ import annotations

import queue
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from .codecs import METHODS, Codec, CodecError, make_codec
from .ram import GuestRam, as_bytes
from .stream import StreamError
from .transport import Channel, TransportError

IndexArray = npt.NDArray[np.intp]
ByteArray = npt.NDArray[np.uint8]

HELLO: Final = struct.Struct("<8sHHH2xI")
HELLO_MAGIC: Final = b"QGVMMFDC"
HELLO_VERSION: Final = 1
PACKET: Final = struct.Struct("<BBHIIII")
PKT_PAGES: Final = 1
PKT_SYNC: Final = 2
PACKET_PAGES: Final = 128  # pages per packet (QEMU's 512 KiB packets)
# Packets waiting per channel: keeps each channel busy, while bytes counted by the
# rate limit (as they are sent) lag what is queued by little.
QUEUE_DEPTH: Final = 1
POLL: Final = 0.1


def payload_bound(size: int) -> int:
    """The most bytes ``size`` bytes of page data can take in a packet: zlib and zstd
    grow incompressible data by less than 1/128 plus a small constant."""
    return size + (size >> 7) + 1024


def encode_hello(channel_id: int, count: int) -> bytes:
    body = HELLO.pack(HELLO_MAGIC, HELLO_VERSION, channel_id, count, 0)[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def parse_hello(raw: bytes) -> tuple[int, int]:
    """(channel id, channel count) from a hello; StreamError if it is not one."""
    magic, version, channel_id, count, crc = HELLO.unpack(raw)
    if magic != HELLO_MAGIC or zlib.crc32(raw[:-4]) != crc:
        raise StreamError("malformed multifd channel hello")
    if version != HELLO_VERSION:
        raise StreamError(f"unsupported multifd channel version {version}")
    if channel_id >= count:
        raise StreamError(f"multifd channel id {channel_id} of {count} channels")
    return channel_id, count


# -- source side ------------------------------------------------------------------------

_Item = tuple[IndexArray, ByteArray] | int | None  # pages, a sync generation, or stop


class MultifdSender:
    """One thread per data channel; pages are dealt out round robin in packets."""

    def __init__(
        self,
        channels: Sequence[Channel],
        method: str,
        level: int,
        on_error: Callable[[], None],
    ) -> None:
        self.channels = list(channels)
        self.method = method
        self.level = level
        self.on_error = on_error
        self.error: str | None = None
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[_Item]] = [
            queue.Queue(QUEUE_DEPTH) for _ in self.channels
        ]
        self._next = 0
        self._closed = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run, args=(i,), name=f"multifd-send-{i}", daemon=True
            )
            for i in range(len(self.channels))
        ]

    def start(self) -> int:
        """Send every channel's hello and start the senders; returns bytes sent."""
        count = len(self.channels)
        for channel_id, channel in enumerate(self.channels):
            channel.send(encode_hello(channel_id, count))
        for thread in self._threads:
            thread.start()
        self._add_bytes(HELLO.size * count)
        return HELLO.size * count

    def _add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def queue_pages(self, pages: IndexArray, data: ByteArray) -> None:
        """Queue pages (data rows are copied) in packets; blocks while channels are
        full, raises TransportError once a channel has failed."""
        for first in range(0, int(pages.size), PACKET_PAGES):
            chunk = slice(first, first + PACKET_PAGES)
            self._put(self._next, (pages[chunk].copy(), data[chunk].copy()))
            self._next = (self._next + 1) % len(self._queues)

    def sync(self, generation: int) -> None:
        for index in range(len(self._queues)):
            self._put(index, generation)

    def _put(self, index: int, item: _Item) -> None:
        while True:
            self.raise_if_failed()
            try:
                self._queues[index].put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise TransportError(self.error)
        if self._closed.is_set():
            raise TransportError("multifd channels closed")

    def flush(self) -> None:
        """Wait until everything queued has been sent (or a channel failed)."""
        for q in self._queues:
            while q.unfinished_tasks:
                self.raise_if_failed()
                self._closed.wait(0.005)
        self.raise_if_failed()

    def _run(self, index: int) -> None:
        channel = self.channels[index]
        codec = make_codec(self.method, self.level)
        method_id = METHODS.index(self.method)
        sequence = 0
        q = self._queues[index]
        while True:
            try:
                item = q.get(timeout=POLL)
            except queue.Empty:
                if self._closed.is_set():
                    return
                continue
            try:
                if item is None:
                    return
                if self.error is not None:
                    continue  # drain: a failed migration sends nothing more
                if isinstance(item, int):
                    head = PACKET.pack(PKT_SYNC, method_id, 0, sequence, item, 0, 0)
                    packet = head[:16] + struct.pack("<I", zlib.crc32(head[:16]))
                    channel.send(packet)
                    self._add_bytes(len(packet))
                else:
                    self._add_bytes(self._send_pages(channel, codec, sequence, *item))
                sequence += 1
            except (OSError, CodecError) as exc:
                self._fail(f"multifd channel {index}: {exc}")
            except Exception as exc:  # a bug must fail the migration, not hang it
                self._fail(f"multifd channel {index}: internal error {exc!r}")
            finally:
                q.task_done()

    def _send_pages(
        self,
        channel: Channel,
        codec: Codec,
        sequence: int,
        pages: IndexArray,
        data: ByteArray,
    ) -> int:
        index = pages.astype("<u4").tobytes()
        payload = codec.compress(as_bytes(data))
        method_id = METHODS.index(codec.method)
        head = PACKET.pack(
            PKT_PAGES, method_id, 0, sequence, int(pages.size), len(payload), 0
        )[:16]
        crc = zlib.crc32(payload, zlib.crc32(index, zlib.crc32(head)))
        channel.send(head + struct.pack("<I", crc) + index)
        channel.send(payload)
        return PACKET.size + len(index) + len(payload)

    def _fail(self, text: str) -> None:
        with self._lock:
            if self.error is None:
                self.error = text
        for channel in self.channels:
            channel.shutdown()
        self.on_error()

    def abort(self) -> None:
        """Cancel: unblock every sender."""
        self._closed.set()
        for channel in self.channels:
            channel.shutdown()

    def close(self) -> None:
        self._closed.set()
        for q in self._queues:
            try:
                q.put_nowait(None)
            except queue.Full:
                pass
        for channel in self.channels:
            channel.shutdown()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(2)
        for channel in self.channels:
            channel.close()


# -- destination side ---------------------------------------------------------------------


class MultifdReceiver:
    """Applies the data channels' packets, in step with the main channel's syncs."""

    def __init__(
        self,
        channels: Sequence[Channel],
        ram: GuestRam,
        method: str,
        level: int,
        on_error: Callable[[], None],
    ) -> None:
        self.channels = list(channels)
        self.ram = ram
        self.method = method
        self.level = level
        self.on_error = on_error
        self.error: str | None = None
        self.pages = 0
        self.bytes = 0
        self.done = False  # the main stream ended: an EOF is the source closing
        self._cond = threading.Condition()
        self._arrived = [0] * len(self.channels)
        self._released = 0
        self._threads = [
            threading.Thread(
                target=self._run, args=(i,), name=f"multifd-recv-{i}", daemon=True
            )
            for i in range(len(self.channels))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_sync(self, generation: int) -> None:
        """The main channel reached MULTIFD_SYNC ``generation``: wait for every data
        channel to reach it, then let them all go on."""
        with self._cond:
            while self.error is None and min(self._arrived) < generation:
                if self.done:
                    raise StreamError("the VM is shutting down")
                self._cond.wait(POLL)
            if self.error is not None:
                raise StreamError(self.error)
            self._released = generation
            self._cond.notify_all()

    def _run(self, index: int) -> None:
        try:
            self._receive(index)
        except StreamError as exc:
            self._fail(f"multifd channel {index}: {exc}")
        except Exception as exc:  # a bug must still fail the migration, not hang it
            self._fail(f"multifd channel {index}: internal error {exc!r}")

    def _fail(self, text: str) -> None:
        with self._cond:
            if self.error is None and not self.done:
                self.error = text
            self._cond.notify_all()
        if self.error == text:
            self.on_error()

    def _read(self, channel: Channel, into: memoryview, what: str) -> None:
        try:
            channel.recv_exact(into)
        except EOFError:
            raise StreamError(
                f"stream ended unexpectedly while reading {what}"
            ) from None
        except TimeoutError as exc:  # the source went silent
            raise StreamError(str(exc)) from None
        except OSError as exc:
            raise StreamError(f"read failed while reading {what}: {exc}") from exc

    def _receive(self, index: int) -> None:
        channel = self.channels[index]
        codec = make_codec(self.method, self.level)
        page_size = self.ram.page_size
        head = bytearray(PACKET.size)
        # a packet's stated lengths are checked against what it can carry for this
        # RAM before anything is read
        packet_pages = min(PACKET_PAGES, self.ram.page_count)
        index_buf = np.empty(packet_pages, dtype="<u4")
        payload_buf = bytearray(payload_bound(packet_pages * page_size))
        expected = 0
        while True:
            if self.done:
                return
            try:
                channel.recv_exact(memoryview(head))
            except TimeoutError as exc:  # the source went silent
                if self.done:
                    return
                raise StreamError(str(exc)) from None
            except (EOFError, OSError):
                if self.done:
                    return
                raise StreamError(
                    f"stream ended unexpectedly after {expected} packets"
                ) from None
            kind, method_id, _, sequence, a, b, crc = PACKET.unpack(head)
            if kind == PKT_SYNC:
                if zlib.crc32(memoryview(head)[:16]) != crc or b:
                    raise StreamError(f"checksum mismatch in packet {sequence}")
            elif kind != PKT_PAGES:
                raise StreamError(f"unknown packet type 0x{kind:02x}")
            if sequence != expected:
                raise StreamError(f"packet {sequence} arrived where {expected} was due")
            expected += 1
            if kind == PKT_SYNC:
                self._arrive(index, a)
                continue
            if not 0 < a <= packet_pages or b > payload_bound(a * page_size):
                raise StreamError(f"packet {sequence} claims {a} pages in {b} bytes")
            pages = index_buf[:a]
            payload = memoryview(payload_buf)[:b]
            self._read(channel, as_bytes(pages), f"packet {sequence}'s page numbers")
            self._read(channel, payload, f"packet {sequence}'s page data")
            check = zlib.crc32(
                payload, zlib.crc32(as_bytes(pages), zlib.crc32(head[:16]))
            )
            if check != crc:
                raise StreamError(f"checksum mismatch in packet {sequence}")
            if method_id >= len(METHODS) or METHODS[method_id] != self.method:
                got = METHODS[method_id] if method_id < len(METHODS) else method_id
                raise StreamError(
                    f"packet {sequence} is compressed with {got}, this VM expects "
                    f"{self.method} (multifd-compression differs)"
                )
            try:
                raw = codec.decompress(payload, a * page_size)
            except CodecError as exc:
                raise StreamError(f"packet {sequence}: {exc}") from None
            targets = pages.astype(np.intp)
            if int(targets.max()) >= self.ram.page_count:
                raise StreamError(
                    f"packet {sequence} addresses page {int(targets.max())} beyond "
                    f"the RAM ({self.ram.page_count} pages)"
                )
            data = np.frombuffer(raw, dtype=np.uint8).reshape(a, page_size)
            self.ram.pages[targets] = data
            with self._cond:
                self.pages += a
                self.bytes += PACKET.size + 4 * a + b

    def _arrive(self, index: int, generation: int) -> None:
        with self._cond:
            due = self._arrived[index] + 1
            if generation != due:
                # A channel that skipped ahead would pass every later barrier
                # without its packets having been applied.
                raise StreamError(f"sync {generation} where {due} was due")
            self._arrived[index] = generation
            self._cond.notify_all()
            while self.error is None and self._released < generation:
                if self.done:
                    return
                self._cond.wait(POLL)
            if self.error is not None:
                raise StreamError(self.error)

    def close(self) -> None:
        with self._cond:
            self.done = True
            self._cond.notify_all()
        for channel in self.channels:
            channel.shutdown()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(2)
        for channel in self.channels:
            channel.close()
