"""qapigen-vm: a drop-in for qemu-system-x86_64 on the migration subset.

Started with QEMU's command line (see :mod:`.cmdline`), it serves QMP on every ``-qmp``
socket as QEMU 7.2 does for the VM schema (``schema/qapigen-vm.json``, served through
the generated ``qapigen_vm_qmp`` dispatcher), and migrates its guest RAM for real.

Process life, as QEMU's: ``-h`` (``-help``, ``--help``) and ``-version`` print on stdout
and exit 0; a bad command line, or RAM or an ``-incoming`` descriptor it cannot have,
prints one ``qapigen-vm: ...`` line and exits 1; ``quit`` and SIGTERM/SIGINT/SIGHUP end the process with status 0; a failed
incoming migration ends it with status 1; ``-daemonize`` returns once the VM is ready.

Run it as ``qapigen-vm ...`` or ``python -m qapigen_vm.main ...``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from qapigen_runtime.codec import DecodeError
from qapigen_runtime.qmp.events import Timestamp
from qapigen_runtime.qmp.protocol import qemu_version
from qapigen_runtime.qmp.server import QMPServer
from qapigen_vm_qmp.commands import CommandDispatcher
from qapigen_vm_qmp.events import decode_event, event_output

from .cmdline import (
    PROGRAM,
    CommandLineError,
    QmpEndpoint,
    VmConfig,
    parse_command_line,
)
from .daemon import PidFile, PidFileError, daemonize
from .dispatch import vm_dispatcher
from .handlers import PACKAGE, QEMU_VERSION, VmCommandHandler
from .machine import Machine, MachineError
from .usage import help_text, version_text

logger = logging.getLogger(__name__)

# QEMU also names the sender ("from pid N (program)"); Python's handlers cannot see
# it, and blocking the signals for a sigwaitinfo thread is not possible here because
# numpy starts threads at import time, before main() could block anything.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StartupError(Exception):
    """The VM could not start; `str()` is the line to print (without the prefix)."""


class EventForwarder:
    """Takes the machine's events (from any thread) to the QMP clients, in order.

    Events raised on the event loop's thread (a ``stop`` command's STOP) go out at
    once, before the command's reply, as QEMU sends them; events from engine threads
    hop to the loop. Each is checked against the schema's event types first, then
    sent as the server's `-compat` output policy lets it out (`QMPServer.send`): an
    event with a feature the policy hides is not sent, members with one are left out.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self.server: QMPServer | None = None

    def sink(self, name: str, data: dict[str, object]) -> None:
        # Stamped where it happens, as QEMU stamps an event when it is raised: the hop
        # to a busy loop must not date a source's STOP after the destination's RESUME.
        stamp = Timestamp.now()
        if threading.get_ident() == self._loop_thread:
            self._emit(name, data, stamp)
        else:
            try:
                self._loop.call_soon_threadsafe(self._emit, name, data, stamp)
            except RuntimeError:
                pass  # the loop is closed: the process is exiting

    def _emit(self, name: str, data: dict[str, object], stamp: Timestamp) -> None:
        if self.server is None:
            return
        try:
            event = decode_event(name, data, strict=True)
        except DecodeError as exc:
            logger.error("event %s does not match the schema: %s", name, exc)
            event = None
        else:
            if event is None:
                logger.error("event %s is not in the schema", name)
        if event is not None:
            event.timestamp = stamp
            self.server.send(event)
        else:
            self.server.emit(name, data, stamp)


def _describe_endpoint(endpoint: QmpEndpoint) -> str:
    if endpoint.kind == "unix":
        return f"-qmp unix:{endpoint.path},server=on,wait=off"
    return f"-qmp tcp:{endpoint.host}:{endpoint.port},server=on,wait=off"


class VmProcess:
    """The running VM: machine, QMP server and listeners, until an exit is asked."""

    def __init__(self, config: VmConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self._exit: asyncio.Future[int] = self.loop.create_future()
        self.events = EventForwarder(self.loop)
        try:
            self.machine = Machine(
                config,
                sink=self.events.sink,
                on_incoming_failure=self._incoming_failed,
            )
        except MachineError as exc:
            raise StartupError(str(exc)) from None
        dispatcher: CommandDispatcher
        handler = VmCommandHandler(
            self.machine,
            command_names=lambda: dispatcher.command_names(),  # noqa: PLW0108 - bound below
            request_quit=self._quit_after_reply,
            policy=config.compat,
        )
        dispatcher = vm_dispatcher(handler, config.compat)
        major, minor, micro = QEMU_VERSION
        self.server = QMPServer(
            dispatcher,
            version=qemu_version(major, minor, micro, PACKAGE),
            events=event_output(config.compat),
        )
        self.events.server = self.server

    def _quit_after_reply(self) -> None:
        # QEMU announces the shutdown before its reply to quit; the reply is written
        # when the command returns, before the scheduled exit runs.
        self.events.sink("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
        self.loop.call_soon(self.exit, 0)

    def exit(self, status: int) -> None:
        """End the process with `status` (the first request wins)."""
        if not self._exit.done():
            self._exit.set_result(status)

    def _incoming_failed(self, reason: str) -> None:
        # Called from the loading thread, after the MIGRATION failed event was queued.
        def report() -> None:
            print(f"{PROGRAM}: load of migration failed: {reason}", file=sys.stderr)
            self.exit(1)

        try:
            self.loop.call_soon_threadsafe(report)
        except RuntimeError:
            pass

    def _on_signal(self, signum: int) -> None:
        print(f"{PROGRAM}: terminating on signal {signum}", file=sys.stderr)
        self.events.sink("SHUTDOWN", {"guest": False, "reason": "host-signal"})
        self.exit(0)

    async def start(self) -> None:
        for endpoint in self.config.qmp:
            try:
                if endpoint.kind == "unix":
                    # As QEMU: whatever file an earlier run left there is replaced.
                    await self.server.listen(
                        os.path.abspath(endpoint.path), replace_any_file=True
                    )
                else:
                    await self.server.listen((endpoint.host, endpoint.port))
            except OSError as exc:
                where = endpoint.path or f"{endpoint.host}:{endpoint.port}"
                raise StartupError(
                    f"{_describe_endpoint(endpoint)}: Failed to bind socket to"
                    f" {where}: {exc.strerror}"
                ) from None
        try:
            self.machine.start()
        except MachineError as exc:
            raise StartupError(str(exc)) from None
        for signum in EXIT_SIGNALS:
            self.loop.add_signal_handler(signum, self._on_signal, signum)

    async def wait(self) -> int:
        return await self._exit

    async def close(self) -> None:
        for signum in EXIT_SIGNALS:
            self.loop.remove_signal_handler(signum)
        await self.server.close()  # disconnects the clients, removes unix sockets
        # Joining engine threads blocks: keep the loop free meanwhile.
        await self.loop.run_in_executor(None, self.machine.close)


async def serve(config: VmConfig, ready: Callable[[], None]) -> int:
    """Run the VM until quit, a signal or a failed incoming migration; its status."""
    vm = VmProcess(config)
    try:
        await vm.start()
        ready()
        return await vm.wait()
    finally:
        await vm.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``qapigen-vm`` command; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        config = parse_command_line(arguments)
    except CommandLineError as exc:
        print(exc, file=sys.stderr)
        return 1
    if config.show is not None:
        show = help_text if config.show == "help" else version_text
        sys.stdout.write(show(QEMU_VERSION))
        return 0

    def ready() -> None:
        return None

    if config.daemonize:
        ready = daemonize().ready
    pidfile: PidFile | None = None
    try:
        if config.pidfile is not None:
            pidfile = PidFile(config.pidfile)
        return asyncio.run(serve(config, ready))
    except (PidFileError, StartupError) as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    finally:
        if pidfile is not None:
            pidfile.remove()


if __name__ == "__main__":
    sys.exit(main())
