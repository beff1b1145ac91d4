"""qapigen-migrate: live-migrate a VM between two QMP endpoints, with a progress bar.

    qapigen-migrate unix:/run/src.qmp unix:/run/dst.qmp --cap events=on \\
        --param max-bandwidth=0 --param downtime-limit=300 --plot timeline.png

It talks to both sides with the generated, typed async client: checks that the
destination waits for a migration, sets the capabilities on both sides (the
destination first, and checks it took them, so that a destination that cannot is
refused before anything starts) and the parameters (on the source, and on the
destination for those it reads), finds the destination's listening address (or starts
``migrate-incoming`` on a ``-incoming defer`` destination), runs ``migrate``, and polls
``query-migrate`` until the migration ends, drawing a progress line on a terminal or
plain lines otherwise. With pause-before-switchover on, it sends ``migrate-continue`` at
pre-switchover; with ``--postcopy-after N``, ``migrate-start-postcopy`` once pass N has
begun. When the destination fails, its own error-desc is reported with the source's.

Every QMP call has a time limit (COMMAND_TIMEOUT, or what is left of ``--timeout``),
so a peer that stops answering ends the command with a message naming the side and
the command. ``--timeout`` bounds the whole run: a migration still running then is
cancelled, and the cancel gets CANCEL_GRACE seconds to end it. Ctrl-C (or SIGTERM)
cancels the migration with ``migrate_cancel``; a second one stops waiting for the
cancel. Exit status: 0 completed, 1 failed or cancelled (or a QMP error), 2 bad command
line, 130 gave up.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

from qapigen_migration.commands import AsyncClient
from qapigen_migration.events import MigrationEvent, MigrationPassEvent, decode_event
from qapigen_migration.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationCapabilityStatus,
    MigrationInfo,
    MigrationStatus,
    SocketAddress_Inet,
    SocketAddress_Unix,
)
from qapigen_runtime.qmp import QMPClient, QMPCommandError, QMPConnectionError, QMPEvent
from qapigen_runtime.qmp.address import SYNTAX as ADDRESS_SYNTAX
from qapigen_runtime.qmp.address import Address, describe
from qapigen_runtime.version import add_version_option

from .arguments import UsageError, parse_address, parse_capability, parse_parameters
from .deadline import CallLimits
from .plot import PlotUnavailable, plot_series, write_png
from .plot import describe as describe_plot
from .progress import ProgressDisplay, format_bytes, summary_lines
from .timeline import FINAL_STATUSES, Mark, MarkKind, Sample, Timeline

PROGRAM = "qapigen-migrate"

T = TypeVar("T")

# Parameters the destination reads too: multifd needs the same channel count and
# compression on both sides, and decompression threads are the destination's.
DESTINATION_PARAMETERS = (
    "multifd_channels",
    "multifd_compression",
    "decompress_threads",
)

# How long to wait after the source completes for the destination's own completion
# or RESUME (they arrive a few ms later; only the timeline needs them).
DESTINATION_GRACE = 2.0

# Signals that cancel the migration (a second one stops waiting for the cancel).
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Re-queries of a completed migration whose final figures are not set yet (s apart).
SETTLE_TRIES = 20
SETTLE_DELAY = 0.05

# The longest any QMP call may take (with --timeout: at most what is left of it).
COMMAND_TIMEOUT = 30.0
# After migrate_cancel, how long the migration may take to reach a final status.
CANCEL_GRACE = 15.0
# How long the destination's own error-desc is asked for once it failed (QEMU exits
# at once; qapigen-vm answers for a while).
DESTINATION_REASON_WAIT = 2.0

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
# Statuses of a destination that is no longer waiting for a migration.
_DESTINATION_BUSY = {
    MigrationStatus.ACTIVE,
    MigrationStatus.POSTCOPY_ACTIVE,
    MigrationStatus.POSTCOPY_PAUSED,
    MigrationStatus.POSTCOPY_RECOVER,
    MigrationStatus.COMPLETED,
    MigrationStatus.FAILED,
    MigrationStatus.COLO,
}


class MigrateError(Exception):
    """A failure before or around the migration (not the migration's own status)."""


@dataclass
class Options:
    source: Address
    destination: Address | None  # None: only --uri, nothing to set up there
    capabilities: list[MigrationCapabilityStatus]
    parameters: MigrateSetParameters | None
    uri: str | None = None
    incoming: str | None = None
    interval: float = 0.25
    timeout: float | None = None
    plot: Path | None = None
    postcopy_after: int | None = None  # the pass after which to switch to postcopy


@dataclass
class _RunState:
    """What the event readers and the signal handler share with the poll loop."""

    t0: float
    timeline: Timeline = field(default_factory=Timeline)
    pass_number: int | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    destination_done: asyncio.Event = field(default_factory=asyncio.Event)
    destination_failed: asyncio.Event = field(default_factory=asyncio.Event)
    destination_error: str | None = None  # the destination's own error-desc
    interrupts: int = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Live-migrate a VM from one QMP endpoint to another, showing "
        "progress; exit 0 when completed, 1 when failed or cancelled.",
    )
    add_version_option(parser)
    parser.add_argument("source", help=f"the source's QMP address: {ADDRESS_SYNTAX}")
    parser.add_argument(
        "destination",
        nargs="?",
        help="the destination's QMP address (optional with --uri)",
    )
    parser.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="NAME=on|off",
        help="set a migration capability on both sides (repeatable); 'events' is "
        "turned on unless given here",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a migration parameter (repeatable; sizes take k/M/G suffixes)",
    )
    parser.add_argument(
        "--uri",
        help="migrate to this URI (default: the address the destination listens on)",
    )
    parser.add_argument(
        "--incoming",
        metavar="URI",
        help="for a '-incoming defer' destination: listen on URI with migrate-incoming "
        "(default tcp:HOST:0, HOST from a tcp destination address or 127.0.0.1)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.25,
        help="seconds between query-migrate polls (default 0.25)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up after this many seconds, setup included: every QMP call is "
        "bounded by it, and a migration still running then is cancelled",
    )
    parser.add_argument(
        "--postcopy-after",
        type=int,
        metavar="N",
        help="switch to postcopy (migrate-start-postcopy) once pass N has begun; "
        "turns postcopy-ram on on both sides",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="write a timeline PNG (needs matplotlib)",
    )
    return parser


def parse_options(argv: Sequence[str] | None) -> Options:
    """The command line as typed options; UsageError (or argparse's exit 2) if bad."""
    args = build_parser().parse_args(argv)
    capabilities = [parse_capability(text) for text in args.cap]
    if not any(c.capability is MigrationCapability.EVENTS for c in capabilities):
        # MIGRATION_PASS and the state events mark the timeline and wake the poller.
        capabilities.insert(
            0,
            MigrationCapabilityStatus(
                capability=MigrationCapability.EVENTS, state=True
            ),
        )
    if not 0.05 <= args.interval <= 60:
        raise UsageError(f"--interval {args.interval}: expected 0.05 to 60 seconds")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout}: expected a positive number")
    if args.destination is None and (args.uri is None or args.incoming is not None):
        raise UsageError("a destination QMP address is needed (or --uri URI)")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'qapigen[plot]'")
    if args.postcopy_after is not None:
        if args.postcopy_after < 1:
            raise UsageError(
                f"--postcopy-after {args.postcopy_after}: expected a pass number, "
                "1 or more"
            )
        _turn_on(capabilities, MigrationCapability.POSTCOPY_RAM, "--postcopy-after")
    return Options(
        source=parse_address(args.source, "source"),
        destination=(
            None
            if args.destination is None
            else parse_address(args.destination, "destination")
        ),
        capabilities=capabilities,
        parameters=parse_parameters(args.param),
        uri=args.uri,
        incoming=args.incoming,
        interval=args.interval,
        timeout=args.timeout,
        plot=args.plot,
        postcopy_after=args.postcopy_after,
    )


def _turn_on(
    capabilities: list[MigrationCapabilityStatus],
    capability: MigrationCapability,
    option: str,
) -> None:
    """`option` needs `capability`: on unless the command line turned it off."""
    for status in capabilities:
        if status.capability is capability:
            if not status.state:
                raise UsageError(f"{option} needs --cap {capability.value}=on")
            return
    capabilities.append(MigrationCapabilityStatus(capability=capability, state=True))


def destination_parameters(
    parameters: MigrateSetParameters,
) -> MigrateSetParameters | None:
    """The part of `parameters` the destination must have as well."""
    chosen = {
        name: getattr(parameters, name)
        for name in DESTINATION_PARAMETERS
        if getattr(parameters, name) is not None
    }
    return MigrateSetParameters(**chosen) if chosen else None


@dataclass
class _Side:
    """One end of the migration: its QMP connection and the typed client over it."""

    name: str
    address: Address
    qmp: QMPClient = field(default_factory=QMPClient)
    client: AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = AsyncClient(self.qmp)


def uri_from_listening(info: MigrationInfo, destination: Address) -> str | None:
    """The URI to migrate to, from where the destination says it listens."""
    for address in info.socket_address or []:
        if isinstance(address, SocketAddress_Inet):
            host = address.host
            if host in _WILDCARD_HOSTS:
                # Listening everywhere: reach it where its monitor is reached.
                host = destination[0] if isinstance(destination, tuple) else "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            return f"tcp:{host}:{address.port}"
        if isinstance(address, SocketAddress_Unix):
            return f"unix:{address.path}"
    return None


def _default_incoming(destination: Address) -> str:
    host = destination[0] if isinstance(destination, tuple) else "127.0.0.1"
    return f"tcp:{host}:0"  # port 0: the destination picks one and reports it


class MigrationRun:
    """One migration between two connected endpoints, from setup to the summary."""

    def __init__(self, options: Options, out: TextIO, err: TextIO) -> None:
        self.options = options
        self.out = out
        self.err = err
        self.display = ProgressDisplay(
            err,
            is_tty=err.isatty(),
            width=lambda: shutil.get_terminal_size().columns,
        )
        self.source = _Side("source", options.source)
        self.destination = (
            None
            if options.destination is None
            else _Side("destination", options.destination)
        )
        self.sides = [self.source] + ([self.destination] if self.destination else [])
        self.state = _RunState(t0=time.time())
        self.limits = CallLimits(options.timeout, COMMAND_TIMEOUT, CANCEL_GRACE)
        self.uri = ""
        self._deferred = False  # the destination waited for migrate-incoming
        self._helpers: list[asyncio.Task[None]] = []

    async def run(self) -> int:
        readers: list[asyncio.Task[None]] = []
        try:
            await self._connect()
            await self._check_destination()
            await self._configure()
            self.uri = uri = await self._target_uri()
            readers = [
                asyncio.create_task(self._read_events(side)) for side in self.sides
            ]
            self._install_interrupt()
            info = await self._migrate(uri)
            if info is not None and info.status is MigrationStatus.FAILED:
                await self._destination_reason()
        finally:
            self.display.finish()
            self._remove_interrupt()
            for task in readers + self._helpers:
                task.cancel()
            await asyncio.gather(*readers, *self._helpers, return_exceptions=True)
            for side in self.sides:
                await side.qmp.close()
        if info is None:
            return 130
        timeline = self.state.timeline
        for line in summary_lines(
            info,
            timeline.last_pass,
            paused=timeline.paused_for(),
            postcopy_at=timeline.mark_time(MarkKind.STATUS, "postcopy-active"),
            destination_error=self.state.destination_error,
        ):
            print(line, file=self.out)
        if self.state.destination_error is not None:
            print(
                f"{PROGRAM}: the destination failed: {self.state.destination_error}",
                file=self.err,
            )
        if self.options.plot is not None:
            self._plot(self.options.plot)
        return 0 if info.status is MigrationStatus.COMPLETED else 1

    # -- QMP calls, each with its time limit ------------------------------------

    async def _call(self, side: str, name: str, call: Awaitable[T]) -> T:
        """Await one QMP command; its errors, and a reply later than the limit,
        become a message naming side and command."""
        seconds, bound = self.limits.limit()
        try:
            return await asyncio.wait_for(call, seconds)
        except TimeoutError:
            raise MigrateError(f"{side}: {name}: no reply {bound}") from None
        except QMPCommandError as error:
            raise MigrateError(f"{side}: {name}: {error.desc}") from None
        except QMPConnectionError as error:
            raise MigrateError(f"{side}: {name}: {error}") from None
        except ValueError as error:  # a reply the schema cannot decode (DecodeError)
            raise MigrateError(f"{side}: {name}: unexpected reply: {error}") from None

    # -- preparation -----------------------------------------------------------

    async def _connect(self) -> None:
        for side in self.sides:
            seconds, _ = self.limits.limit()
            try:
                await side.qmp.connect(side.address, timeout=seconds)
            except QMPConnectionError as error:
                raise MigrateError(f"{side.name}: {error}") from None

    async def _check_destination(self) -> None:
        """Refuse, before anything is set anywhere, what cannot work: a destination
        that is not waiting for a migration, multifd over a one-way URI."""
        options = self.options
        multifd = any(
            c.capability is MigrationCapability.MULTIFD and c.state
            for c in options.capabilities
        )
        if multifd and options.uri is not None:
            scheme = options.uri.partition(":")[0]
            if scheme not in ("tcp", "unix"):
                raise MigrateError(
                    f"--uri {options.uri}: multifd needs a tcp: or unix: URI (it "
                    "opens several connections to the destination)"
                )
        destination = self.destination
        if destination is None:
            return
        info = await self._call(
            "destination", "query-migrate", destination.client.query_migrate()
        )
        if info.status in _DESTINATION_BUSY:
            status = info.status.value if info.status else "none"
            raise MigrateError(
                f"destination: its migration status is {status}: it is not waiting "
                "for a new migration"
            )

    async def _configure(self) -> None:
        options = self.options
        # The destination first: what it refuses is refused before the source
        # has been changed at all.
        for side in reversed(self.sides):
            await self._set_capabilities(side)
        if options.parameters is None:
            return
        for_destination = destination_parameters(options.parameters)
        if for_destination is not None and self.destination is not None:
            await self._call(
                "destination",
                "migrate-set-parameters",
                self.destination.client.migrate_set_parameters(for_destination),
            )
        await self._call(
            "source",
            "migrate-set-parameters",
            self.source.client.migrate_set_parameters(options.parameters),
        )

    async def _set_capabilities(self, side: _Side) -> None:
        """Set the capabilities and check they hold: the destination reads them
        when the source connects, so they must be there before `migrate`."""
        wanted = self.options.capabilities
        try:
            await self._call(
                side.name,
                "migrate-set-capabilities",
                side.client.migrate_set_capabilities(capabilities=wanted),
            )
        except MigrateError as error:
            multifd = any(
                c.capability is MigrationCapability.MULTIFD and c.state for c in wanted
            )
            if side is self.destination and multifd:
                # QEMU 10 takes multifd only before its incoming side starts.
                raise MigrateError(
                    f"{error} (a destination that cannot take multifd once it "
                    "listens must be started with -incoming defer: "
                    f"{PROGRAM} then starts it with migrate-incoming)"
                ) from None
            raise
        states = await self._call(
            side.name,
            "query-migrate-capabilities",
            side.client.query_migrate_capabilities(),
        )
        held = {status.capability: status.state for status in states}
        for status in wanted:
            if held.get(status.capability) != status.state:
                raise MigrateError(
                    f"{side.name}: capability {status.capability.value} did not "
                    f"become {'on' if status.state else 'off'} (migrate-set-"
                    "capabilities was answered, query-migrate-capabilities says "
                    f"{'on' if held.get(status.capability) else 'off'})"
                )

    async def _target_uri(self) -> str:
        options = self.options
        destination = self.destination
        if destination is None or (
            options.uri is not None and options.incoming is None
        ):
            assert options.uri is not None  # parse_options requires one of the two
            return options.uri
        client = destination.client
        info = await self._call("destination", "query-migrate", client.query_migrate())
        listening = uri_from_listening(info, destination.address)
        if listening is None or options.incoming is not None:
            # A '-incoming defer' destination: it listens once migrate-incoming says.
            incoming = options.incoming or _default_incoming(destination.address)
            await self._call(
                "destination",
                "migrate-incoming",
                client.migrate_incoming(uri=incoming),
            )
            self._deferred = True
            info = await self._call(
                "destination", "query-migrate", client.query_migrate()
            )
            listening = uri_from_listening(info, destination.address) or incoming
            self.display.message(f"destination listens on {listening}")
        return options.uri or listening

    # -- the migration ---------------------------------------------------------

    async def _migrate(self, uri: str) -> MigrationInfo | None:
        """Start, poll until a final status, return the last reply (None: abandoned)."""
        state = self.state
        state.t0 = time.time()
        await self._call("source", "migrate", self.source.client.migrate(uri=uri))
        continued = postcopy_asked = False
        while True:
            info = await self._call(
                "source", "query-migrate", self.source.client.query_migrate()
            )
            sample = self._sample(info, time.time() - state.t0)
            state.timeline.samples.append(sample)
            self.display.show(sample)
            if info.status in FINAL_STATUSES:
                if info.status is MigrationStatus.COMPLETED:
                    await self._await_destination()
                    info = await self._settled(info)
                return info
            if state.interrupts >= 2:
                self.display.message("interrupted again: not waiting for the cancel")
                return None
            if self.limits.grace_over():
                raise MigrateError(
                    f"source: the migration did not end within {CANCEL_GRACE:g} s of "
                    f"migrate_cancel (status {sample.status})"
                )
            if info.status is MigrationStatus.PRE_SWITCHOVER and not continued:
                # pause-before-switchover: the guest is stopped and waits for us.
                self.display.message("pre-switchover: sending migrate-continue")
                await self._call(
                    "source",
                    "migrate-continue",
                    self.source.client.migrate_continue(
                        state=MigrationStatus.PRE_SWITCHOVER
                    ),
                )
                continued = True
            if not postcopy_asked and self._postcopy_due(info, sample):
                self.display.message(
                    f"pass {sample.pass_shown}: switching to postcopy "
                    "(migrate-start-postcopy)"
                )
                await self._call(
                    "source",
                    "migrate-start-postcopy",
                    self.source.client.migrate_start_postcopy(),
                )
                postcopy_asked = True
            if not self.limits.cancelling and self._should_cancel():
                self.limits.cancel_sent()
                await self._call(
                    "source", "migrate_cancel", self.source.client.migrate_cancel()
                )
            state.wake.clear()
            try:
                await asyncio.wait_for(state.wake.wait(), self.options.interval)
            except TimeoutError:
                pass

    def _sample(self, info: MigrationInfo, elapsed: float) -> Sample:
        state = self.state
        ram = info.ram
        known = ram is not None and state.timeline.dirty_rate_measured(
            elapsed, ram.dirty_sync_count
        )
        return Sample.from_info(
            info, elapsed, state.pass_number, dirty_rate_known=known
        )

    def _postcopy_due(self, info: MigrationInfo, sample: Sample) -> bool:
        after = self.options.postcopy_after
        return (
            after is not None
            and info.status is MigrationStatus.ACTIVE
            and sample.pass_shown >= after
        )

    async def _settled(self, info: MigrationInfo) -> MigrationInfo:
        """The completed reply with its final figures.

        QEMU 7.2 sets the status to completed before it computes total-time, downtime
        and the final mbps, so a query right after the MIGRATION event can read zeros
        (seen on a 256 MiB guest): ask again until total-time is set.
        """
        for _ in range(SETTLE_TRIES):
            if info.total_time:
                break
            await asyncio.sleep(SETTLE_DELAY)
            info = await self._call(
                "source", "query-migrate", self.source.client.query_migrate()
            )
        samples = self.state.timeline.samples
        samples[-1] = Sample.from_info(info, samples[-1].time, self.state.pass_number)
        return info

    def _should_cancel(self) -> bool:
        if self.state.interrupts:
            self.display.message(
                "interrupted: cancelling the migration (Ctrl-C again to quit)"
            )
            return True
        if self.limits.expired():
            self.display.message(
                f"no end after {self.options.timeout:g} s: cancelling the migration"
            )
            return True
        return False

    async def _await_destination(self) -> None:
        if self.destination is None:
            return
        try:
            await asyncio.wait_for(
                self.state.destination_done.wait(), DESTINATION_GRACE
            )
        except TimeoutError:
            pass  # a destination started with -S never resumes: nothing to wait for

    # -- the destination's side of a failure -------------------------------------

    async def _destination_reason(self) -> None:
        """After a failed migration: the destination's own error-desc, when it can
        still give it (QEMU exits right after a failed load; qapigen-vm answers for
        a moment)."""
        destination = self.destination
        if destination is None or self.state.destination_error is not None:
            return
        if not self.state.destination_failed.is_set():
            try:
                await asyncio.wait_for(
                    self.state.destination_failed.wait(), DESTINATION_REASON_WAIT
                )
            except TimeoutError:
                return  # it did not fail: the source's reason is the whole story
        if self.state.destination_error is None:
            self.state.destination_error = await self._ask_destination_reason()

    async def _ask_destination_reason(self) -> str:
        destination = self.destination
        assert destination is not None
        try:
            info = await asyncio.wait_for(
                destination.client.query_migrate(), DESTINATION_REASON_WAIT
            )
        except (TimeoutError, QMPConnectionError, QMPCommandError, ValueError):
            info = None
        if info is not None and info.error_desc:
            return info.error_desc
        return (
            "no reason given: it closed its QMP connection (QEMU exits after a "
            "failed load, and prints why on its own stderr)"
        )

    def _destination_failed(self) -> None:
        """The destination announced failed: ask why while it still answers."""
        state = self.state
        if state.destination_failed.is_set():
            return
        state.destination_failed.set()

        async def ask() -> None:
            state.destination_error = await self._ask_destination_reason()

        self._helpers.append(asyncio.create_task(ask()))

    # -- events ----------------------------------------------------------------

    async def _read_events(self, side: _Side) -> None:
        async for raw in side.qmp.events():
            self._record(raw, source=side is self.source)

    def _record(self, raw: QMPEvent, *, source: bool) -> None:
        state = self.state
        # QMP timestamps are wall-clock, like t0; an event without one is dated now.
        stamp = raw.timestamp if raw.seconds >= 0 else time.time()
        when = stamp - state.t0
        marks = state.timeline.marks
        try:
            event = decode_event(raw.name, raw.data)
        except ValueError:
            event = None  # malformed data: not worth failing a migration over
        if not source:
            done = isinstance(event, MigrationEvent) and event.status in FINAL_STATUSES
            if raw.name == "RESUME":
                marks.append(Mark(when, MarkKind.RESUME, "destination resumed"))
            if done or raw.name == "RESUME":
                state.destination_done.set()
            if (
                isinstance(event, MigrationEvent)
                and event.status is MigrationStatus.FAILED
            ):
                self._destination_failed()
            return
        if isinstance(event, MigrationPassEvent):
            state.pass_number = event.pass_
            marks.append(Mark(when, MarkKind.PASS, str(event.pass_)))
            state.wake.set()  # --postcopy-after may be due
        elif isinstance(event, MigrationEvent):
            marks.append(Mark(when, MarkKind.STATUS, event.status.value))
            state.wake.set()  # a state change: poll now rather than at the next tick
        elif raw.name == "STOP":
            marks.append(Mark(when, MarkKind.STOP, "source stopped"))

    # -- interruption ----------------------------------------------------------

    def _install_interrupt(self) -> None:
        # SIGTERM too: a supervisor (or `timeout`) stopping the command should not
        # leave a migration running that nobody watches.
        loop = asyncio.get_running_loop()
        try:
            for number in INTERRUPT_SIGNALS:
                loop.add_signal_handler(number, self._interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (or no signals here): Ctrl-C stays the default

    def _remove_interrupt(self) -> None:
        loop = asyncio.get_running_loop()
        for number in INTERRUPT_SIGNALS:
            try:
                loop.remove_signal_handler(number)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def _interrupt(self) -> None:
        self.state.interrupts += 1
        self.state.wake.set()

    # -- the plot --------------------------------------------------------------

    def plot_title(self) -> str:
        """What was migrated: the guest's RAM, from where to where, over what."""
        totals = [s.total for s in self.state.timeline.samples if s.has_ram]
        what = f"{format_bytes(totals[-1])} of guest RAM" if totals else "a guest"
        route = f"from {describe(self.source.address)}"
        if self.destination is not None:
            route += f" to {describe(self.destination.address)}"
        return f"{what} {route}, over {self.uri}"

    def _plot(self, path: Path) -> None:
        series = plot_series(self.state.timeline, title=self.plot_title())
        try:
            write_png(series, path)
        except (PlotUnavailable, OSError) as error:
            raise MigrateError(f"--plot {path}: {error}") from None
        print(f"timeline:         {path} ({describe_plot(series)})", file=self.out)


async def _main(options: Options) -> int:
    return await MigrationRun(options, sys.stdout, sys.stderr).run()


def main(argv: Sequence[str] | None = None) -> int:
    """The console script; returns the exit status."""
    try:
        options = parse_options(argv)
    except UsageError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(options))
    except MigrateError as error:
        sys.stderr.flush()
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the handler is installed, or after removal
        print(f"{PROGRAM}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
