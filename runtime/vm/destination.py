"""The destination side: listen (or take a pipe/fd), load and verify, then start.

QEMU 7.2's observable behaviour: starting an incoming migration emits
``MIGRATION {"status": "setup"}`` whatever the events capability says; the connection
makes it active, a fully verified stream makes it completed after the guest has been
started (unless -S), and anything wrong makes it failed. A failed destination never
reports completed and tells its owner through ``on_failure`` (the VM process then exits
with status 1, as QEMU does). Over a socket the result also goes back to the source on
the return path: an acknowledgement only after the guest runs, or the reason for the
failure.
"""

from __future__ import annotations

import threading
import uuid as uuid_mod
from collections.abc import Callable

from .params import MigrationSettings
from .ram import GuestRam
from .runstate import EventSink, RunControl, StateCell
from .states import MigrationStatus, RunState
from .stats import MigrationInfo
from .stream import RP_ACK, RP_ERROR, LoadProgress, StreamError, StreamLoader
from .stream import encode_reply
from .transport import Channel, Listener, SocketChannel

S = MigrationStatus

POPULATE_STEP_PAGES = 8192  # 32 MiB per madvise call: stops soon after close
# After reporting a failure, how long to read and drop what the source still sends, so
# that closing does not reset the connection before the source has read the reason.
DRAIN_SECONDS = 2.0


class IncomingMigration:
    def __init__(
        self,
        *,
        ram: GuestRam,
        settings: MigrationSettings,
        runctl: RunControl,
        sink: EventSink,
        vm_uuid: uuid_mod.UUID | None,
        on_failure: Callable[[str], None],
    ) -> None:
        self.ram = ram
        self.settings = settings
        self.runctl = runctl
        self.sink = sink
        self.vm_uuid = vm_uuid
        self.on_failure = on_failure
        self.state = StateCell(sink, lambda: settings.capability("events"))
        self.error_desc: str | None = None
        self.progress: LoadProgress | None = None
        self._listener: Listener | None = None
        self._channel: Channel | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self, listener: Listener) -> None:
        """Begin waiting for the source on an already bound listener."""
        self._listener = listener
        self.sink("MIGRATION", {"status": S.SETUP.value})
        threading.Thread(
            target=self._populate_ram, name="migration-ram-populate", daemon=True
        ).start()
        self._thread = threading.Thread(
            target=self._thread_main, name="migration-incoming", daemon=True
        )
        self._thread.start()

    def info(self) -> MigrationInfo:
        status = self.state.value
        listener = self._listener
        address = listener.socket_address if listener is not None else []
        if status is S.NONE:
            return MigrationInfo(socket_address=list(address) or None)
        return MigrationInfo(
            status=status,
            error_desc=self.error_desc if status is S.FAILED else None,
            socket_address=list(address) or None,
        )

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """Tear down (VM shutdown): stop listening, drop the connection."""
        self._closed.set()
        if self._listener is not None:
            self._listener.close()
        channel = self._channel
        if channel is not None:
            channel.shutdown()
        self.join(5)

    # -- the loading thread -------------------------------------------------------------

    def _populate_ram(self) -> None:
        """Fault the RAM in while waiting, ahead of the loader (content untouched)."""
        step = POPULATE_STEP_PAGES
        for first in range(0, self.ram.page_count, step):
            if self._closed.is_set() or self.state.value in (S.COMPLETED, S.FAILED):
                return
            count = min(step, self.ram.page_count - first)
            if not self.ram.populate(first, count):
                return

    def _thread_main(self) -> None:
        assert self._listener is not None
        channel = self._listener.accept()
        if channel is None:
            return
        self._channel = channel
        try:
            self._load(channel)
        except StreamError as exc:
            self._fail(channel, str(exc))
        except Exception as exc:  # a bug must still end in failed, never completed
            self._fail(channel, f"internal error while loading: {exc!r}")
        finally:
            channel.close()

    def _load(self, channel: Channel) -> None:
        self.state.cmpxchg(S.NONE, S.ACTIVE)
        loader = StreamLoader(channel, self.ram)
        self.progress = loader.progress
        loader.read_header(self.vm_uuid)
        loader.load()
        if self._closed.is_set():
            raise StreamError("the VM is shutting down")
        self.ram.flush()
        if self.runctl.autostart:
            self.runctl.vm_start()
        else:
            self.runctl.set_state(RunState.PAUSED)
        self.state.cmpxchg(S.ACTIVE, S.COMPLETED)
        if isinstance(channel, SocketChannel):
            try:
                channel.send(encode_reply(RP_ACK))
            except OSError:
                # The source is gone; the guest already runs here, as in QEMU when the
                # source dies after the switchover.
                pass

    def _fail(self, channel: Channel, text: str) -> None:
        self.error_desc = text
        self.state.cmpxchg(S.ACTIVE, S.FAILED)
        if isinstance(channel, SocketChannel):
            try:
                channel.send(encode_reply(RP_ERROR, text))
                channel.finish_with_drain(DRAIN_SECONDS)
            except OSError:
                pass
        if not self._closed.is_set():
            self.on_failure(text)
