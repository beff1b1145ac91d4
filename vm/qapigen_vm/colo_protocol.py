"""COLO's control messages between the primary and the secondary, on the migration
channel that carried the first full migration.

The messages are the schema's ``COLOMessage`` values, in its order; the primary sends
on the forward direction, the secondary answers on the return path of the same socket.
A checkpoint is (QEMU's sequence, this VM's own framing)::

    primary                                   secondary
    checkpoint-request          ->
                                <-            checkpoint-reply   (its guest stopped)
    vmstate-send [dirty bitmap] ->
    page records ... END        ->            (into its RAM cache, not its RAM)
    vmstate-size [device state] ->
                                <-            vmstate-received   (all of it buffered)
                                <-            vmstate-loaded     (applied, guest runs)

Framing (little-endian): magic ``QCOL``, u8 message (its index in the schema enum),
3 pad bytes, u32 payload length, u32 crc32 of the payload, then the payload. Every
field is checked on receipt, so a torn or foreign stream is an error, never a wrong
checkpoint. A payload's length is checked against what that message can carry for
this VM's RAM before anything is allocated for it (`payload_limit`): the dirty
bitmap of vmstate-send, a small device state for vmstate-size, nothing otherwise.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final, Protocol

from qapigen_vm_qmp.types import COLOMessage

MAGIC: Final = b"QCOL"
HEAD: Final = struct.Struct("<4sB3xII")
# The device state is a small JSON object (run state, checkpoint number).
DEVICE_STATE_MAX: Final = 4096

MESSAGES: Final = tuple(COLOMessage)


def payload_limit(message: COLOMessage, page_count: int) -> int:
    """The most bytes ``message`` can carry for a RAM of ``page_count`` pages."""
    if message is COLOMessage.VMSTATE_SEND:
        return (page_count + 7) // 8  # one bit per page
    if message is COLOMessage.VMSTATE_SIZE:
        return DEVICE_STATE_MAX
    return 0


class ColoError(Exception):
    """The COLO channel broke or carried something unexpected."""


class Duplex(Protocol):
    """Both directions of a migration socket (see :class:`.transport.SocketChannel`)."""

    def send(self, data: bytes | memoryview) -> None: ...

    def recv_exact(self, into: memoryview) -> None: ...


def encode(message: COLOMessage, payload: bytes = b"") -> bytes:
    return (
        HEAD.pack(MAGIC, MESSAGES.index(message), len(payload), zlib.crc32(payload))
        + payload
    )


def send(channel: Duplex, message: COLOMessage, payload: bytes = b"") -> int:
    """Send one message; returns the bytes put on the wire."""
    data = encode(message, payload)
    try:
        channel.send(data)
    except OSError as exc:  # TransportError is an OSError too
        raise ColoError(f"Can't send COLO message: {exc}") from None
    return len(data)


def receive(channel: Duplex, page_count: int) -> tuple[COLOMessage, bytes]:
    """Read one message, whatever it is, for a RAM of ``page_count`` pages."""
    head = bytearray(HEAD.size)
    _read(channel, head)
    magic, index, length, crc = HEAD.unpack(head)
    if magic != MAGIC or index >= len(MESSAGES):
        raise ColoError(
            f"Can't receive COLO message: not a COLO message header ({bytes(head)!r})"
        )
    message = MESSAGES[index]
    limit = payload_limit(message, page_count)
    if length > limit:
        raise ColoError(
            f"Can't receive COLO message: {message.value} claims {length} bytes of "
            f"payload, at most {limit} for this VM ({page_count} pages)"
        )
    payload = bytearray(length)
    if length:
        _read(channel, payload)
    if zlib.crc32(payload) != crc:
        raise ColoError(
            f"Can't receive COLO message: checksum mismatch in {MESSAGES[index].value}"
        )
    return MESSAGES[index], bytes(payload)


def expect(channel: Duplex, wanted: COLOMessage, page_count: int) -> bytes:
    """Read one message that must be ``wanted``; returns its payload."""
    message, payload = receive(channel, page_count)
    if message is not wanted:
        raise ColoError(
            f"Unexpected COLO message {message.value}, expected {wanted.value}"
        )
    return payload


def _read(channel: Duplex, into: bytearray) -> None:
    try:
        channel.recv_exact(memoryview(into))
    except EOFError:
        raise ColoError("Can't receive COLO message: Input/output error") from None
    except OSError as exc:
        raise ColoError(f"Can't receive COLO message: {exc.strerror or exc}") from None
