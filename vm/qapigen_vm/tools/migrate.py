"""qapigen-migrate: live-migrate a VM between two QMP endpoints, with a progress bar.

    qapigen-migrate unix:/run/src.qmp unix:/run/dst.qmp --cap events=on \\
        --param max-bandwidth=0 --param downtime-limit=300 --plot timeline.png

It talks to both sides with the generated, typed async client: sets the capabilities
(on both sides, as QEMU needs for most of them) and parameters (on the source, and on
the destination for those it reads), finds the destination's listening address (or
starts ``migrate-incoming`` on a ``-incoming defer`` destination), runs ``migrate``, and
polls ``query-migrate`` until the migration ends, drawing a progress line on a terminal
or plain lines otherwise. With pause-before-switchover on, it sends
``migrate-continue`` at pre-switchover. Ctrl-C (or SIGTERM) cancels the migration
with ``migrate_cancel``; a second one stops waiting for the cancel. Exit status:
0 completed, 1 failed or cancelled (or a QMP error), 2 bad command line, 130 gave up.
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
from qapigen_runtime.qmp.address import Address
from qapigen_runtime.version import add_version_option

from .arguments import UsageError, parse_address, parse_capability, parse_parameters
from .plot import PlotUnavailable, plot_series, write_png
from .plot import describe as describe_plot
from .progress import ProgressDisplay, summary_lines
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

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


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


@dataclass
class _RunState:
    """What the event readers and the signal handler share with the poll loop."""

    t0: float
    timeline: Timeline = field(default_factory=Timeline)
    pass_number: int | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    destination_done: asyncio.Event = field(default_factory=asyncio.Event)
    interrupts: int = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Live-migrate a VM from one QMP endpoint to another, showing "
        "progress; exit 0 when completed, 1 when failed or cancelled.",
    )
    add_version_option(parser)
    parser.add_argument("source", help="source QMP socket: unix:PATH or tcp:HOST:PORT")
    parser.add_argument(
        "destination",
        nargs="?",
        help="destination QMP socket: unix:PATH or tcp:HOST:PORT (optional with --uri)",
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
        help="cancel the migration if it has not ended after this many seconds",
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
    )


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
            return f"unix:{address.path_}"
    return None


def _default_incoming(destination: Address) -> str:
    host = destination[0] if isinstance(destination, tuple) else "127.0.0.1"
    return f"tcp:{host}:0"  # port 0: the destination picks one and reports it


class MigrationRun:
    """One migration between two connected endpoints, from setup to the summary."""

    def __init__(self, options: Options, out: TextIO, err: TextIO) -> None:
        self.options = options
        self.out = out
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
        self.uri = ""

    async def run(self) -> int:
        readers: list[asyncio.Task[None]] = []
        try:
            await self._connect()
            await self._configure()
            self.uri = uri = await self._target_uri()
            readers = [
                asyncio.create_task(self._read_events(side)) for side in self.sides
            ]
            self._install_interrupt()
            info = await self._migrate(uri)
        finally:
            self.display.finish()
            self._remove_interrupt()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for side in self.sides:
                await side.qmp.close()
        if info is None:
            return 130
        for line in summary_lines(info, self.state.timeline.last_pass):
            print(line, file=self.out)
        if self.options.plot is not None:
            self._plot(self.options.plot)
        return 0 if info.status is MigrationStatus.COMPLETED else 1

    # -- preparation -----------------------------------------------------------

    async def _connect(self) -> None:
        for side in self.sides:
            try:
                await side.qmp.connect(side.address)
            except QMPConnectionError as error:
                raise MigrateError(f"{side.name}: {error}") from None

    async def _configure(self) -> None:
        options = self.options
        for side in self.sides:
            await _command(
                side.name,
                "migrate-set-capabilities",
                side.client.migrate_set_capabilities(capabilities=options.capabilities),
            )
        if options.parameters is None:
            return
        await _command(
            "source",
            "migrate-set-parameters",
            self.source.client.migrate_set_parameters(options.parameters),
        )
        for_destination = destination_parameters(options.parameters)
        if for_destination is not None and self.destination is not None:
            await _command(
                "destination",
                "migrate-set-parameters",
                self.destination.client.migrate_set_parameters(for_destination),
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
        info = await _command("destination", "query-migrate", client.query_migrate())
        listening = uri_from_listening(info, destination.address)
        if listening is None or options.incoming is not None:
            # A '-incoming defer' destination: it listens once migrate-incoming says.
            incoming = options.incoming or _default_incoming(destination.address)
            await _command(
                "destination",
                "migrate-incoming",
                client.migrate_incoming(uri=incoming),
            )
            info = await _command(
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
        await _command("source", "migrate", self.source.client.migrate(uri=uri))
        cancel_sent = continued = False
        while True:
            info = await _command(
                "source", "query-migrate", self.source.client.query_migrate()
            )
            sample = Sample.from_info(info, time.time() - state.t0, state.pass_number)
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
            if info.status is MigrationStatus.PRE_SWITCHOVER and not continued:
                # pause-before-switchover: the guest is stopped and waits for us.
                self.display.message("pre-switchover: sending migrate-continue")
                await _command(
                    "source",
                    "migrate-continue",
                    self.source.client.migrate_continue(
                        state=MigrationStatus.PRE_SWITCHOVER
                    ),
                )
                continued = True
            if not cancel_sent and self._should_cancel(sample.time):
                await _command(
                    "source", "migrate_cancel", self.source.client.migrate_cancel()
                )
                cancel_sent = True
            state.wake.clear()
            try:
                await asyncio.wait_for(state.wake.wait(), self.options.interval)
            except TimeoutError:
                pass

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
            info = await _command(
                "source", "query-migrate", self.source.client.query_migrate()
            )
        samples = self.state.timeline.samples
        samples[-1] = Sample.from_info(info, samples[-1].time, self.state.pass_number)
        return info

    def _should_cancel(self, elapsed: float) -> bool:
        if self.state.interrupts:
            self.display.message(
                "interrupted: cancelling the migration (Ctrl-C again to quit)"
            )
            return True
        timeout = self.options.timeout
        if timeout is not None and elapsed > timeout:
            self.display.message(
                f"no end after {timeout:g} s: cancelling the migration"
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
            return
        if isinstance(event, MigrationPassEvent):
            state.pass_number = event.pass_
            marks.append(Mark(when, MarkKind.PASS, str(event.pass_)))
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

    def _plot(self, path: Path) -> None:
        series = plot_series(
            self.state.timeline,
            title=f"migration to {self.uri}",
        )
        try:
            write_png(series, path)
        except (PlotUnavailable, OSError) as error:
            raise MigrateError(f"--plot {path}: {error}") from None
        print(f"timeline:         {path} ({describe_plot(series)})", file=self.out)


async def _command(side: str, name: str, call: Awaitable[T]) -> T:
    """Await one QMP command; its errors become a message naming side and command."""
    try:
        return await call
    except QMPCommandError as error:
        raise MigrateError(f"{side}: {name}: {error.desc}") from None
    except QMPConnectionError as error:
        raise MigrateError(f"{side}: {name}: {error}") from None
    except ValueError as error:  # a reply the schema cannot decode (DecodeError)
        raise MigrateError(f"{side}: {name}: unexpected reply: {error}") from None


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
