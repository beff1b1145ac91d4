"""A tiny guest for real QEMU that dirties its memory at a chosen rate.

qapigen-vm has a `-workload` option; a real QEMU needs a guest program instead. This is
a 285-byte multiboot image (source: `examples/dirty_guest.S`) that QEMU boots with
`-kernel`: a 1 kHz timer interrupt increments one byte in each of the next
`pages_per_tick` pages of a working set, so the guest dirties `1000 x pages_per_tick`
pages a second and halts in between. Start the destination with the same `-kernel`:
the machine configurations must match.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

from qapigen_runtime.qmp import SyncQMPClient
from qapigen_runtime.qmp.address import Address

PAGE_SIZE = 4096
TICKS_PER_SECOND = 1000
LOADED_AT = 0x100000  # multiboot load address: 1 MiB
FIRST_FREE = 0x200000  # the working set starts above the image
PARAMETERS_OFFSET = 32  # pages_per_tick, ws_start, ws_end, cursor (little-endian u32)

# as --32 examples/dirty_guest.S; objcopy -O binary -j .text (tests re-assemble it
# and compare when binutils is installed).
IMAGE = bytes.fromhex(
    "02b0ad1b00000100fe4f51e40000100000001000000000000000000054001000"
    "140000000000200000000003000020000000000000000000ffff0000009acf00"
    "ffff00000092cf001700300010007f0100000800fa0f011548001000ea630010"
    "00080066b810008ed88ec08ed08ee08ee8bc00000900bf00000800b930000000"
    "b81401100083f9107505b8e500100066890766c74702080066c74704008ec1e8"
    "106689470683c708e2d60f011d4e001000b011e620e6a0b020e621b028e6a1b0"
    "04e621b002e6a1b001e621e6a1b0fee621b0ffe6a1b034e643b0a9e640b004e6"
    "40fbf4ebfd50518b0d20001000a12c001000fe0005001000003b052800100072"
    "05a124001000e2eaa32c001000b020e6205958cf50b020e6a0e62058cf"
)


class GuestError(ValueError):
    """Parameters the guest cannot run with."""


def build_image(rate: int, working_set: int, ram_size: int) -> bytes:
    """The image dirtying about `rate` pages/s over `working_set` bytes from 2 MiB.

    The rate is rounded to a whole number of pages per 1 ms tick (at least one).
    """
    if rate <= 0:
        raise GuestError(f"rate {rate}: expected a positive number of pages per second")
    if working_set < PAGE_SIZE:
        raise GuestError(f"working set {working_set}: expected at least one page")
    end = FIRST_FREE + working_set - working_set % PAGE_SIZE
    if end > ram_size:
        raise GuestError(
            f"working set {working_set} does not fit: it starts at 2 MiB and guest RAM "
            f"is {ram_size} bytes"
        )
    pages_per_tick = max(1, round(rate / TICKS_PER_SECOND))
    image = bytearray(IMAGE)
    struct.pack_into(
        "<IIII", image, PARAMETERS_OFFSET, pages_per_tick, FIRST_FREE, end, FIRST_FREE
    )
    return bytes(image)


def write_image(path: Path, rate: int, working_set: int, ram_size: int) -> Path:
    path.write_bytes(build_image(rate, working_set, ram_size))
    return path


def read_guest_byte(client: SyncQMPClient, address: int) -> int:
    """The byte at guest-physical `address`, read through HMP's ``xp`` (QEMU only)."""
    reply = client.execute(
        "human-monitor-command", {"command-line": f"xp /1bx {address:#x}"}
    )
    # HMP answers "0000000000200000: 0x2a".
    text = reply.strip() if isinstance(reply, str) else ""
    try:
        return int(text.rsplit(" ", 1)[-1], 16)
    except ValueError:
        raise GuestError(f"unexpected answer to xp: {reply!r}") from None


def wait_until_written(qmp: Address, address: int, timeout: float = 30.0) -> None:
    """Wait until the guest has written the page at `address` (firmware and the
    multiboot loader take a moment under TCG); GuestError after `timeout` s."""
    deadline = time.monotonic() + timeout
    with SyncQMPClient() as client:
        client.connect(qmp, timeout=5)
        while read_guest_byte(client, address) == 0:
            if time.monotonic() > deadline:
                raise GuestError(f"the guest wrote nothing at {address:#x} in time")
            time.sleep(0.1)
