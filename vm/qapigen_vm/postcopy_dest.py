"""The destination's half of postcopy: switch, page requests, pause and recovery.

QEMU 7.2's observable behaviour, reproduced:

- at the switch record the destination goes postcopy-active, installs the
  page-present bitmap (:class:`.PostcopyRam`) in front of the guest and starts the
  guest (RESUME, unless -S) while pages are still missing; a guest access to a missing
  page sends a page request over the return path and waits for the page;
- a broken connection (or ``migrate-pause``) makes it postcopy-paused, never failed:
  the guest already runs here, so there is nothing to fall back to;
- ``migrate-recover URI`` emits ``MIGRATION setup`` while the state stays
  postcopy-paused, listens on URI, and on the source's recovery connection goes
  postcopy-recover, sends the bitmap of pages it still lacks, and on the source's
  RESUME record goes postcopy-active again (acknowledging on the return path) and
  asks again for the pages its guest is blocked on;
- the stream's END with no page missing makes it completed (acknowledged to the
  source); pages arriving for a page already present are dropped.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .postcopy_ram import PostcopyRam
from .states import MigrationStatus, RunState
from .stream import (
    RP_ACK,
    RP_RECV_BITMAP,
    RP_REQ_PAGES,
    RP_RESUME_ACK,
    StreamError,
    StreamLoader,
    encode_message,
    encode_reply,
)
from .transport import Channel, Listener, Liveness, SocketChannel, TransportError

if TYPE_CHECKING:
    from .destination import IncomingMigration

S = MigrationStatus
IndexArray = npt.NDArray[np.intp]


class PostcopyDestination:
    """Postcopy state of one incoming migration (created at the switch record)."""

    def __init__(
        self,
        incoming: IncomingMigration,
        loader: StreamLoader,
        channel: Channel,
        missing: npt.NDArray[np.bool_],
    ) -> None:
        if not isinstance(channel, SocketChannel):
            # Page requests need a way back to the source.
            raise StreamError("postcopy needs a migration channel with a return path")
        self.incoming = incoming
        self.presence = PostcopyRam(incoming.ram, missing, self.request)
        self._send_lock = threading.Lock()
        self._channel: Channel = channel
        self._recovery: Listener | None = None
        self._recovery_address: list[dict[str, object]] = []
        loader.placer = self.presence

    # -- the switch (loader thread) ---------------------------------------------------

    def switch(self) -> None:
        """Go postcopy-active and let the guest run on the pages present."""
        m = self.incoming
        m.state.cmpxchg(S.ACTIVE, S.POSTCOPY_ACTIVE)
        workload = m.runctl.workload
        if workload is not None:
            workload.access_gate = self.presence.access
        if m.runctl.autostart:
            m.runctl.vm_start()
        else:
            m.runctl.set_state(RunState.PAUSED)

    # -- return path ------------------------------------------------------------------

    def _send(self, message: bytes) -> None:
        with self._send_lock:
            self._channel.send(message)

    def request(self, pages: IndexArray) -> None:
        """Ask the source for ``pages`` now (a guest access waits for them)."""
        payload = pages.astype("<u4").tobytes()
        try:
            self._send(encode_message(RP_REQ_PAGES, payload))
        except (TransportError, OSError):
            pass  # the connection is down: asked again after the recovery

    # -- endings ----------------------------------------------------------------------

    def finish(self) -> None:
        """END arrived: every page must be here; then completed and acknowledged."""
        m = self.incoming
        left = self.presence.missing_count()
        if left:
            raise StreamError(f"postcopy stream ended with {left} pages still missing")
        self._detach_guest()
        m.ram.flush()
        m.state.cmpxchg(S.POSTCOPY_ACTIVE, S.COMPLETED)
        try:
            self._send(encode_reply(RP_ACK))
        except (TransportError, OSError):
            pass  # the guest runs here already; the source sees a cut at the very end

    def broken(self) -> None:
        """The connection failed during postcopy: pause and wait for a recovery."""
        if self.incoming.closed:
            return
        m = self.incoming
        if not m.state.cmpxchg(S.POSTCOPY_ACTIVE, S.POSTCOPY_PAUSED):
            m.state.cmpxchg(S.POSTCOPY_RECOVER, S.POSTCOPY_PAUSED)

    def pause(self) -> None:
        """migrate-pause: cut the connection; the loader then pauses."""
        self._channel.shutdown()

    def close(self) -> None:
        """VM shutdown: stop listening, wake blocked guest accesses."""
        if self._recovery is not None:
            self._recovery.close()
        self._channel.shutdown()
        self._detach_guest()

    def _detach_guest(self) -> None:
        workload = self.incoming.runctl.workload
        if workload is not None and workload.access_gate == self.presence.access:
            workload.access_gate = None
        self.presence.release()

    # -- recovery ---------------------------------------------------------------------

    @property
    def socket_address(self) -> list[dict[str, object]]:
        """Where the last migrate-recover listened (kept after the connection)."""
        return list(self._recovery_address)

    def recover(self, listener: Listener) -> None:
        """migrate-recover: wait for the source's recovery connection on ``listener``."""
        old, self._recovery = self._recovery, listener
        self._recovery_address = list(listener.socket_address)
        if old is not None:
            old.close()
        self.incoming.sink("MIGRATION", {"status": S.SETUP.value})
        threading.Thread(
            target=self._recover_main,
            args=(listener,),
            name="migration-postcopy-recover",
            daemon=True,
        ).start()

    def _recover_main(self, listener: Listener) -> None:
        m = self.incoming
        # As for the first connection: no limit on the wait for the source, then a
        # deadline for the handshake and a limit on silence while loading.
        liveness = Liveness(None, "")
        channel = listener.accept(liveness=liveness)
        if channel is None:
            return
        timeouts = m.timeouts
        liveness.expect(timeouts.handshake, timeouts.handshake_reason(), deadline=True)
        try:
            loader = StreamLoader(channel, m.ram)
            loader.placer = self.presence
            header = loader.read_header(m.vm_uuid)
            if not header.resume:
                raise StreamError(
                    "a new migration arrived where a postcopy recovery was expected"
                )
            if not m.state.cmpxchg(S.POSTCOPY_PAUSED, S.POSTCOPY_RECOVER):
                raise StreamError("postcopy is not paused")
            if not isinstance(channel, SocketChannel):
                raise StreamError("postcopy recovery needs a socket")
            with self._send_lock:
                self._channel = channel
            bitmap = np.packbits(self.presence.missing_mask()).tobytes()
            self._send(encode_message(RP_RECV_BITMAP, bitmap))
            loader.read_resume()
            m.state.cmpxchg(S.POSTCOPY_RECOVER, S.POSTCOPY_ACTIVE)
            self._send(encode_message(RP_RESUME_ACK, struct.pack("<I", 0)))
            waiting = self.presence.waiting_pages()
            if waiting.size:
                self.request(waiting)
            m.progress = loader.progress
            liveness.expect(timeouts.idle, timeouts.idle_reason())
            loader.load()
            self.finish()
        except (StreamError, TransportError, OSError):
            self.broken()
        except Exception:  # a bug: keep the guest's chance of another recovery
            self.broken()
        finally:
            channel.close()

    # -- query-migrate ----------------------------------------------------------------

    def blocktime(self) -> tuple[int, list[int]]:
        """(postcopy-blocktime, postcopy-vcpu-blocktime) in ms; one vCPU."""
        vcpu = self.presence.vcpu_blocktime()
        return max(vcpu), vcpu
