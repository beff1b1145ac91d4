"""Page-data compressors for multifd (none, zlib, zstd) and the compress capability.

zstd needs the optional ``zstandard`` package; without it the VM behaves as a QEMU
built without zstd support, whose multifd-compression parameter has no 'zstd' value.
Each codec object belongs to one thread (zstd contexts are not shareable).
"""

from __future__ import annotations

import zlib
from typing import Final, Protocol

try:
    import zstandard  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None  # type: ignore[assignment, unused-ignore]

METHODS: Final = ("none", "zlib", "zstd")


class CodecError(ValueError):
    """Compressed data that does not decompress to what its packet promises."""


def zstd_available() -> bool:
    return zstandard is not None


class Codec(Protocol):
    method: str

    def compress(self, data: bytes | memoryview) -> bytes | memoryview: ...

    def decompress(self, data: bytes | memoryview, size: int) -> bytes: ...


class NoCompression:
    method = "none"

    def compress(self, data: bytes | memoryview) -> bytes | memoryview:
        return data

    def decompress(self, data: bytes | memoryview, size: int) -> bytes:
        if len(data) != size:
            raise CodecError(f"{len(data)} bytes of page data where {size} belong")
        return bytes(data)


class ZlibCodec:
    method = "zlib"

    def __init__(self, level: int) -> None:
        self.level = level

    def compress(self, data: bytes | memoryview) -> bytes:
        return zlib.compress(data, self.level)

    def decompress(self, data: bytes | memoryview, size: int) -> bytes:
        inflater = zlib.decompressobj()
        try:
            # At most size + 1 bytes: one more than promised is already wrong.
            out = inflater.decompress(data, size + 1)
        except zlib.error as exc:
            raise CodecError(f"zlib: {exc}") from None
        if len(out) != size or not inflater.eof or inflater.unused_data:
            raise CodecError(f"zlib data does not inflate to exactly {size} bytes")
        return out


class ZstdCodec:
    method = "zstd"

    def __init__(self, level: int) -> None:
        assert zstandard is not None
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._compressor.compress(data)

    def decompress(self, data: bytes | memoryview, size: int) -> bytes:
        assert zstandard is not None
        try:
            # Check the frame's own size first: it decides what decompress allocates
            # (and zstd fails a frame whose content differs from it).
            if zstandard.frame_content_size(data) != size:
                raise CodecError(f"zstd frame does not hold exactly {size} bytes")
            frame = self._decompressor.decompressobj()
            out = frame.decompress(data)
        except zstandard.ZstdError as exc:
            raise CodecError(f"zstd: {exc}") from None
        # As zlib: exactly one complete frame, nothing after it.
        if len(out) != size or not frame.eof or frame.unused_data:
            raise CodecError(f"zstd data does not expand to exactly {size} bytes")
        return out


def make_codec(method: str, level: int) -> Codec:
    if method == "zlib":
        return ZlibCodec(level)
    if method == "zstd":
        return ZstdCodec(level)
    return NoCompression()
