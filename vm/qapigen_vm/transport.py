"""Migration URIs and the byte channels behind them: tcp:, unix:, exec:, fd:.

Sockets give a bidirectional channel, so the destination can answer on a return path;
exec: and a non-socket fd: are one-way pipes. Connection failures carry QEMU's text
("Failed to connect to '127.0.0.1:4446': Connection refused").
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import select
import socket
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol, TypeVar

Scheme = Literal["tcp", "unix", "exec", "fd"]
T = TypeVar("T")

# Room for a multifd source's main and data channels (up to 255) connecting at once.
LISTEN_BACKLOG = 256


class UriError(ValueError):
    """The URI's scheme is not a migration protocol this VM knows."""


class TransportError(OSError):
    """Connecting, listening or moving bytes failed; the text is the error-desc."""


class SilentPeer(TransportError, TimeoutError):
    """The peer sent nothing for longer than its `Liveness` allows."""


@dataclasses.dataclass(frozen=True, slots=True)
class MigrationUri:
    scheme: Scheme
    address: str  # host:port, socket path, shell command, or fd name

    def host_port(self) -> tuple[str, str]:
        """Split tcp's address; IPv6 hosts are bracketed ("[::1]:4446")."""
        text = self.address
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or not rest.startswith(":") or not rest[1:]:
                raise TransportError(f"error parsing IPv6 address '{text}'")
            return host, rest[1:]
        host, sep, port = text.rpartition(":")
        if not sep or not port:
            raise TransportError(f"error parsing address '{text}'")
        return host, port


def parse_uri(uri: str) -> MigrationUri:
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in ("tcp", "unix", "exec", "fd"):
        raise UriError(uri)
    return MigrationUri(scheme, rest)  # type: ignore[arg-type]


class FdTable:
    """Named file descriptors handed over by getfd (SCM_RIGHTS); fd: URIs use them."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, fd: int) -> None:
        with self._lock:
            old = self._fds.pop(name, None)
            self._fds[name] = fd
        if old is not None:
            os.close(old)

    def close(self, name: str) -> None:
        """closefd."""
        with self._lock:
            fd = self._fds.pop(name, None)
        if fd is None:
            raise TransportError(f"File descriptor named '{name}' not found")
        os.close(fd)

    def take(self, name: str) -> int:
        """Hand the fd over to a migration (the table no longer owns it).

        A decimal name is taken as a raw fd number, as QEMU's -incoming fd:N does.
        """
        with self._lock:
            fd = self._fds.pop(name, None)
        if fd is not None:
            return fd
        if name.isdigit():
            return int(name)
        raise TransportError(f"File descriptor named '{name}' not found")

    def close_all(self) -> None:
        with self._lock:
            fds = list(self._fds.values())
            self._fds.clear()
        for fd in fds:
            os.close(fd)


# -- a silent peer ---------------------------------------------------------------------


class Liveness:
    """When the peer last sent anything, shared by every channel of one incoming
    migration, and how long it may stay silent (None: for ever).

    A socket channel that has one waits in its reads at most ``POLL`` seconds at a
    time (the kernel's receive timeout, so a read that finds data costs nothing more)
    and gives up with ``SilentPeer(reason)`` once nothing has come on any of the
    channels for ``limit`` seconds (see :class:`SocketChannel`).
    """

    POLL = 0.2

    def __init__(self, limit: float | None, reason: str) -> None:
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._absolute = False
        self.limit = limit
        self.reason = reason

    def touch(self) -> None:
        """Something arrived (in a phase with a deadline, that changes nothing).

        Called for every read, so without the lock: a float store is atomic."""
        if not self._absolute:
            self._last = time.monotonic()

    def expect(
        self, limit: float | None, reason: str, *, deadline: bool = False
    ) -> None:
        """A new phase: from now on, at most ``limit`` seconds of silence, or with
        ``deadline`` at most ``limit`` seconds whatever arrives meanwhile (a peer
        that drips a byte at a time cannot stretch a handshake)."""
        with self._lock:
            self._last = time.monotonic()
            self._absolute = deadline
            self.limit = limit
            self.reason = reason

    def rename(self, reason: str) -> None:
        """What the phase waits for changed; its clock did not."""
        with self._lock:
            self.reason = reason

    def check(self) -> None:
        """SilentPeer(reason) once the peer has been silent too long."""
        with self._lock:
            limit, last, reason = self.limit, self._last, self.reason
        if limit is not None and time.monotonic() - last > limit:
            raise SilentPeer(reason)


def _poller_for(fd: int) -> select.poll:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return poller


_RECEIVE_TIMEOUT = struct.pack("ll", 0, int(Liveness.POLL * 1_000_000))  # timeval


# -- channels -------------------------------------------------------------------------


class SocketChannel:
    """A connected stream socket: both directions, so it has a return path."""

    has_return_path = True

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        # Set on a destination's channels: reads then give up on a silent source.
        self.liveness: Liveness | None = None
        self._timed = False  # whether the kernel's receive timeout is set
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Records are a small header then a large payload; Nagle would hold the
            # header back waiting for an ACK the receiver delays.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise TransportError(
                f"Unable to write to socket: {exc.strerror or exc}"
            ) from exc

    def recv_exact(self, into: memoryview) -> None:
        view = into.cast("B") if into.format != "B" else into
        got = 0
        while got < view.nbytes:
            n = self.receive(functools.partial(self.sock.recv_into, view[got:]))
            if n == 0:
                raise EOFError("peer closed the connection")
            got += n

    def receive(self, read: Callable[[], T]) -> T:
        """One read of the socket. With a liveness watch it waits at most POLL
        seconds at a time in the kernel (SO_RCVTIMEO: nothing more per read than the
        read itself) and raises SilentPeer once the peer has been silent too long;
        without one it blocks."""
        liveness = self.liveness
        if liveness is None:
            return read()
        if not self._timed:
            self.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVTIMEO, _RECEIVE_TIMEOUT
            )
            self._timed = True
        while True:
            try:
                result = read()
            except BlockingIOError:  # the receive timeout passed with nothing
                liveness.check()
                continue
            liveness.touch()
            return result

    def finish_with_drain(self, seconds: float) -> None:
        """Half-close after a last message, then discard input until the peer closes.

        Closing with unread input makes TCP send a reset, which can destroy the last
        message before the peer reads it; the source closes as soon as it has.
        """
        self.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        sink = bytearray(1 << 16)
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                if not self.sock.recv_into(sink):
                    return
            except (TimeoutError, OSError):
                return

    def shutdown(self) -> None:
        """Unblock any thread stuck in send/recv (cancel, teardown)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def shutdown_read(self) -> None:
        """Wake a thread blocked reading, but keep the write side for a last reply."""
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def close(self) -> None:
        # shutdown first: a close alone neither wakes another thread blocked in recv
        # on this socket nor sends the FIN while that thread holds the file.
        self.shutdown()
        self.sock.close()


class PipeChannel:
    """One direction of a pipe (exec:, or a non-socket fd:); no return path."""

    has_return_path = False

    def __init__(
        self,
        read_fd: int | None = None,
        write_fd: int | None = None,
        process: subprocess.Popen[bytes] | None = None,
        peer: str = "",
    ) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.process = process
        self.peer = peer
        self.liveness: Liveness | None = None  # as SocketChannel's
        self._poller: select.poll | None = None

    def send(self, data: bytes | memoryview) -> None:
        if self.write_fd is None:
            raise TransportError("the migration channel is read-only")
        view = memoryview(data).cast("B")
        try:
            while view.nbytes:
                n = os.write(self.write_fd, view)
                view = view[n:]
        except OSError as exc:
            what = "command" if self.process is not None else "fd"
            raise TransportError(
                f"Unable to write to {what}: {exc.strerror or exc}"
            ) from exc

    def recv_exact(self, into: memoryview) -> None:
        if self.read_fd is None:
            raise TransportError("the migration channel is write-only")
        view = into.cast("B") if into.format != "B" else into
        got = 0
        while got < view.nbytes:
            liveness = self.liveness
            if liveness is not None:  # a pipe has no receive timeout: poll first
                if self._poller is None:
                    self._poller = _poller_for(self.read_fd)
                while not self._poller.poll(int(Liveness.POLL * 1000)):
                    liveness.check()
                liveness.touch()
            n = os.readv(self.read_fd, [view[got:]])
            if n == 0:
                raise EOFError("peer closed the pipe")
            got += n

    def shutdown(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def shutdown_read(self) -> None:
        self.shutdown()

    def finish(self) -> int:
        """Close our end and reap the command; its exit status (0 without one)."""
        self._close_fds()
        if self.process is None:
            return 0
        return self.process.wait()

    def _close_fds(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.read_fd = self.write_fd = None

    def close(self) -> None:
        self._close_fds()
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()


Channel = SocketChannel | PipeChannel


class SocketWrapper(Protocol):
    """Turns a connected socket into a channel (TLS: see .tls); raises
    TransportError when the session cannot be set up."""

    def wrap(self, sock: socket.socket, peer: str) -> SocketChannel: ...


NO_TLS_ON_PIPES = "TLS needs a socket: exec: and pipe fd: channels cannot carry it"


def _fd_channel(fd: int, peer: str, outgoing: bool) -> Channel:
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:  # EBADF: -incoming fd:N with N not open
        raise TransportError(
            f"Failed to use file descriptor {fd}: {exc.strerror}"
        ) from None
    if stat.S_ISSOCK(mode):
        return SocketChannel(socket.socket(fileno=fd), peer)
    return (
        PipeChannel(write_fd=fd, peer=peer)
        if outgoing
        else PipeChannel(read_fd=fd, peer=peer)
    )


# -- source side ----------------------------------------------------------------------


class Connector:
    """Opens the source's channel; ``abort`` unblocks a connect in progress (cancel)."""

    def __init__(self, uri: MigrationUri, fds: FdTable) -> None:
        self.uri = uri
        self.fds = fds
        self._sock: socket.socket | None = None
        self._fd: int | None = None
        self._aborted = False
        self._lock = threading.Lock()
        # Set by the engine when tls-creds is set: every channel, multifd's too.
        self.tls: SocketWrapper | None = None

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @property
    def multi_channel(self) -> bool:
        """Whether ``connect`` can open further channels to the same place (multifd)."""
        return self.uri.scheme in ("tcp", "unix")

    def prepare(self) -> None:
        """Checks QEMU makes before replying to migrate (bad address, missing fd)."""
        if self.uri.scheme == "tcp":
            self.uri.host_port()
        elif self.uri.scheme == "fd":
            self._fd = self.fds.take(self.uri.address)

    def connect(self) -> Channel:
        uri = self.uri
        if uri.scheme == "tcp":
            host, port = uri.host_port()
            return self._connect_socket(
                socket.AF_UNSPEC, (host, port), f"{host}:{port}"
            )
        if uri.scheme == "unix":
            return self._connect_socket(socket.AF_UNIX, uri.address, uri.address)
        if uri.scheme == "exec":
            if self.tls is not None:
                raise TransportError(NO_TLS_ON_PIPES)
            proc = subprocess.Popen(
                ["/bin/sh", "-c", uri.address], stdin=subprocess.PIPE
            )
            assert proc.stdin is not None
            fd = os.dup(proc.stdin.fileno())
            proc.stdin.close()
            return PipeChannel(write_fd=fd, process=proc, peer=uri.address)
        if self._fd is None:
            self._fd = self.fds.take(uri.address)
        fd, self._fd = self._fd, None
        channel = _fd_channel(fd, uri.address, outgoing=True)
        if self.tls is None:
            return channel
        if isinstance(channel, SocketChannel):
            return self.tls.wrap(channel.sock, channel.peer)
        channel.close()
        raise TransportError(NO_TLS_ON_PIPES)

    def _connect_socket(
        self, family: int, target: tuple[str, str] | str, shown: str
    ) -> SocketChannel:
        addresses: list[tuple[int, object]] = []
        if isinstance(target, tuple):
            host, port = target
            try:
                infos = socket.getaddrinfo(
                    host or "localhost", port, family, socket.SOCK_STREAM
                )
            except socket.gaierror as exc:
                raise TransportError(
                    f"Failed to connect to '{shown}': {exc.strerror}"
                ) from None
            addresses = [(info[0], info[4]) for info in infos]
        else:
            addresses = [(socket.AF_UNIX, target)]
        last: OSError | None = None
        for fam, addr in addresses:
            sock = socket.socket(fam, socket.SOCK_STREAM)
            with self._lock:
                if self._aborted:
                    sock.close()
                    raise TransportError("migration cancelled while connecting")
                self._sock = sock
            try:
                sock.connect(addr)  # type: ignore[arg-type]
            except OSError as exc:
                sock.close()
                last = exc
                continue
            if self.tls is not None:
                return self.tls.wrap(sock, shown)
            return SocketChannel(sock, shown)
        reason = last.strerror if last is not None else "no address"
        raise TransportError(f"Failed to connect to '{shown}': {reason}")


# -- destination side -----------------------------------------------------------------


class Listener:
    """Where a destination waits for its source; ``socket_address`` for query-migrate."""

    def __init__(self, uri: MigrationUri, fds: FdTable) -> None:
        self.uri = uri
        self._server: socket.socket | None = None
        self._channel: Channel | None = None
        self._closed = threading.Event()
        self.socket_address: list[dict[str, object]] = []
        # When set (tls-creds), called for each connection: None means plain, a
        # TransportError is reported through ``on_rejected`` and the next one awaited,
        # as QEMU 7.2 keeps listening after a failed TLS handshake.
        self.tls: Callable[[], SocketWrapper | None] | None = None
        self.on_rejected: Callable[[str], None] = lambda text: None
        if uri.scheme == "tcp":
            host, port = uri.host_port()
            self._server = self._bind_tcp(host, port)
            addr = self._server.getsockname()
            # QEMU 7.2 flags the address family of the bound address too.
            family = "ipv6" if self._server.family == socket.AF_INET6 else "ipv4"
            self.socket_address = [
                {
                    "type": "inet",
                    "host": str(addr[0]),
                    "port": str(addr[1]),
                    family: True,
                }
            ]
        elif uri.scheme == "unix":
            self._server = self._bind_unix(uri.address)
            self.socket_address = [{"type": "unix", "path": uri.address}]
        elif uri.scheme == "exec":
            proc = subprocess.Popen(
                ["/bin/sh", "-c", uri.address], stdout=subprocess.PIPE
            )
            assert proc.stdout is not None
            fd = os.dup(proc.stdout.fileno())
            proc.stdout.close()
            self._channel = PipeChannel(read_fd=fd, process=proc, peer=uri.address)
        else:
            self._channel = _fd_channel(fds.take(uri.address), uri.address, False)

    @staticmethod
    def _bind_tcp(host: str, port: str) -> socket.socket:
        try:
            infos = socket.getaddrinfo(
                host or None,
                port,
                socket.AF_UNSPEC,
                socket.SOCK_STREAM,
                0,
                socket.AI_PASSIVE,
            )
            fam, kind, proto, _, addr = infos[0]
            server = socket.socket(fam, kind, proto)
        except OSError as exc:
            raise TransportError(
                f"Failed to listen on '{host}:{port}': {exc.strerror}"
            ) from exc
        try:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(addr)
            server.listen(LISTEN_BACKLOG)
        except OSError as exc:
            server.close()
            raise TransportError(f"Failed to bind socket: {exc.strerror}") from exc
        return server

    @staticmethod
    def _bind_unix(path: str) -> socket.socket:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
            server.bind(path)
            server.listen(LISTEN_BACKLOG)
        except OSError as exc:
            server.close()
            raise TransportError(
                f"Failed to bind socket to {path}: {exc.strerror}"
            ) from exc
        return server

    def accept(
        self,
        *,
        keep_listening: bool = False,
        secure: bool = True,
        liveness: Liveness | None = None,
    ) -> Channel | None:
        """Wait for the source (None once closed).

        ``keep_listening`` leaves the socket open for further connections (multifd's
        data channels); the caller closes the listener when it has them all.
        ``secure=False`` skips TLS: for connections that are only to be closed.
        ``liveness``: give up (TransportError) when it expires first; the channel
        accepted gets it.
        """
        if self._channel is not None:
            channel: Channel | None
            channel, self._channel = self._channel, None
            wrapper = self.tls() if self.tls is not None else None
            if wrapper is not None:
                if not isinstance(channel, SocketChannel):
                    channel.close()
                    self.on_rejected(NO_TLS_ON_PIPES)
                    return None
                try:
                    channel = wrapper.wrap(channel.sock, channel.peer)
                except TransportError as exc:
                    self.on_rejected(str(exc))
                    return None
            channel.liveness = liveness
            return channel
        server = self._server
        if server is None:
            return None
        try:
            # polls, so that close() from another thread ends the wait promptly
            server.settimeout(0.1)
        except OSError:  # closed before this thread got here
            return None
        while not self._closed.is_set():
            try:
                sock, peer = server.accept()
            except TimeoutError:
                if liveness is not None:
                    liveness.check()
                continue
            except OSError:
                return None
            sock.settimeout(None)
            if not secure:
                return SocketChannel(sock, str(peer))
            secured = self._secure(sock, str(peer))
            if secured is None:
                continue
            secured.liveness = liveness
            if not keep_listening:
                self.close()
            return secured
        return None

    def _secure(self, sock: socket.socket, peer: str) -> SocketChannel | None:
        """The accepted connection as a channel: TLS when configured; None (and the
        reason reported) when its handshake or credentials fail."""
        try:
            wrapper = self.tls() if self.tls is not None else None
            if wrapper is None:
                return SocketChannel(sock, peer)
            return wrapper.wrap(sock, peer)
        except TransportError as exc:
            sock.close()
            self.on_rejected(str(exc))
            return None

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            # shutdown stops the listening at once, even while another thread polls
            # the socket in accept (close alone leaves it listening until then)
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            if self.uri.scheme == "unix":
                try:
                    os.unlink(self.uri.address)
                except OSError:
                    pass
            self._server = None
        self.socket_address = []
        if self._channel is not None:
            self._channel.close()
            self._channel = None
