"""``-daemonize`` and ``-pidfile`` with QEMU's contract.

With -daemonize the command returns only once the VM is ready (its QMP sockets accept
connections), with status 0, or with status 1 when start-up failed; the VM goes on in
the background in a session of its own, detached from the terminal. The pid file holds
the VM's pid, is locked while the VM runs (a second VM with the same file refuses to
start) and is removed at exit.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys


class PidFileError(Exception):
    """The pid file cannot be created or locked; `str()` is QEMU's message."""


class PidFile:
    """A locked file holding this process's pid, removed by `remove`."""

    def __init__(self, path: str) -> None:
        # Absolute, so removal still works after a daemon's chdir("/").
        self.path = os.path.abspath(path)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PidFileError(
                f"cannot create PID file: Cannot open pid file: {exc.strerror}"
            ) from None
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            raise PidFileError(
                f"cannot create PID file: Cannot lock pid file: {exc.strerror}"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)


class Daemon:
    """The detached VM process; `ready` releases the waiting command."""

    def __init__(self, ready_fd: int) -> None:
        self._ready_fd: int | None = ready_fd

    def ready(self) -> None:
        """Start-up succeeded: let the parent exit 0, then leave the terminal."""
        if self._ready_fd is None:
            return
        os.write(self._ready_fd, b"\0")
        os.close(self._ready_fd)
        self._ready_fd = None
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for stream in (sys.stdin, sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)


def daemonize() -> Daemon:
    """Fork twice as QEMU does; only the detached grandchild returns.

    The original process waits for `Daemon.ready` and exits 0, or exits 1 when the
    daemon ends before it is ready (its error message went to the shared stderr).
    """
    read_fd, write_fd = os.pipe()
    if os.fork() > 0:
        os.close(write_fd)
        status = os.read(read_fd, 1)
        os._exit(0 if status == b"\0" else 1)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.umask(0o027)
    for name in ("SIGTSTP", "SIGTTOU", "SIGTTIN"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    return Daemon(write_fd)
