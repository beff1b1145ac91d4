"""The destination side: listen (or take a pipe/fd), load and verify, then start.

QEMU 7.2's observable behaviour: starting an incoming migration emits
``MIGRATION {"status": "setup"}`` whatever the events capability says; the connection
makes it active, a fully verified stream makes it completed after the guest has been
started (unless -S), and anything wrong makes it failed. A failed destination never
reports completed and tells its owner through ``on_failure`` (the VM process then exits
with status 1, as QEMU does). Over a socket the result also goes back to the source on
the return path: an acknowledgement only after the guest runs, or the reason for the
failure. Capabilities and parameters are read when the source connects, as QEMU does,
so they may be set after ``-incoming tcp:...`` started listening.

QEMU 7.2 waits for ever for a source that connected and went silent; this destination
gives up, fails with an error-desc that says what it waited for, and exits, as for
any failed load (`IncomingTimeouts`): a source must send its header and open every
multifd channel within ``handshake`` seconds of connecting, and must not stay silent
for ``idle`` seconds while loading (a source with nothing to send for a while, such as
one waiting in pre-switchover, sends keepalives). Waiting for a source to connect at
all is not limited, and neither is a COLO secondary's wait for its next checkpoint.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import uuid as uuid_mod
from collections.abc import Callable

import numpy as np

from .colo_secondary import ColoSecondary
from .multifd import HELLO, HELLO_MAGIC, MultifdReceiver, parse_hello
from .params import MigrationSettings
from .postcopy_dest import PostcopyDestination
from .ram import GuestRam
from .runstate import EventSink, RunControl, StateCell
from .states import MigrationStatus, RunState
from .stats import MigrationInfo, socket_addresses
from .stream import (
    MAGIC,
    RP_ACK,
    RP_ERROR,
    LoadProgress,
    StreamError,
    StreamLoader,
    encode_reply,
)
from .transport import Channel, Listener, Liveness, SocketChannel, TransportError

S = MigrationStatus

EXTRA_CONNECTION = "qapigen-vm: Extra incoming migration connection; ignoring"

POPULATE_STEP_PAGES = 8192  # 32 MiB per madvise call: stops soon after close


@dataclasses.dataclass(frozen=True)
class IncomingTimeouts:
    """How long a destination waits on a source that has connected (seconds)."""

    handshake: float = 30.0  # connection -> header and every multifd channel
    idle: float = 30.0  # nothing at all from the source while loading

    def handshake_reason(self) -> str:
        return (
            "the source connected but sent no migration stream header within "
            f"{self.handshake:g} s"
        )

    def idle_reason(self) -> str:
        return f"the source has sent nothing for {self.idle:g} s"


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
        timeouts: IncomingTimeouts | None = None,
    ) -> None:
        self.ram = ram
        self.timeouts = timeouts or IncomingTimeouts()
        # How long the source has been silent, on any of its channels.
        self.liveness = Liveness(None, "")
        self.settings = settings
        self.runctl = runctl
        self.sink = sink
        self.vm_uuid = vm_uuid
        self.on_failure = on_failure
        self.state = StateCell(sink, lambda: settings.capability("events"))
        self.error_desc: str | None = None
        self.progress: LoadProgress | None = None
        self._listener: Listener | None = None
        # Where it listened: QEMU 7.2 keeps showing it after the connection came.
        self._listen_address: list[dict[str, object]] = []
        self._channel: Channel | None = None
        self._multifd: MultifdReceiver | None = None
        self._thread: threading.Thread | None = None
        # Closes further connections while loading (see `_ignore_further_connections`).
        self._extra_acceptor: threading.Thread | None = None
        self._closed = threading.Event()
        # Set at the switch to postcopy (see :mod:`.postcopy_dest`).
        self.postcopy: PostcopyDestination | None = None
        # Set when the source asked for COLO (see :mod:`.colo_secondary`).
        self.colo: ColoSecondary | None = None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self, listener: Listener) -> None:
        """Begin waiting for the source on an already bound listener."""
        self._listener = listener
        self._listen_address = list(listener.socket_address)
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
            return MigrationInfo(
                socket_address=socket_addresses(list(address or self._listen_address))
            )
        blocktime: int | None = None
        vcpu_blocktime: list[int] | None = None
        postcopy = self.postcopy
        if postcopy is not None and status is not S.COMPLETED:
            address = postcopy.socket_address or address
        if postcopy is not None and status is S.COMPLETED:
            # QEMU 7.2 reports the blocktime of a completed postcopy only.
            if self.settings.capability("postcopy-blocktime"):
                blocktime, vcpu_blocktime = postcopy.blocktime()
        # QEMU 7.2 forgets the address once a load has completed (the listener may
        # still be closing then); before that it shows where it listened.
        shown = [] if status is S.COMPLETED else list(address or self._listen_address)
        return MigrationInfo(
            status=status,
            error_desc=self.error_desc if status is S.FAILED else None,
            socket_address=socket_addresses(shown),
            postcopy_blocktime=blocktime,
            postcopy_vcpu_blocktime=vcpu_blocktime,
        )

    # -- postcopy -----------------------------------------------------------------------

    def pause(self) -> None:
        """migrate-pause (the engine has checked the state is postcopy-active)."""
        if self.postcopy is not None:
            self.postcopy.pause()

    def recover(self, listener: Listener) -> None:
        """migrate-recover (the engine has checked the state is postcopy-paused)."""
        assert self.postcopy is not None
        self.postcopy.recover(listener)

    def _in_postcopy(self) -> bool:
        return self.postcopy is not None and self.state.value in (
            S.POSTCOPY_ACTIVE,
            S.POSTCOPY_RECOVER,
        )

    def _switch_to_postcopy(
        self, loader: StreamLoader, channel: Channel, missing: np.ndarray
    ) -> None:
        if not self.settings.capability("postcopy-ram"):
            raise StreamError(
                "the source switched to postcopy but this VM's postcopy-ram "
                "capability is off"
            )
        self.postcopy = PostcopyDestination(self, loader, channel, missing)
        self.postcopy.switch()

    def stop_listening(self) -> None:
        """A COLO secondary's failover: no more connections (QEMU 7.2 refuses them
        once the failover is done)."""
        if self._listener is not None:
            self._stop_ignoring(self._listener)

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
        if self.postcopy is not None:
            self.postcopy.close()
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
        listener = self._listener
        assert listener is not None
        # Kept open until the incoming migration ends (see
        # `_ignore_further_connections`). No limit on the wait for a source.
        channel = listener.accept(keep_listening=True, liveness=self.liveness)
        if channel is None:
            return
        timeouts = self.timeouts
        self.liveness.expect(
            timeouts.handshake, timeouts.handshake_reason(), deadline=True
        )
        self._channel = channel
        # As QEMU: the capability counts as the source connects, not as -incoming
        # starts listening.
        multifd = self.settings.capability("multifd")
        try:
            self.state.cmpxchg(S.NONE, S.ACTIVE)
            threads = self.settings.parameters.decompress_threads
            loader = StreamLoader(channel, self.ram, threads)
            self.progress = loader.progress
            if multifd:
                loader = self._gather_multifd(listener, channel)
                channel = self._channel
            else:
                header = loader.read_header(self.vm_uuid)
                if header.multifd_channels:
                    raise StreamError(
                        f"the source uses multifd ({header.multifd_channels} "
                        "channels) but this VM's multifd capability is off"
                    )
                self._ignore_further_connections(listener)
            self.liveness.expect(timeouts.idle, timeouts.idle_reason())
            self._load(channel, loader)
        except (StreamError, TransportError) as exc:
            if self._in_postcopy():
                assert self.postcopy is not None
                self.postcopy.broken()
            else:
                self._fail(self._channel or channel, self._failure_reason(str(exc)))
        except Exception as exc:  # a bug must still end in failed, never completed
            if self._in_postcopy():
                assert self.postcopy is not None
                self.postcopy.broken()
                return
            self._fail(
                self._channel or channel, f"internal error while loading: {exc!r}"
            )
        finally:
            self._stop_ignoring(listener)
            if self._channel is not None and self._channel is not channel:
                self._channel.close()
            if self._multifd is not None:
                self._multifd.close()
            channel.close()

    def _ignore_further_connections(self, listener: Listener) -> None:
        """All channels are here; as QEMU 7.2 does until the incoming migration ends
        (for a COLO secondary: until its failover), the listener stays open and a
        further connection is accepted and closed at once, with a message on stderr;
        query-migrate goes on showing the address."""

        def ignore_extra_connections() -> None:
            while (
                extra := listener.accept(keep_listening=True, secure=False)
            ) is not None:
                print(EXTRA_CONNECTION, file=sys.stderr, flush=True)
                extra.close()

        self._extra_acceptor = threading.Thread(
            target=ignore_extra_connections,
            name="migration-extra-connections",
            daemon=True,
        )
        self._extra_acceptor.start()

    def _stop_ignoring(self, listener: Listener) -> None:
        """Close the listener for good; returns once the port is really closed (the
        kernel keeps a listening socket while a thread still waits in accept on it)."""
        listener.close()
        acceptor = self._extra_acceptor
        if acceptor is not None and acceptor is not threading.current_thread():
            acceptor.join()

    def _failure_reason(self, text: str) -> str:
        """A data channel's own error explains a main channel cut short for it."""
        receiver = self._multifd
        if receiver is not None and receiver.error is not None:
            return receiver.error
        return text

    def _gather_multifd(self, listener: Listener, first: Channel) -> StreamLoader:
        """Accept the main channel and every data channel, in whatever order they
        come; check the counts agree; start the data channels' receivers."""
        wanted = self.settings.parameters.multifd_channels
        main: StreamLoader | None = None
        data: dict[int, Channel] = {}
        extra: list[Channel] = []
        conn: Channel | None = first

        def waiting() -> str:
            return (
                f"multifd: {'the main channel and ' if main is None else ''}"
                f"{len(data)} of {wanted} data channels connected within "
                f"{self.timeouts.handshake:g} s"
            )

        try:
            while main is None or len(data) < wanted:
                self.liveness.rename(waiting())
                if conn is None:
                    raise StreamError("the VM is shutting down")
                magic = bytearray(len(MAGIC))
                try:
                    conn.recv_exact(memoryview(magic))
                except TimeoutError as exc:  # see the liveness's reason above
                    raise StreamError(str(exc)) from None
                except (EOFError, OSError):
                    raise StreamError(
                        "a migration connection closed before its hello"
                    ) from None
                if bytes(magic) == MAGIC and main is None:
                    self._channel = conn
                    main = StreamLoader(conn, self.ram)  # multifd: no compress
                    self.progress = main.progress
                    header = main.read_header(self.vm_uuid, bytes(magic))
                    if header.multifd_channels != wanted:
                        raise StreamError(
                            f"the source uses {header.multifd_channels} multifd "
                            f"channels, this VM expects {wanted} (multifd-channels "
                            "must match, and the capability be on for both)"
                        )
                elif bytes(magic) == HELLO_MAGIC:
                    extra.append(conn)
                    rest = bytearray(HELLO.size - len(magic))
                    conn.recv_exact(memoryview(rest))
                    channel_id, count = parse_hello(bytes(magic + rest))
                    if count != wanted or channel_id in data:
                        raise StreamError(
                            f"unexpected multifd channel {channel_id} of {count} "
                            f"(this VM expects {wanted} channels)"
                        )
                    data[channel_id] = conn
                else:
                    extra.append(conn)
                    raise StreamError(
                        f"not a qapigen-vm migration connection (magic {bytes(magic)!r})"
                    )
                if main is None or len(data) < wanted:
                    self.liveness.rename(waiting())
                    conn = listener.accept(keep_listening=True, liveness=self.liveness)
        except BaseException:
            for other in extra:
                other.close()
            raise
        self._ignore_further_connections(listener)
        p = self.settings.parameters
        method = p.multifd_compression
        level = p.multifd_zstd_level if method == "zstd" else p.multifd_zlib_level
        main_channel = self._channel
        assert main_channel is not None
        self._multifd = MultifdReceiver(
            [data[i] for i in range(wanted)],
            self.ram,
            method,
            level,
            on_error=main_channel.shutdown_read,
        )
        self._multifd.start()
        return main

    def _load(self, channel: Channel, loader: StreamLoader) -> None:
        receiver = self._multifd
        try:
            loader.load(
                on_multifd_sync=receiver.wait_sync if receiver else None,
                on_postcopy=lambda missing: self._switch_to_postcopy(
                    loader, channel, missing
                ),
            )
        finally:
            loader.close()
        if receiver is not None:
            receiver.close()
        if self._closed.is_set():
            raise StreamError("the VM is shutting down")
        if self.postcopy is not None:
            self.postcopy.finish()
            return
        if loader.header is not None and loader.header.colo:
            self._run_colo(channel)
            return
        self.ram.flush()
        if self.runctl.autostart:
            self.runctl.vm_start()
        else:
            self.runctl.set_state(RunState.PAUSED)
        if self._listener is not None:  # as QEMU: no more connections once completed
            self._listener.close()
        self.state.cmpxchg(S.ACTIVE, S.COMPLETED)
        if isinstance(channel, SocketChannel):
            try:
                channel.send(encode_reply(RP_ACK))
            except OSError:
                # The source is gone; the guest already runs here, as in QEMU when the
                # source dies after the switchover.
                pass

    def _run_colo(self, channel: Channel) -> None:
        """The source has x-colo: go on as COLO's secondary until failover."""
        if not isinstance(channel, SocketChannel):
            raise StreamError(
                "COLO needs a migration channel with a return path (tcp:, unix: or a "
                "socket fd:)"
            )
        # Checkpoints come every x-checkpoint-delay, however long that is.
        self.liveness.expect(None, "")
        self.colo = ColoSecondary(self, channel)
        self.colo.run()

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
