"""Real QEMU processes for interop tests and benchmarks, always cleaned up.

`QemuLauncher` starts ``qemu-system-x86_64`` (a small TCG ``pc`` guest without devices)
with its QMP monitor on a unix socket in a private temporary directory, and stops every
process it started when it is closed, whatever happened in between. The `qemu_launcher`
pytest fixture (tests/conftest.py) wraps it; the benchmark imports the launcher directly.

Why the care:
- Unix socket paths are limited to 107 bytes, and pytest's ``tmp_path`` can exceed that
  with long test names, so the sockets live in a short ``mkdtemp`` directory instead.
- Each child is started with PR_SET_PDEATHSIG, so a test run killed hard (SIGKILL, OOM)
  does not leave QEMU processes behind on a shared 2-core machine.
- A destination needs a free TCP port. The port is found by binding port 0, which leaves a
  small window for another process to take it: a destination that dies with
  "Address already in use" is started again on a new port.
- QEMU opens its monitor before it listens for the incoming migration, so a destination
  counts as started only once the kernel lists its listening port.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

QEMU_BINARY = "qemu-system-x86_64"

BASE_ARGS: tuple[str, ...] = (
    "-M",
    "pc",
    "-accel",
    "tcg",
    "-nodefaults",
    "-display",
    "none",
)
"""A guest with nothing attached: the smallest machine that migrates."""

START_TIMEOUT = 15.0
"""Seconds a QEMU may take to create its QMP socket (TCG on a loaded 2-core machine)."""

STOP_TIMEOUT = 5.0
"""Seconds a QEMU gets after SIGTERM before it is killed."""

_PR_SET_PDEATHSIG = 1


class QemuStartError(RuntimeError):
    """A QEMU process exited or did not create its monitor socket in time."""


def free_tcp_port() -> int:
    """A loopback TCP port nobody listens on at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# /proc/net/unix's flag for a socket that listen() was called on (__SO_ACCEPTCON)
_UNIX_ACCEPTCON = 0x10000


def accepts_connections(path: Path) -> bool:
    """Whether a server listens on the unix socket at `path`, read from
    /proc/net/unix: the file exists from bind(), before listen(), and a client that
    comes between is refused. No probe connection: QEMU's chardev refuses a second
    client while it has not yet seen the first one leave."""
    if not path.exists():
        return False
    try:
        table = Path("/proc/net/unix").read_text()
    except OSError:  # not Linux: fall back to a short grace period
        time.sleep(0.2)
        return True
    wanted = str(path)
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == wanted:
            if int(fields[3], 16) & _UNIX_ACCEPTCON:
                return True
    return False


_TCP_LISTEN = "0A"


def _listens(port: int) -> bool:
    """Whether some socket listens on TCP `port` (read from /proc/net/tcp)."""
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:  # not Linux: fall back to a short grace period
        time.sleep(0.2)
        return True
    for line in table.splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == _TCP_LISTEN:
            return True
    return False


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class QemuProcess:
    """One running QEMU: its QMP socket, its log, and how to stop it."""

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        qmp_socket: Path,
        log_path: Path,
        incoming_port: int | None,
    ) -> None:
        self.name = name
        self.process = process
        self.qmp_socket = qmp_socket
        self.log_path = log_path
        self.incoming_port = incoming_port

    @property
    def qmp_address(self) -> str:
        """The monitor's address for the QMP clients (a unix socket path)."""
        return str(self.qmp_socket)

    @property
    def incoming_uri(self) -> str:
        """The URI a source migrates to (only for a destination started with a port)."""
        if self.incoming_port is None:
            raise ValueError(f"{self.name} was not started as a TCP destination")
        return f"tcp:127.0.0.1:{self.incoming_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        """The exit status, or None while the process runs."""
        return self.process.poll()

    def log(self) -> str:
        """What QEMU wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit on its own; its exit status."""
        return self.process.wait(timeout)

    def stop(self) -> int:
        """Terminate (then kill) the process if it still runs; its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def __repr__(self) -> str:
        return (
            f"QemuProcess({self.name!r}, pid={self.pid}, socket={self.qmp_address!r})"
        )


class QemuLauncher:
    """Starts QEMU processes in a private directory; `close` stops them all.

    Use it as a context manager (or through the `qemu_launcher` fixture) so the
    processes and the directory go away even when a test fails.
    """

    def __init__(self, *, binary: str = QEMU_BINARY, memory_mib: int = 64) -> None:
        found = shutil.which(binary)
        if found is None:
            raise QemuStartError(f"{binary} is not installed")
        self.binary = found
        self.memory_mib = memory_mib
        self.directory = Path(tempfile.mkdtemp(prefix="qapigen-qemu-"))
        self.processes: list[QemuProcess] = []

    def __enter__(self) -> QemuLauncher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(
        self,
        name: str,
        *,
        incoming: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> QemuProcess:
        """Start QEMU `name` and wait until its QMP socket accepts connections.

        `incoming` is passed as ``-incoming`` (``defer``, ``tcp:HOST:PORT``...).
        """
        return self._start(name, incoming, None, extra_args)

    def start_destination(
        self, name: str, *, extra_args: Sequence[str] = (), attempts: int = 3
    ) -> QemuProcess:
        """Start a migration destination listening on a free loopback TCP port."""
        for attempt in range(attempts):
            port = free_tcp_port()
            try:
                return self._start(
                    name, f"tcp:127.0.0.1:{port}", port, extra_args, suffix=attempt
                )
            except QemuStartError as error:
                if "Address already in use" not in str(error):
                    raise
        raise QemuStartError(f"{name}: no free port after {attempts} attempts")

    def _start(
        self,
        name: str,
        incoming: str | None,
        port: int | None,
        extra_args: Sequence[str],
        suffix: int = 0,
    ) -> QemuProcess:
        stem = name if suffix == 0 else f"{name}-{suffix}"
        qmp_socket = self.directory / f"{stem}.sock"
        log_path = self.directory / f"{stem}.log"
        argv = [
            self.binary,
            *BASE_ARGS,
            "-m",
            str(self.memory_mib),
            "-name",
            name,
            "-qmp",
            f"unix:{qmp_socket},server=on,wait=off",
            *(["-incoming", incoming] if incoming is not None else []),
            *extra_args,
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - before any thread starts
            )
        qemu = QemuProcess(name, process, qmp_socket, log_path, port)
        self.processes.append(qemu)
        self._wait_until(qemu, "a QMP socket", lambda: accepts_connections(qmp_socket))
        if port is not None:
            # QEMU opens its monitor before it starts listening for the incoming
            # migration: a source that migrates in between gets "Connection refused".
            # Probing with a connection would start (and fail) the incoming migration,
            # so the kernel's socket table is read instead.
            self._wait_until(qemu, f"a listener on port {port}", lambda: _listens(port))
        return qemu

    @staticmethod
    def _wait_until(qemu: QemuProcess, what: str, ready: Callable[[], bool]) -> None:
        """Poll `ready`; QemuStartError (with QEMU's output) if QEMU dies or is slow."""
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            status = qemu.exit_code()
            if status is not None:
                raise QemuStartError(
                    f"{qemu.name} exited with status {status}: {qemu.log().strip()}"
                )
            if time.monotonic() > deadline:
                qemu.stop()
                raise QemuStartError(
                    f"{qemu.name}: no {what} after {START_TIMEOUT} s: {qemu.log()}"
                )
            time.sleep(0.01)

    def close(self) -> None:
        """Stop every process started here and remove the directory."""
        processes, self.processes = self.processes, []
        for qemu in processes:
            with contextlib.suppress(OSError):
                qemu.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@functools.cache
def qemu_version(binary: str = QEMU_BINARY) -> tuple[int, int] | None:
    """(major, minor) of the installed QEMU, from ``--version``; None if unknown."""
    try:
        banner = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\d+)\.(\d+)", banner)
    return (int(match.group(1)), int(match.group(2))) if match else None


def running_qemu_count(launcher: QemuLauncher) -> int:
    """How many of the launcher's processes still run (for cleanup checks)."""
    return sum(1 for qemu in launcher.processes if qemu.exit_code() is None)
