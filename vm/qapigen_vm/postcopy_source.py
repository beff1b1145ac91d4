"""The source's half of postcopy: switch, background transfer, page requests, recovery.

It runs in the migration thread of an :class:`~.source.OutgoingMigration` once
``migrate-start-postcopy`` has been asked for and the precopy loop would iterate again
(QEMU's ``migration_iteration_run``), and then owns that migration until it ends:

- the switch (QEMU 7.2's order): postcopy-active, STOP, a last dirty sync
  (MIGRATION_PASS), then the switch record carrying the pages the destination must
  treat as missing; downtime is measured until the switch record is out;
- then pages go out in the background, at most ``max-postcopy-bandwidth`` per second
  (0: unlimited), while page requests from the destination (read by the return-path
  thread) are served first and bypass the limit, as QEMU's urgent requests do; each
  request counts in ``postcopy-requests``. A page goes out once per connection;
  with ``release-ram`` the sent pages of anonymous RAM are given back to the kernel;
- a broken connection or ``migrate-pause`` makes it postcopy-paused (not failed:
  the destination already runs the guest). ``migrate`` with ``resume: true`` connects
  again: postcopy-recover, the destination sends the bitmap of the pages it still
  lacks, which become exactly the pages left to send, and on its acknowledgement
  postcopy-active again; a failed attempt goes back to postcopy-paused;
- END once nothing is left, and completed on the destination's acknowledgement;
- ``migrate_cancel`` (QEMU 7.2, which lets it through in every postcopy state): in
  postcopy-active the connection is cut and the migration ends cancelled, with the
  source guest left stopped (run state postmigrate: its pages now live on the
  destination, which pauses and waits for a recovery that can no longer come); in
  postcopy-paused or postcopy-recover the state becomes cancelling and stays there,
  as QEMU's migration thread sleeps on until the process ends: no resume, no new
  migration.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .params import PAGE_SIZE
from .ram import GuestRam
from .states import MigrationStatus, RunState
from .stream import (
    MAX_RECORD_PAGES,
    RP_ACK,
    RP_ERROR,
    RP_RECV_BITMAP,
    RP_RESUME_ACK,
    StreamError,
    read_message,
)
from .transport import Channel, Connector, TransportError

if TYPE_CHECKING:
    from .source import OutgoingMigration

S = MigrationStatus
IndexArray = npt.NDArray[np.intp]

# Background pages per record in postcopy: small, so a page request waits behind at
# most this much data (256 KiB).
BACKGROUND_CHUNK = 64
WINDOW = 0.100  # the rate-limit window, as in precopy
_MADV_DONTNEED = 4

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to call
    _libc = None


class PostcopyAborted(Exception):
    """Cancelled in postcopy-active, or the VM is shutting down."""


def release_pages(ram: GuestRam, pages: IndexArray) -> None:
    """release-ram: hand sent pages of anonymous RAM back to the kernel.

    A file-backed RAM keeps its pages (the file is the guest's memory, and QEMU
    would punch holes in it; the reference VM does not).
    """
    if _libc is None or ram.backing_file is not None or not pages.size:
        return
    base = int(ram.pages.__array_interface__["data"][0])
    ordered = np.sort(pages)
    breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
    for run in np.split(ordered, breaks):
        _libc.madvise(
            ctypes.c_void_p(base + int(run[0]) * PAGE_SIZE),
            ctypes.c_size_t(int(run.size) * PAGE_SIZE),
            ctypes.c_int(_MADV_DONTNEED),
        )


class PostcopySource:
    """The postcopy phase of one outgoing migration (see the module docstring)."""

    def __init__(self, migration: OutgoingMigration) -> None:
        self.m = migration
        self._requests: queue.SimpleQueue[IndexArray] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._resume = threading.Event()
        # Set by teardown only: a cancel while paused does not end the thread.
        self._shutdown = threading.Event()
        self._connector: Connector | None = None
        self._lock = threading.Lock()

    # -- from other threads -----------------------------------------------------------

    def queue_request(self, pages: IndexArray) -> None:
        """A page request read from the return path."""
        self._requests.put(pages)
        self._wake.set()

    def resume(self, connector: Connector) -> None:
        """migrate resume=true (the engine has checked the state is paused)."""
        with self._lock:
            self._connector = connector
        self._resume.set()

    def pause(self) -> None:
        """migrate-pause on the source: cut the connection."""
        channel = self.m.channel
        if channel is not None:
            channel.shutdown()

    def wake(self) -> None:
        """Teardown: unblock any wait, a cancelled pause's included."""
        self._shutdown.set()
        self._wake.set()
        self._resume.set()

    # -- the migration thread ---------------------------------------------------------

    def run(self) -> None:
        m = self.m
        if not m.state.cmpxchg(S.ACTIVE, S.POSTCOPY_ACTIVE):
            raise PostcopyAborted
        downtime_start = time.monotonic()
        m.stop_guest_for_switchover()
        m.postcopy_sync()
        m.count(m.writer.postcopy_start(m.bitmap.bits.copy()), 0)
        m.downtime = int((time.monotonic() - downtime_start) * 1000)
        # From here the guest lives on the destination: a failure must not restart
        # it here.
        m.keep_guest_stopped()
        while True:
            try:
                self._send_remaining()
                self._finish_stream()
                break
            except (TransportError, StreamError, OSError, EOFError):
                if m.state.value is S.CANCELLING:
                    # The cut was the cancel's own (QEMU's migration_detect_error
                    # ends a cancelling migration instead of pausing it).
                    self._end_cancelled()
                self._pause_until_recovered()
        m.complete_postcopy()

    def _check_aborted(self) -> None:
        if self.m.cancel_requested:
            self._end_cancelled()

    def _end_cancelled(self) -> None:
        """Leave postcopy-active for cancelled (the caller's exception handler does
        the transition). The guest is not restarted here, as in QEMU 7.2, whose
        postcopy switch does not record that the guest was running: it only moves
        from finish-migrate to postmigrate, so a new migrate is refused."""
        runctl = self.m.runctl
        if runctl.state is RunState.FINISH_MIGRATE:
            runctl.set_state(RunState.POSTMIGRATE)
        raise PostcopyAborted

    def _check_reply(self) -> None:
        reply = self.m.reply
        if reply is None:
            return
        if reply[0] == RP_ACK:
            raise StreamError("the destination acknowledged an unfinished stream")
        raise StreamError(reply[1])

    def _send_remaining(self) -> None:
        m = self.m
        while True:
            self._check_aborted()
            self._check_reply()
            self._serve_requests()
            if not m.bitmap.bits.any():
                return
            m.update_window()
            budget = m.settings.parameters.max_postcopy_bandwidth // 10
            used = m.window_bytes
            if budget and used >= budget:
                # Wait out the window, but wake for a page request at once.
                self._wake.wait(max(m.window_start + WINDOW - time.monotonic(), 0))
                self._wake.clear()
                continue
            limit = BACKGROUND_CHUNK
            if budget:
                limit = max(1, min(limit, (budget - used) // PAGE_SIZE))
            self._send(m.bitmap.take(limit))

    def _serve_requests(self) -> None:
        m = self.m
        while True:
            try:
                pages = self._requests.get_nowait()
            except queue.Empty:
                return
            m.counters.postcopy_requests += 1
            pages = pages[pages < m.ram.page_count]
            wanted = np.unique(pages[m.bitmap.bits[pages]])
            if not wanted.size:
                continue  # already sent on this connection
            m.bitmap.bits[wanted] = False
            for first in range(0, int(wanted.size), MAX_RECORD_PAGES):
                self._send(wanted[first : first + MAX_RECORD_PAGES])

    def _send(self, pages: IndexArray) -> None:
        if not pages.size:
            return
        m = self.m
        nbytes, normal, zero = m.writer.pages(pages)
        m.counters.normal += normal
        m.counters.duplicate += zero
        m.count(nbytes, int(pages.size))
        if m.settings.capability("release-ram"):
            release_pages(m.ram, pages)

    def _finish_stream(self) -> None:
        m = self.m
        m.count(m.writer.end(), 0)
        while not m.reply_ready.wait(0.1):
            self._check_aborted()
        reply = m.reply
        assert reply is not None
        if reply[0] != RP_ACK:
            raise StreamError(reply[1])

    # -- pause and recovery -------------------------------------------------------------

    def _pause_until_recovered(self) -> None:
        """postcopy-paused until a recovery succeeds.

        A cancel here (or during a recovery attempt) makes the state cancelling and
        leaves this thread parked: QEMU 7.2's cancel does not wake its paused
        migration thread, so the migration stays cancelling until the VM shuts down.
        Only teardown ends the wait.
        """
        m = self.m
        if not m.state.cmpxchg(S.POSTCOPY_ACTIVE, S.POSTCOPY_PAUSED):
            m.state.cmpxchg(S.POSTCOPY_RECOVER, S.POSTCOPY_PAUSED)
        m.drop_channel()
        while True:
            self._resume.wait()
            self._check_shutdown()
            self._resume.clear()
            with self._lock:
                connector, self._connector = self._connector, None
            if connector is None or not m.state.cmpxchg(
                S.POSTCOPY_PAUSED, S.POSTCOPY_RECOVER
            ):
                continue
            try:
                self._handshake(connector)
                return
            except (TransportError, StreamError, OSError, EOFError):
                m.drop_channel()
                m.state.cmpxchg(S.POSTCOPY_RECOVER, S.POSTCOPY_PAUSED)

    def _check_shutdown(self) -> None:
        if self._shutdown.is_set():
            raise PostcopyAborted

    def _handshake(self, connector: Connector) -> None:
        m = self.m
        channel: Channel = connector.connect()
        m.use_channel(channel)
        self._check_shutdown()
        m.count(m.writer.header(m.header_uuid(), resume=True), 0)
        kind, payload = read_message(channel, m.ram.page_count)
        if kind != RP_RECV_BITMAP:
            raise StreamError(self._unexpected(kind, payload))
        count = m.ram.page_count
        if len(payload) != (count + 7) // 8:
            raise StreamError("malformed received-pages bitmap")
        lacking = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[:count]
        # Exactly what the destination lacks is left to send: what was lost with the
        # old connection goes again, what arrived does not.
        m.bitmap.bits[:] = lacking.astype(np.bool_)
        m.bitmap.cursor = 0
        while not self._requests.empty():
            self._requests.get_nowait()
        m.count(m.writer.resume(), 0)
        kind, payload = read_message(channel, m.ram.page_count)
        if kind != RP_RESUME_ACK:
            raise StreamError(self._unexpected(kind, payload))
        if not m.state.cmpxchg(S.POSTCOPY_RECOVER, S.POSTCOPY_ACTIVE):
            # cancelled during the handshake: back to the parked pause
            raise StreamError("postcopy recovery cancelled")
        m.start_return_path(channel)

    @staticmethod
    def _unexpected(kind: int, payload: bytes) -> str:
        if kind == RP_ERROR:
            return payload.decode("utf-8", "replace")
        return f"unexpected return-path message {kind} during postcopy recovery"
