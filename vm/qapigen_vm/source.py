"""The source side of a migration: precopy passes over real channels, in a thread.

The loop follows QEMU's precopy decisions (``migration_iteration_run``):

- every >= 100 ms window: bandwidth = bytes sent / ms; threshold = bandwidth x
  downtime-limit; mbps, pages-per-second and expected-downtime are refreshed;
- if the dirty bytes still to send are below the threshold, sync the dirty log (a new
  pass, MIGRATION_PASS) and look again;
- if bytes remain and they are at or above the threshold, send for at most 50 ms or
  until the window's budget (max-bandwidth / 10) is used, then wait out the window;
- otherwise stop the guest (STOP), optionally pause in pre-switchover until
  migrate-continue (sending keepalives meanwhile, so that the destination knows
  the source is still there), do a final sync, send everything without a rate limit, mark the end
  of the stream and wait for the destination's acknowledgement (a socket has a return
  path): only then is the migration completed, and downtime is measured from just
  before the stop until that acknowledgement, i.e. until the destination runs.

Every blocking call can be interrupted by cancel, which shuts the channel down.

How a page travels, in QEMU 7.2's order of preference: a zero page as a zero page;
with multifd, a normal page over the data channels (:mod:`.multifd`); with compress
(until XBZRLE takes over), zlib from the compression threads (:mod:`.compress_sender`);
with xbzrle after the first whole round over RAM, a delta against the page cache
(:mod:`.xbzrle_sender`); otherwise a normal page.
"""

from __future__ import annotations

import threading
import time
import uuid as uuid_mod

import numpy as np

from .colo_primary import ColoPrimary
from .compress_sender import CompressSender
from .dirty import DirtyLog, MigrationBitmap
from .multifd import MultifdSender
from .params import PAGE_SIZE, MigrationSettings
from .postcopy_source import PostcopyAborted, PostcopySource
from .ram import GuestRam
from .runstate import EventSink, RunControl, StateCell
from .states import RUNNING_STATES, MigrationStatus, RunState
from .stats import (
    CompressionStats,
    MigrationInfo,
    RamCounters,
    XBZRLECacheStats,
    compression_stats,
    ram_stats,
    xbzrle_cache_stats,
)
from .stream import (
    MAX_RECORD_PAGES,
    RP_ACK,
    RP_ERROR,
    RP_REQ_PAGES,
    StreamError,
    StreamWriter,
    read_message,
)
from .throttle import AutoConverge
from .transport import Channel, Connector, PipeChannel, SocketChannel, TransportError
from .xbzrle_sender import XbzrleSender

S = MigrationStatus

WINDOW = 0.100  # QEMU's BUFFER_DELAY: rate-limit and statistics window
ITERATION_LIMIT = 0.050  # one iteration sends at most this long
SYNC_PERIOD = 1.0  # dirty-rate and auto-converge periods are longer than this
REPLY_GRACE = 1.0  # after a write error, how long to wait for the destination's reason
# While waiting with nothing to send (pre-switchover), a keepalive record this often:
# well inside the time a destination lets a source stay silent (IncomingTimeouts).
KEEPALIVE_INTERVAL = 2.0


class _Cancelled(Exception):
    """The migration was cancelled; unwinds the migration thread."""


class OutgoingMigration:
    """One migrate command's lifetime: state, counters, the thread that does the work."""

    def __init__(
        self,
        *,
        ram: GuestRam,
        log: DirtyLog,
        settings: MigrationSettings,
        runctl: RunControl,
        sink: EventSink,
        vm_uuid: uuid_mod.UUID | None,
        connector: Connector | None,
    ) -> None:
        self.ram = ram
        self.log = log
        self.settings = settings
        self.runctl = runctl
        self.sink = sink
        self.vm_uuid = vm_uuid
        self.connector = connector
        self.state = StateCell(sink, lambda: settings.capability("events"))
        self.error_desc: str | None = None
        self.counters = RamCounters(total=ram.size, page_size=PAGE_SIZE)
        self.bitmap = MigrationBitmap(ram.page_count)
        self.start_time = time.monotonic()
        self.setup_time: int | None = None
        self.total_time: int | None = None
        self.downtime: int | None = None
        self.expected_downtime = settings.parameters.downtime_limit
        self._channel: Channel | None = None
        self._writer: StreamWriter | None = None
        self._cancel = threading.Event()
        self._continue = threading.Event()
        self._reply: tuple[int, str] | None = None
        self._reply_ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._throttle = AutoConverge()
        self._vm_stopped_by_us = False
        self._vm_was_running = False
        # XBZRLE (capability xbzrle): used once the first pass over RAM is done (the
        # cache holds nothing before), and without updating the cache in the final
        # stage, as QEMU does.
        self.xbzrle: XbzrleSender | None = None
        self._bulk_stage = True
        self._last_stage = False
        # multifd (capability multifd): normal pages go over data channels; zero
        # pages, syncs and the end stay on the main channel.
        self.multifd: MultifdSender | None = None
        # compress: zlib pages from worker threads, while XBZRLE is not in use.
        self.compress: CompressSender | None = None
        self._multifd_generation = 0
        self._multifd_counted = 0
        # postcopy (capability postcopy-ram, after migrate-start-postcopy): the phase
        # is run by :mod:`.postcopy_source`.
        self.postcopy: PostcopySource | None = None
        # x-colo: after the first full migration, COLO's primary (see .colo_primary).
        self.colo: ColoPrimary | None = None
        self._postcopy_requested = threading.Event()
        # rate window and dirty-rate period
        self._bandwidth = 0.0  # bytes per ms
        self._threshold = 0.0  # bytes
        self._window_start = 0.0
        self._window_bytes = 0
        self._window_pages = 0
        self._period_start = 0.0
        self._period_bytes = 0
        self._period_dirty = 0

    # -- control from the command side ----------------------------------------------

    def start(self) -> None:
        self.state.cmpxchg(S.NONE, S.SETUP)
        self._thread = threading.Thread(
            target=self._thread_main, name="migration-source", daemon=True
        )
        self._thread.start()

    def fail_before_start(self) -> None:
        """A migrate refused for its URI: setup then failed, without an error-desc."""
        self.state.cmpxchg(S.NONE, S.SETUP)
        self.state.cmpxchg(S.SETUP, S.FAILED)

    def cancel(self) -> None:
        """migrate_cancel: a no-op unless running; otherwise cancelling, then cancelled.

        As QEMU 7.2's migrate_fd_cancel: every running state goes to cancelling,
        postcopy ones and cancelling itself included (a second cancel announces
        cancelling again). In postcopy-paused or -recover the migration then stays
        cancelling (see :mod:`.postcopy_source`).
        """
        while True:
            old = self.state.value
            if old not in RUNNING_STATES:
                return
            if self.state.cmpxchg(old, S.CANCELLING):
                break
        if self.colo is not None:
            # A migrate issued in colo left this status behind (see
            # `restart_over_colo`): QEMU 7.2 has no channel of its own to cut, so it
            # stays cancelling and the COLO channel is left alone.
            return
        if self.connector is not None:
            self.connector.abort()
        if self.multifd is not None:
            self.multifd.abort()
        channel = self._channel
        if channel is not None:
            channel.shutdown()
        self._cancel.set()
        self._continue.set()

    def resume_from_pause(self) -> None:
        """migrate-continue (the caller has checked the state)."""
        self._continue.set()

    # -- postcopy: commands -----------------------------------------------------------

    def request_postcopy(self) -> None:
        """migrate-start-postcopy: switch at the next iteration (no error after)."""
        self._postcopy_requested.set()

    def pause_postcopy(self) -> None:
        """migrate-pause (the engine has checked the state is postcopy-active)."""
        if self.postcopy is not None:
            self.postcopy.pause()

    def resume_postcopy(self, connector: Connector) -> None:
        """migrate resume=true (the engine has checked the state is paused)."""
        assert self.postcopy is not None
        self.connector = connector
        self.postcopy.resume(connector)

    def teardown(self) -> None:
        """VM shutdown: end the migration thread even where a cancel leaves it
        waiting (a postcopy paused or recovering when cancelled)."""
        self._cancel.set()
        channel = self._channel
        if channel is not None:
            channel.shutdown()
        if self.postcopy is not None:
            self.postcopy.wake()

    # -- postcopy: what the phase uses of this migration ------------------------------

    @property
    def channel(self) -> Channel | None:
        return self._channel

    @property
    def writer(self) -> StreamWriter:
        assert self._writer is not None
        return self._writer

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def reply(self) -> tuple[int, str] | None:
        return self._reply

    @property
    def reply_ready(self) -> threading.Event:
        return self._reply_ready

    @property
    def window_bytes(self) -> int:
        return self._window_bytes

    @property
    def window_start(self) -> float:
        return self._window_start

    def count(self, nbytes: int, pages: int) -> None:
        self._count(nbytes, pages)

    def update_window(self) -> None:
        self._update_window()

    def header_uuid(self) -> uuid_mod.UUID | None:
        return self.vm_uuid if self.settings.capability("validate-uuid") else None

    def stop_guest_for_switchover(self) -> None:
        self._vm_was_running = self.runctl.vm_stop(RunState.FINISH_MIGRATE)
        self._vm_stopped_by_us = True

    def keep_guest_stopped(self) -> None:
        """After the postcopy switch the guest lives on the destination."""
        self._vm_stopped_by_us = False

    def postcopy_sync(self) -> None:
        """The last sync before the switch; flush what other channels still hold."""
        self._sync()
        self._flush_compressed()
        if self.multifd is not None:
            self._multifd_sync()
            self.multifd.flush()
            self._count(self._multifd_bytes(), 0)

    def drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def use_channel(self, channel: Channel) -> None:
        """A postcopy recovery connection replaces the broken one."""
        self._reply = None
        self._reply_ready.clear()
        self._channel = channel
        self._writer = StreamWriter(channel, self.ram)

    def start_return_path(self, channel: Channel) -> None:
        threading.Thread(
            target=self._read_return_path,
            args=(channel,),
            name="migration-return-path",
            daemon=True,
        ).start()

    def complete_postcopy(self) -> None:
        end = time.monotonic()
        self.total_time = int((end - self.start_time) * 1000)
        c = self.counters
        c.remaining = 0
        c.dirty_pages_rate = 0
        transfer_ms = self.total_time - (self.setup_time or 0)
        if transfer_ms > 0:
            c.mbps = c.transferred * 8 / transfer_ms / 1000
        self.runctl.set_state(RunState.POSTMIGRATE)
        if not self.state.cmpxchg(S.POSTCOPY_ACTIVE, S.COMPLETED):
            raise PostcopyAborted

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- query-migrate ----------------------------------------------------------------

    def info(self) -> MigrationInfo:
        status = self.state.value
        if status in (S.NONE,):
            return MigrationInfo()
        if status in (S.SETUP, S.CANCELLED, S.WAIT_UNPLUG, S.COLO):
            return MigrationInfo(status=status)
        if status is S.FAILED:
            return MigrationInfo(status=status, error_desc=self.error_desc)
        now_ms = int((time.monotonic() - self.start_time) * 1000)
        if status is S.COMPLETED:
            return MigrationInfo(
                status=status,
                ram=ram_stats(self.counters),
                total_time=self.total_time,
                downtime=self.downtime,
                setup_time=self.setup_time,
                xbzrle_cache=self._xbzrle_stats(),
                compression=self._compression_stats(),
            )
        counters = self.counters
        counters.remaining = self.bitmap.count() * PAGE_SIZE
        throttle = self._throttle_percentage()
        return MigrationInfo(
            status=status,
            ram=ram_stats(counters),
            total_time=now_ms,
            expected_downtime=self.expected_downtime,
            setup_time=self.setup_time if self.setup_time is not None else 0,
            cpu_throttle_percentage=throttle if throttle else None,
            xbzrle_cache=self._xbzrle_stats(),
            compression=self._compression_stats(),
        )

    def _compression_stats(self) -> CompressionStats | None:
        sender = self.compress
        if sender is None or not self.settings.capability("compress"):
            return None
        return compression_stats(sender.counters)

    def _xbzrle_stats(self) -> XBZRLECacheStats | None:
        """Shown while the capability is on, as QEMU's migrate_use_xbzrle() gates it;
        cache-size is the size of the cache this migration really uses."""
        sender = self.xbzrle
        if sender is None or not self.settings.capability("xbzrle"):
            return None
        return xbzrle_cache_stats(sender.counters)

    def _throttle_percentage(self) -> int:
        workload = self.runctl.workload
        return 0 if workload is None else workload.throttle_percentage

    # -- the migration thread ---------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            self._migrate()
        except (_Cancelled, PostcopyAborted):
            self._finish_cancelled()
        except (TransportError, StreamError) as exc:
            self._finish_failed(self._failure_text(str(exc)))
        except Exception as exc:  # a bug must still leave a clean failed state
            self._finish_failed(f"internal error in the migration thread: {exc!r}")
        finally:
            self._set_throttle(0)
            if self.multifd is not None:
                self.multifd.close()
            if self.compress is not None:
                self.compress.close()
            if self._channel is not None:
                self._channel.close()

    def _hears_destination(self) -> bool:
        """Whether QEMU 7.2's source would learn why its destination gave up.

        QEMU opens a return path only for the return-path capability or postcopy;
        without one its source sees nothing but its next write failing ("Unable to
        write to socket: ..."), so the VM reports that, not the reason its own
        return path carried.
        """
        caps = self.settings.capabilities
        return caps["return-path"] or caps["postcopy-ram"]

    def _failure_text(self, text: str) -> str:
        """Prefer the destination's own reason over the write error it caused, when
        QEMU would have heard it (see `_hears_destination`)."""
        if not self._hears_destination():
            return text
        if self._channel is not None and self._channel.has_return_path:
            self._reply_ready.wait(REPLY_GRACE)
        reply = self._reply
        if reply is not None and reply[0] == RP_ERROR:
            return f"Destination failed to load the migration stream: {reply[1]}"
        return text

    def _migrate(self) -> None:
        assert self.connector is not None
        self._channel = self.connector.connect()
        self._check_cancel()
        setup_start = time.monotonic()
        self._writer = StreamWriter(self._channel, self.ram)
        if self.settings.capability("xbzrle"):
            # The size is read once: QEMU 7.2 applies a new xbzrle-cache-size to the
            # next migration (its mid-migration resize is a no-op).
            self.xbzrle = XbzrleSender(
                self.settings.parameters.xbzrle_cache_size, PAGE_SIZE
            )
        want_uuid = self.settings.capability("validate-uuid")
        channels = 0
        if self.settings.capability("multifd"):
            channels = self.settings.parameters.multifd_channels
        self._count(
            self._writer.header(
                self.vm_uuid if want_uuid else None,
                channels,
                colo=self.settings.capability("x-colo"),
            ),
            0,
        )
        if self.settings.capability("compress"):
            p = self.settings.parameters
            self.compress = CompressSender(
                p.compress_threads, p.compress_level, p.compress_wait_thread
            )
        if self._channel.has_return_path:
            threading.Thread(
                target=self._read_return_path, name="migration-return-path", daemon=True
            ).start()
        if channels:
            # After the return path: a destination refusing multifd says why there.
            self._open_multifd(channels)
        # The first pass: every page is dirty; the log starts recording from here.
        self.log.clear()
        if self._ignores_ram:
            # x-ignore-shared: the destination maps the same shared file, so this RAM
            # is not sent at all and does not count in the totals (as in QEMU).
            self.counters.total = 0
        else:
            self.bitmap.set_all()
        now = time.monotonic()
        self._period_start = now
        self._sync()
        self.setup_time = int((time.monotonic() - setup_start) * 1000)
        if not self.state.cmpxchg(S.SETUP, S.ACTIVE):
            raise _Cancelled
        self._window_start = time.monotonic()
        while True:
            self._check_cancel()
            self._check_return_path()
            self._update_window()
            pending = self.bitmap.count() * PAGE_SIZE
            if pending < self._threshold:
                self._sync()
                pending = self.bitmap.count() * PAGE_SIZE
            if pending and pending >= self._threshold:
                if self._postcopy_requested.is_set() and self.settings.capability(
                    "postcopy-ram"
                ):
                    if not self._channel.has_return_path:
                        raise StreamError(
                            "postcopy needs a migration channel with a return path "
                            "(tcp:, unix: or a socket fd:)"
                        )
                    self.postcopy = PostcopySource(self)
                    self.postcopy.run()
                    return
                self._iterate()
                self._rate_limit_wait()
            else:
                break
        self._complete()

    @property
    def _ignores_ram(self) -> bool:
        return self.ram.shared and self.settings.capability("x-ignore-shared")

    def _open_multifd(self, count: int) -> None:
        """Connect the data channels to the main channel's address and start them."""
        assert self.connector is not None
        channels: list[Channel] = []
        try:
            for _ in range(count):
                self._check_cancel()
                channels.append(self.connector.connect())
        except BaseException:
            for channel in channels:
                channel.close()
            raise
        p = self.settings.parameters
        method = p.multifd_compression
        level = p.multifd_zstd_level if method == "zstd" else p.multifd_zlib_level
        self.multifd = MultifdSender(channels, method, level, on_error=lambda: None)
        self.multifd.start()
        self._count(self._multifd_bytes(), 0)

    def _multifd_bytes(self) -> int:
        """Bytes the data channels sent since the last call (multifd-bytes)."""
        assert self.multifd is not None
        total = self.multifd.bytes_sent
        delta = total - self._multifd_counted
        self._multifd_counted = total
        self.counters.multifd_bytes += delta
        return delta

    def _multifd_sync(self) -> None:
        """A pass boundary: SYNC on every data channel, MULTIFD_SYNC on the main."""
        assert self.multifd is not None and self._writer is not None
        self._multifd_generation += 1
        self.multifd.sync(self._multifd_generation)
        self._count(self._writer.multifd_sync(self._multifd_generation), 0)

    def _flush_compressed(self) -> None:
        """Write every group still being compressed: a pass boundary or the end."""
        if self.compress is not None and self._writer is not None:
            self._count(self.compress.write_finished(self._writer, wait=True), 0)

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise _Cancelled

    def _check_return_path(self) -> None:
        """While sending: any word from the destination means it gave up."""
        if self.multifd is not None:
            self.multifd.raise_if_failed()
            self._count(self._multifd_bytes(), 0)
        reply = self._reply
        if reply is not None:
            if reply[0] == RP_ACK:
                raise StreamError("the destination acknowledged an unfinished stream")
            if not self._hears_destination():
                # The reader has shut the channel down: the next write fails, and
                # that failure is what QEMU's source reports.
                return
            self._raise_for_reply(reply)

    @staticmethod
    def _raise_for_reply(reply: tuple[int, str]) -> None:
        if reply[0] == RP_ERROR:
            raise StreamError(
                f"Destination failed to load the migration stream: {reply[1]}"
            )
        if reply[0] != RP_ACK:
            raise StreamError(reply[1])

    def _read_return_path(self, channel: Channel | None = None) -> None:
        channel = channel or self._channel
        assert channel is not None
        while True:
            try:
                kind, payload = read_message(channel, self.ram.page_count)
            except (EOFError, OSError):
                reply = (0, "the destination closed the migration connection")
            except StreamError as exc:
                reply = (0, str(exc))
            else:
                if kind == RP_REQ_PAGES and self.postcopy is not None:
                    if len(payload) % 4 == 0 and payload:
                        pages = np.frombuffer(payload, dtype="<u4").astype(np.intp)
                        self.postcopy.queue_request(pages)
                        continue
                if kind in (RP_ACK, RP_ERROR):
                    reply = (kind, payload.decode("utf-8", "replace"))
                else:
                    reply = (0, f"unexpected return-path message (kind {kind})")
            break
        if channel is not self._channel:
            return  # a broken connection's reader, replaced by a postcopy recovery
        self._reply = reply
        self._reply_ready.set()
        if reply[0] == RP_ERROR and not self._hears_destination():
            # QEMU's source would not have heard this: it goes on writing until the
            # destination closes the connection (after draining, or by exiting),
            # and fails on that write, as QEMU's does.
            return
        if reply[0] != RP_ACK:
            # The destination gave up or died: unblock a send that may otherwise wait
            # forever on a peer that no longer reads.
            channel.shutdown()

    def _count(self, nbytes: int, pages: int) -> None:
        self.counters.transferred += nbytes
        self._window_bytes += nbytes
        self._window_pages += pages

    # -- passes, windows, rate limit ----------------------------------------------------

    def _sync(self) -> None:
        """Move the dirty log into the bitmap: a new pass (MIGRATION_PASS)."""
        self._flush_compressed()
        newly = self.log.harvest_into(self.bitmap.bits)
        if self._ignores_ram:
            self.bitmap.bits[:] = False
        c = self.counters
        c.dirty_sync_count += 1
        self._period_dirty += newly
        now = time.monotonic()
        elapsed = now - self._period_start
        if elapsed > SYNC_PERIOD:
            c.dirty_pages_rate = int(self._period_dirty / elapsed)
            if self.settings.capability("auto-converge"):
                self._maybe_throttle()
            self._period_start = now
            self._period_bytes = c.transferred
            self._period_dirty = 0
        if self.xbzrle is not None:
            self.xbzrle.counters.close_period()
        if self.compress is not None:
            self.compress.counters.close_period(PAGE_SIZE)
        if self.settings.capability("events"):
            self.sink("MIGRATION_PASS", {"pass": c.dirty_sync_count})
        assert self._writer is not None
        self._count(self._writer.sync(c.dirty_sync_count), 0)
        if self.multifd is not None:
            self._multifd_sync()

    def _maybe_throttle(self) -> None:
        current = self._throttle_percentage()
        wanted = self._throttle.next_throttle(
            self.settings.parameters,
            current,
            self._period_dirty * PAGE_SIZE,
            self.counters.transferred - self._period_bytes,
        )
        if wanted is not None:
            self._set_throttle(wanted)

    def _set_throttle(self, percentage: int) -> None:
        workload = self.runctl.workload
        if workload is not None:
            workload.set_throttle(percentage)

    def _update_window(self) -> None:
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed < WINDOW:
            return
        ms = elapsed * 1000
        c = self.counters
        self._bandwidth = self._window_bytes / ms
        self._threshold = self._bandwidth * self.settings.parameters.downtime_limit
        c.mbps = self._window_bytes * 8 / elapsed / 1e6
        c.pages_per_second = int(self._window_pages / elapsed)
        if c.dirty_pages_rate and self._window_bytes > 10000 and self._bandwidth:
            remaining = self.bitmap.count() * PAGE_SIZE
            self.expected_downtime = int(remaining / self._bandwidth)
        self._window_start = now
        self._window_bytes = 0
        self._window_pages = 0

    def _budget(self) -> int:
        """Bytes allowed per window; 0 means unlimited."""
        return self.settings.parameters.max_bandwidth // 10

    def _chunk_pages(self, budget: int) -> int:
        if not budget:
            return MAX_RECORD_PAGES
        # Only what is left of this window's budget: sizing chunks by the whole budget
        # let one window carry nearly twice the limit (QEMU checks after every page).
        left = budget - self._window_bytes
        return max(1, min(MAX_RECORD_PAGES, left // PAGE_SIZE))

    def _iterate(self) -> None:
        deadline = time.monotonic() + ITERATION_LIMIT
        while True:
            budget = self._budget()
            if budget and self._window_bytes >= budget:
                return
            if not self._send_some(self._chunk_pages(budget)):
                return
            if time.monotonic() >= deadline or self._cancel.is_set():
                return

    def _send_some(self, limit: int) -> bool:
        cursor = self.bitmap.cursor
        # The bulk stage ends exactly at the end of RAM: a chunk must not run on into
        # pages the guest dirtied again, which belong to the next round.
        pages = self.bitmap.take(limit, wrap=not self._bulk_stage)
        if not pages.size and self._bulk_stage and self.bitmap.cursor < cursor:
            # Nothing was left before the end of RAM: the bulk stage is over.
            self._bulk_stage = False
            cursor = self.bitmap.cursor
            pages = self.bitmap.take(limit)
        if not pages.size:
            return False
        assert self._writer is not None
        if self.multifd is not None:
            # QEMU 7.2 tries multifd before XBZRLE: with both on, pages go multifd.
            normal_idx, data, zero_idx = self._writer.snapshot(pages)
            nbytes = self._writer.send_pages(normal_idx[:0], data[:0], zero_idx)
            self.multifd.queue_pages(normal_idx, data)
            nbytes += self._multifd_bytes()
            normal, zero = int(normal_idx.size), int(zero_idx.size)
        elif self.compress is not None and (self.xbzrle is None or self._bulk_stage):
            # As QEMU 7.2: compression stops once XBZRLE takes over (after bulk).
            nbytes, normal, zero = self.compress.send(self._writer, pages)
        elif self.xbzrle is not None and not self._bulk_stage:
            nbytes, normal, zero = self.xbzrle.send(
                self._writer,
                pages,
                self.counters.dirty_sync_count,
                last_stage=self._last_stage,
            )
        else:
            nbytes, normal, zero = self._writer.pages(pages)
        if self.bitmap.cursor <= cursor or not self.bitmap.bits.any():
            # The scan wrapped or nothing is left: a whole round over RAM is done.
            self._bulk_stage = False
        self.counters.normal += normal
        self.counters.duplicate += zero
        self._count(nbytes, int(pages.size))
        return True

    def _rate_limit_wait(self) -> None:
        budget = self._budget()
        if budget and self._window_bytes >= budget:
            wait = self._window_start + WINDOW - time.monotonic()
            if wait > 0:
                self._cancel.wait(wait)

    # -- switchover ---------------------------------------------------------------------

    def _complete(self) -> None:
        downtime_start = time.monotonic()
        self._vm_was_running = self.runctl.vm_stop(RunState.FINISH_MIGRATE)
        self._vm_stopped_by_us = True
        current = S.ACTIVE
        if self.settings.capability("pause-before-switchover"):
            if not self.state.cmpxchg(S.ACTIVE, S.PRE_SWITCHOVER):
                raise _Cancelled
            assert self._writer is not None
            while not self._continue.wait(KEEPALIVE_INTERVAL):
                self._count(self._writer.keepalive(), 0)
            self._check_cancel()
            if not self.state.cmpxchg(S.PRE_SWITCHOVER, S.DEVICE):
                raise _Cancelled
            current = S.DEVICE
        self._sync()
        self._last_stage = True
        while self._send_some(MAX_RECORD_PAGES):
            self._check_cancel()
        assert self._writer is not None and self._channel is not None
        self._flush_compressed()
        if self.multifd is not None:
            self._multifd_sync()
            self.multifd.flush()
            self._count(self._multifd_bytes(), 0)
        self._count(self._writer.end(), 0)
        if self.settings.capability("x-colo"):
            self._run_colo(current)
            return
        self._await_destination()
        end = time.monotonic()
        self.downtime = int((end - downtime_start) * 1000)
        self.total_time = int((end - self.start_time) * 1000)
        c = self.counters
        c.remaining = 0
        c.dirty_pages_rate = 0
        transfer_ms = self.total_time - (self.setup_time or 0)
        if transfer_ms > 0:
            c.mbps = c.transferred * 8 / transfer_ms / 1000
        self._set_throttle(0)
        self.runctl.set_state(RunState.POSTMIGRATE)
        if not self.state.cmpxchg(current, S.COMPLETED):
            raise _Cancelled

    def _run_colo(self, current: MigrationStatus) -> None:
        """x-colo: instead of completing, go on as COLO's primary until failover.

        Over a socket the secondary's acknowledgement of the whole stream comes
        first. A pipe (exec:, a pipe fd:) has no way back: as QEMU 7.2 over exec:
        the primary enters colo all the same and waits for the secondary's word
        (see :class:`.colo_primary.ColoPrimary`), without waiting for the command.
        """
        channel = self._channel
        assert channel is not None
        if channel.has_return_path:
            self._await_destination()
        # QEMU 7.2 computes total-time and downtime only when a migration completes
        # on its own; one completed by a COLO failover shows both as 0.
        self.downtime = 0
        self.total_time = 0
        self._set_throttle(0)
        self.counters.remaining = 0
        self.counters.dirty_pages_rate = 0
        self.colo = ColoPrimary(self, channel)
        if not self.colo.enter(current):
            raise _Cancelled
        self._vm_stopped_by_us = False  # from here on COLO runs the guest
        self.colo.run()

    def restart_over_colo(self) -> bool:
        """migrate while in colo: QEMU 7.2 does not count colo as running, so it
        resets the migration for a new one (MIGRATION setup, counters zeroed) and
        only then fails ("duplicate yank instance": the COLO session still holds
        the channel). The status stays setup; the COLO thread, unaware, goes on with
        the old channel until its next checkpoint finds the status changed.

        False when the status left colo first (a failover just completed).
        """
        if not self.state.cmpxchg(S.COLO, S.SETUP):
            return False
        self.counters = RamCounters(total=self.ram.size, page_size=PAGE_SIZE)
        self.start_time = time.monotonic()
        self.setup_time = 0
        self.total_time = self.downtime = None
        self.expected_downtime = 0
        return True

    def _await_destination(self) -> None:
        """Completion needs the destination's word (sockets) or the pipe's end."""
        channel = self._channel
        if isinstance(channel, SocketChannel):
            while not self._reply_ready.wait(0.1):
                self._check_cancel()
            self._check_cancel()
            reply = self._reply
            assert reply is not None
            if reply[0] == RP_ERROR and not self._hears_destination():
                # QEMU's source, deaf to the reason, learns of it from its next
                # write to the destination that stopped reading: make that write
                # fail now (EPIPE) rather than after the destination's drain.
                channel.shutdown()
                channel.send(b"\x00")
            self._raise_for_reply(reply)
            return
        assert isinstance(channel, PipeChannel)
        status = channel.finish()
        if status != 0:
            raise TransportError(f"migration command exited with status {status}")

    # -- endings ------------------------------------------------------------------------

    def _restore_vm(self) -> None:
        """After a failure or cancel: run the guest again if migration stopped it."""
        if not self._vm_stopped_by_us:
            return
        if self._vm_was_running:
            self.runctl.vm_start()
        elif self.runctl.state is RunState.FINISH_MIGRATE:
            self.runctl.set_state(RunState.POSTMIGRATE)

    def _finish_cancelled(self) -> None:
        self._set_throttle(0)
        self._restore_vm()
        if not self.state.cmpxchg(S.CANCELLING, S.CANCELLED):
            # cancel raced with a completion that already failed the handshake
            self._to_failed("migration cancelled")

    def _finish_failed(self, text: str) -> None:
        if self.state.value is S.CANCELLING:
            self._finish_cancelled()
            return
        self.error_desc = text
        self._to_failed(text)
        self._set_throttle(0)
        self._restore_vm()

    def _to_failed(self, text: str) -> None:
        if self.error_desc is None:
            self.error_desc = text
        for old in (
            S.SETUP,
            S.ACTIVE,
            S.PRE_SWITCHOVER,
            S.DEVICE,
            S.CANCELLING,
            S.POSTCOPY_ACTIVE,
            S.POSTCOPY_PAUSED,
            S.POSTCOPY_RECOVER,
        ):
            if self.state.cmpxchg(old, S.FAILED):
                return
