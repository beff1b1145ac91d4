"""COLO's secondary: the destination of a migration whose source asked for COLO.

It runs in the destination's loading thread once the first full stream has been
loaded (the stream header carries the source's x-colo; the destination's own
capability does not matter, as on QEMU 7.2). As QEMU does:

- MIGRATION colo, RESUME: the secondary's guest runs, and the source is acknowledged;
- a RAM cache holds the primary's memory as of the last checkpoint. A checkpoint is
  received into the cache, never into guest RAM, and only once all of it (pages,
  END, device state) has arrived and been verified is it applied: the pages the
  primary sent and the pages this guest wrote since the last checkpoint are copied
  from the cache into RAM, so RAM becomes the primary's checkpoint exactly. A stream
  cut mid-checkpoint leaves RAM as the last complete checkpoint left it;
- STOP when the primary asks for a checkpoint, RESUME after it is applied;
- x-colo-lost-heartbeat: STOP, MIGRATION completed, COLO_EXIT (secondary, request),
  RESUME: the guest goes on here alone;
- a broken stream (the primary died or failed over): COLO_EXIT (secondary, error)
  at once, the status stays colo and the guest keeps its state until
  x-colo-lost-heartbeat completes the failover (STOP, completed, RESUME);
- until that failover the incoming listener stays: a further connection is
  accepted and closed at once (see
  ``IncomingMigration._ignore_further_connections``); the failover closes it, so
  connections are refused from then on.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from qapigen_vm_qmp.types import COLOExitReason, COLOMessage, COLOMode

from . import colo_protocol as wire
from .colo_failover import FailoverSwitch
from .colo_protocol import ColoError
from .ram import GuestRam
from .states import MigrationStatus, RunState
from .stream import RP_ACK, StreamError, StreamLoader, encode_reply
from .transport import Channel

if TYPE_CHECKING:
    from .destination import IncomingMigration

S = MigrationStatus
M = COLOMessage


class ColoSecondary:
    """One COLO session on the secondary side."""

    def __init__(self, incoming: IncomingMigration, channel: Channel) -> None:
        self.incoming = incoming
        self.channel = channel
        self.failover = FailoverSwitch(COLOMode.SECONDARY, incoming.sink)
        self.checkpoints = 0
        self.error: str | None = None
        ram = incoming.ram
        # QEMU's colo_init_ram_cache: a second copy of guest RAM.
        self.cache = GuestRam(ram.size)
        self._loader = StreamLoader(channel, self.cache)
        self._own = np.zeros(ram.page_count, dtype=np.bool_)

    # -- from the command side ----------------------------------------------------------

    def request_failover(self) -> None:
        """x-colo-lost-heartbeat: wake the COLO thread, whatever it waits for."""
        self.failover.request()
        self.channel.shutdown()

    # -- the COLO thread ----------------------------------------------------------------

    def run(self) -> None:
        try:
            self._serve()
        finally:
            self._loader.close()
            self.cache.close()

    def _serve(self) -> None:
        inc = self.incoming
        self.cache.pages[:] = inc.ram.pages
        self._forget_own_writes()
        inc.state.cmpxchg(S.ACTIVE, S.COLO)
        inc.runctl.vm_start()
        try:
            self.channel.send(encode_reply(RP_ACK))
            while True:
                self._checkpoint()
        except (ColoError, StreamError, OSError) as exc:
            if not self.failover.requested and not inc.closed:
                self.error = str(exc)
                self.failover.announce_exit(COLOExitReason.ERROR)
                if not self.failover.wait_until_requested(lambda: inc.closed):
                    return
        if not inc.closed:
            self._fail_over()

    def _own_writes(self) -> npt.NDArray[np.bool_]:
        """The pages this side's guest wrote since the last call."""
        own = self._own
        own[:] = False
        workload = self.incoming.runctl.workload
        if workload is not None:
            workload.log.harvest_into(own)
        return own

    def _forget_own_writes(self) -> None:
        self._own_writes()

    def _checkpoint(self) -> None:
        inc = self.incoming
        channel = self.channel
        pages = inc.ram.page_count
        wire.expect(channel, M.CHECKPOINT_REQUEST, pages)
        inc.runctl.vm_stop(RunState.COLO)
        wire.send(channel, M.CHECKPOINT_REPLY)
        sent = self._read_bitmap(wire.expect(channel, M.VMSTATE_SEND, pages))
        self._loader.load()  # into the cache, up to this checkpoint's END
        device = self._read_device_state(wire.expect(channel, M.VMSTATE_SIZE, pages))
        wire.send(channel, M.VMSTATE_RECEIVED)
        # Everything is here and verified: apply it (QEMU's colo_flush_ram_cache).
        changed = np.flatnonzero(sent | self._own_writes())
        inc.ram.pages[changed] = self.cache.pages[changed]
        self.checkpoints += 1
        if device.get("running", True):
            inc.runctl.vm_start()
        else:
            inc.runctl.set_state(RunState.PAUSED)
        wire.send(channel, M.VMSTATE_LOADED)

    def _read_bitmap(self, payload: bytes) -> npt.NDArray[np.bool_]:
        count = self.incoming.ram.page_count
        if len(payload) != (count + 7) // 8:
            raise ColoError(
                f"COLO checkpoint bitmap of {len(payload)} bytes for {count} pages"
            )
        bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=count)
        return bits.astype(np.bool_)

    @staticmethod
    def _read_device_state(payload: bytes) -> dict[str, object]:
        try:
            state = json.loads(payload)
        except ValueError as exc:
            raise ColoError(f"COLO device state is not valid: {exc}") from None
        if not isinstance(state, dict):
            raise ColoError("COLO device state is not an object")
        return state

    def _fail_over(self) -> None:
        """The guest goes on here, as an ordinary VM."""
        inc = self.incoming
        runctl = inc.runctl
        runctl.vm_stop(RunState.COLO)
        inc.stop_listening()
        inc.state.cmpxchg(S.COLO, S.COMPLETED)
        self.failover.announce_exit(COLOExitReason.REQUEST)
        runctl.vm_start()
        self.failover.finish()
