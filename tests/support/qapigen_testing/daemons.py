"""The guest agent and the storage daemon as real processes, always cleaned up,
and a relay that stands for a guest agent's virtio-serial channel.

`GuestAgent` starts ``qemu-ga -m unix-listen`` on the host (it serves the host it runs
on: run only what is safe there). `StorageDaemon` starts ``qemu-storage-daemon`` with
its QMP monitor on a unix socket. Both live in a short private folder (unix socket
paths are limited to 107 bytes), die with the test process (PR_SET_PDEATHSIG), and get
SIGTERM, then SIGKILL, when their ``with`` block ends.

`ChannelRelay` sits between a client and the agent as the host end of a virtio-serial
channel does: one connection to the agent that outlives clients (so what one client
half-sent, or did not read, is still there for the next), a listening socket (unix or
TCP) for clients, and hooks to inject bytes and to hold the agent's replies back.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .qemu_fixtures import _die_with_parent, accepts_connections

QEMU_GA = "qemu-ga"
STORAGE_DAEMON = "qemu-storage-daemon"
QEMU_IMG = "qemu-img"
QEMU_IO = "qemu-io"

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

# Debian installs qemu-ga in /usr/sbin, which is not on every user's PATH.
_SYSTEM_FOLDERS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_program(name: str) -> str | None:
    """The program's path: on PATH, or in the system folders daemons live in."""
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return shutil.which(name, path=os.pathsep.join([*path, *_SYSTEM_FOLDERS]))


class DaemonStartError(RuntimeError):
    """A daemon exited or did not open its socket in time; the text has its log."""


class _Daemon:
    """A process serving a unix socket in a private folder."""

    def __init__(self, program: str, what: str) -> None:
        found = find_program(program)
        if found is None:
            raise DaemonStartError(f"{program} is not installed")
        self.program = found
        self.what = what
        self.folder = Path(tempfile.mkdtemp(prefix="qapigen-"))
        self.socket_path = self.folder / "sock"
        self.log_path = self.folder / "log"
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self, args: Sequence[str]) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [self.program, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - before any thread starts
            )
        deadline = time.monotonic() + START_TIMEOUT
        # The socket file appears at bind(), before listen(): a client that came
        # then was refused (seen under load in the README's guest-agent test).
        while not accepts_connections(self.socket_path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_text = self.log_path.read_text(errors="replace")
                self.stop()
                raise DaemonStartError(f"{self.what} did not start:\n{log_text}")
            time.sleep(0.01)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


class GuestAgent(_Daemon):
    """``qemu-ga`` listening on a unix socket (`socket_path`)."""

    def __init__(self) -> None:
        super().__init__(QEMU_GA, "qemu-ga")
        self.state_folder = self.folder / "state"

    def __enter__(self) -> GuestAgent:
        self.state_folder.mkdir()
        self._start(
            [
                "-m",
                "unix-listen",
                "-p",
                str(self.socket_path),
                "-t",
                str(self.state_folder),
            ]
        )
        return self


class StorageDaemon(_Daemon):
    """``qemu-storage-daemon`` with its QMP monitor on `socket_path`."""

    def __init__(self, extra_args: Sequence[str] = ()) -> None:
        super().__init__(STORAGE_DAEMON, "qemu-storage-daemon")
        self.extra_args = list(extra_args)

    def __enter__(self) -> StorageDaemon:
        chardev = f"socket,path={self.socket_path},server=on,wait=off,id=m"
        self._start(["--chardev", chardev, "--monitor", "chardev=m", *self.extra_args])
        return self


class ChannelRelay:
    """A virtio-serial channel's host end in front of a guest agent (see above).

    `address` is what clients connect to: a unix socket path, or ("127.0.0.1",
    port) with ``tcp=True``. One client at a time; the agent's output that arrives
    while no client is connected (or while `hold` is set) waits in the relay.
    """

    def __init__(self, agent_socket: Path, *, tcp: bool = False) -> None:
        self._agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._agent.connect(str(agent_socket))
        self._folder = Path(tempfile.mkdtemp(prefix="qapigen-relay-"))
        if tcp:
            self._listener = socket.create_server(("127.0.0.1", 0))
            port: int = self._listener.getsockname()[1]
            self.address: str | tuple[str, int] = ("127.0.0.1", port)
        else:
            path = self._folder / "sock"
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(str(path))
            self._listener.listen()
            self.address = str(path)
        self._client: socket.socket | None = None
        self._to_client = bytearray()  # the agent's output not delivered yet
        self._lock = threading.Lock()
        self._hold = False
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # -- what tests do ---------------------------------------------------------

    def to_agent(self, data: bytes) -> None:
        """Write `data` to the agent as if a client had sent it."""
        self._agent.sendall(data)

    def to_client(self, data: bytes) -> None:
        """Queue `data` for the client as if the agent had sent it."""
        with self._lock:
            self._to_client += data
        self._wake()

    def pending(self) -> int:
        """Bytes of the agent's output waiting for a client."""
        with self._lock:
            return len(self._to_client)

    def hold(self, held: bool) -> None:
        """Keep the agent's output from the client (True) or let it through."""
        with self._lock:
            self._hold = held
        self._wake()

    def drop_client(self) -> None:
        """Disconnect the client; the channel to the agent stays."""
        with self._lock:
            client = self._client
        if client is not None:
            # the relay's thread sees the end and lets the client go
            client.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._client is client is not None and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self._stopping = True
        self._wake()
        self._thread.join(STOP_TIMEOUT)
        for sock in (self._listener, self._agent, self._wake_reader, self._wake_writer):
            sock.close()
        if self._client is not None:
            self._client.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ChannelRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the relay's thread ----------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"x")
        except OSError:
            pass

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ, "accept")
            selector.register(self._agent, selectors.EVENT_READ, "agent")
            selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
            registered: socket.socket | None = None
            while not self._stopping:
                with self._lock:
                    client = self._client
                if registered is not None and registered is not client:
                    selector.unregister(registered)
                    registered = None
                if client is not None and registered is None:
                    selector.register(client, selectors.EVENT_READ, "client")
                    registered = client
                self._deliver()
                for key, _ in selector.select(0.5):
                    if key.data == "accept":
                        accepted, _ = self._listener.accept()
                        with self._lock:
                            if self._client is not None:
                                accepted.close()  # one client at a time
                            else:
                                self._client = accepted
                    elif key.data == "agent":
                        data = self._agent.recv(65536)
                        if not data:
                            return
                        with self._lock:
                            self._to_client += data
                    elif key.data == "wake":
                        self._wake_reader.recv(4096)
                    elif key.data == "client" and client is not None:
                        try:
                            data = client.recv(65536)
                        except OSError:
                            data = b""
                        if data:
                            self._agent.sendall(data)
                        else:
                            with self._lock:
                                self._client = None
                            selector.unregister(client)
                            registered = None
                            client.close()

    def _deliver(self) -> None:
        with self._lock:
            client, pending = self._client, bytes(self._to_client)
            if client is None or self._hold or not pending:
                return
            self._to_client.clear()
        try:
            client.sendall(pending)
        except OSError:
            pass  # the client went: what it did not read is lost, as on a socket
