"""Start a pair of migration peers: two real QEMU 7.2 processes, or two qapigen-vm ones.

Both kinds get the SAME command line (qapigen-vm is a drop-in for qemu-system-x86_64 on
the migration subset), so a scenario run against both pairs differs only in what the
peers do. Every process started here is ended when the pair's `with` block ends: the
scenario's QMP clients are closed by the scenario, the processes get SIGTERM, then
SIGKILL if they linger.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from qapigen_runtime.qmp import QMPClient, QMPConnectionError, SyncQMPClient

START_TIMEOUT = 15.0
"""Seconds a peer may take to open its QMP socket (QEMU with TCG needs about 0.3 s,
qapigen-vm about 1 s on a loaded 2-core machine)."""

STOP_TIMEOUT = 3.0
"""Seconds a peer has to exit after SIGTERM before it is killed. Both exit in well under
a second when they can; a QEMU 7.2 destination left paused in postcopy for good (the
postcopy-cancel scenarios) ignores SIGTERM, and every such scenario waited out a longer
timeout for nothing."""

MACHINE_ARGS: tuple[str, ...] = (
    "-M",
    "pc",
    "-accel",
    "tcg",
    "-m",
    "64",
    "-nodefaults",
    "-display",
    "none",
)
"""What every peer of the parity tests runs: a small idle TCG guest (qapigen-vm
accepts -M, -accel, -nodefaults and -display and ignores them)."""


class PeerKind(enum.Enum):
    """Which program the peers run."""

    QEMU = "qemu"
    VM = "qapigen-vm"


class PeerStartError(RuntimeError):
    """A peer did not come up; the message carries its command line and stderr."""


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


def program(kind: PeerKind) -> list[str]:
    """The argv prefix that runs `kind`."""
    if kind is PeerKind.QEMU:
        binary = qemu_binary()
        if binary is None:
            raise PeerStartError("qemu-system-x86_64 is not installed")
        return [binary]
    return [sys.executable, "-m", "qapigen_vm.main"]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Site:
    """Where a pair lives: a private directory (short: unix socket paths are limited to
    107 bytes) and a loopback port chosen for it (free when the pair starts)."""

    directory: Path
    port: int


@dataclass(frozen=True)
class PeerArgs:
    """The command-line arguments each side adds to `MACHINE_ARGS`."""

    source: tuple[str, ...] = ()
    destination: tuple[str, ...] = ()


class Peer:
    """One started process and its QMP socket."""

    def __init__(self, kind: PeerKind, role: str, site: Site, args: Sequence[str]):
        self.kind = kind
        self.role = role
        self.qmp_path = str(site.directory / f"{role}.qmp")
        self.stderr_path = site.directory / f"{role}.stderr"
        self.argv = [
            *program(kind),
            *args,
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
        ]
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.role} pid {self.process.pid}>"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        return f"{' '.join(self.argv)}\nexit: {self.process.poll()}\n{self.stderr()}"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the peer answers a QMP command.

        The greeting alone proves little: QEMU greets from its monitor I/O thread
        as soon as the socket exists, before its main loop runs and before
        -incoming listens. Commands are dispatched by the main loop, so a reply to
        qmp_capabilities means the machine (and its incoming listener) is up.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise PeerStartError(f"{self.role} exited early:\n{self.describe()}")
            probe = SyncQMPClient()
            try:
                probe.connect(
                    self.qmp_path, timeout=max(0.1, deadline - time.monotonic())
                )
                return
            except QMPConnectionError:
                pass
            finally:
                probe.close()
            if time.monotonic() > deadline:
                raise PeerStartError(
                    f"{self.role} answered no QMP command in {timeout} s:\n"
                    + self.describe()
                )
            time.sleep(0.02)

    async def connect(self) -> QMPClient:
        """A negotiated asyncio QMP client (the caller closes it)."""
        client = QMPClient()
        try:
            await client.connect(self.qmp_path, timeout=START_TIMEOUT)
        except QMPConnectionError as error:
            raise PeerStartError(
                f"cannot connect to {self.role}: {error}\n{self.describe()}"
            ) from error
        return client

    async def exit_status(self, timeout: float) -> int | None:
        """The process's exit status, or None if it still runs after `timeout` s."""
        try:
            return await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """End the process: SIGTERM (QEMU and qapigen-vm both exit 0), then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Pair:
    """A source and a destination of the same kind, started with the same machine."""

    kind: PeerKind
    site: Site
    source: Peer
    destination: Peer


@contextlib.contextmanager
def site() -> Iterator[Site]:
    """A fresh private directory and port; the directory is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="qpair-") as name:
        yield Site(Path(name), free_port())


@contextlib.contextmanager
def start_pair(
    kind: PeerKind,
    where: Site,
    args: PeerArgs,
    machine: Sequence[str] = MACHINE_ARGS,
) -> Iterator[Pair]:
    """Start both peers of `kind` in `where` with `machine` plus their own `args`;
    stop them whatever happens."""
    peers: list[Peer] = []
    try:
        source = Peer(kind, "source", where, [*machine, *args.source])
        peers.append(source)
        destination = Peer(kind, "destination", where, [*machine, *args.destination])
        peers.append(destination)
        source.wait_ready()
        destination.wait_ready()
        yield Pair(kind, where, source, destination)
    finally:
        for peer in peers:
            peer.stop()


def environment_problem(kind: PeerKind) -> str | None:
    """Why pairs of `kind` cannot start here, or None."""
    if kind is PeerKind.QEMU and qemu_binary() is None:
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    if not os.access(sys.executable, os.X_OK):
        return f"{sys.executable} is not executable"
    return None


def require_peers(kind: PeerKind) -> None:
    """Skip the test when peers of `kind` cannot start here; in CI, where a missing
    peer is a broken setup, fail it instead."""
    problem = environment_problem(kind)
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)
