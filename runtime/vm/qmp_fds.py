"""QMP over unix sockets that keeps the file descriptors clients pass (SCM_RIGHTS).

``getfd`` takes the descriptor that arrived with the command, as QEMU's monitor does.
asyncio's socket transport reads with ``recv()``, which makes the kernel drop passed
descriptors, so the connections accepted here are sockets whose ``recv`` is
``recvmsg`` and which keep what arrived. A command handler finds the descriptors of the
connection it serves through :func:`take_passed_fd`: each QMP session's task carries
its connection in a context variable.

This lives beside the QMP server (it reuses `QMPSession` unchanged) until the server
receives descriptors itself; then `listen_unix` can go and `take_passed_fd` can ask the
server instead.
"""

from __future__ import annotations

import array
import asyncio
import contextvars
import os
import socket
import threading
import weakref

from ..qmp.server import QMPServer, QMPSession

MAX_FDS_PER_MESSAGE = 16


class FdReceivingSocket(socket.socket):
    """A connected unix socket whose reads keep the descriptors passed with the data."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.passed_fds: list[int] = []
        self._fds_lock = threading.Lock()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancdata, _msg_flags, _address = self.recvmsg(
            bufsize, socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * 4), flags
        )
        self._keep(ancdata)
        return data

    def recv_into(
        self, buffer: object, nbytes: int = 0, flags: int = 0
    ) -> int:  # pragma: no cover - asyncio.Protocol sessions read with recv()
        view = memoryview(buffer)  # type: ignore[arg-type]
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def _keep(self, ancdata: list[tuple[int, int, bytes]]) -> None:
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                with self._fds_lock:
                    self.passed_fds.extend(fds)

    def take_fd(self) -> int | None:
        """The most recently passed descriptor not taken yet (QEMU takes the last)."""
        with self._fds_lock:
            return self.passed_fds.pop() if self.passed_fds else None

    def close(self) -> None:
        with self._fds_lock:
            fds, self.passed_fds = self.passed_fds, []
        for fd in fds:
            os.close(fd)
        super().close()


class FdListeningSocket(socket.socket):
    """A listening unix socket whose accepted connections are `FdReceivingSocket`s."""

    def __init__(self) -> None:
        super().__init__(socket.AF_UNIX, socket.SOCK_STREAM)
        self.connections: weakref.WeakValueDictionary[int, FdReceivingSocket] = (
            weakref.WeakValueDictionary()
        )

    def accept(self) -> tuple[socket.socket, object]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        conn = FdReceivingSocket(self.family, self.type, self.proto, fileno=fd)
        if self.gettimeout() is None:
            conn.setblocking(True)
        self.connections[conn.fileno()] = conn
        return conn, address


_current_connection: contextvars.ContextVar[FdReceivingSocket | None] = (
    contextvars.ContextVar("qmp_fd_connection", default=None)
)


def take_passed_fd() -> int | None:
    """A descriptor passed with the command being served, or None (also over TCP)."""
    connection = _current_connection.get()
    return None if connection is None else connection.take_fd()


class _FdSession(QMPSession):
    def __init__(self, server: QMPServer, listener: FdListeningSocket) -> None:
        super().__init__(server)
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        connection = (
            None if sock is None else self._listener.connections.get(sock.fileno())
        )
        # Set before the session creates its command task, which copies the context.
        _current_connection.set(connection)
        super().connection_made(transport)


async def listen_unix(server: QMPServer, path: str) -> asyncio.Server:
    """Serve `server`'s QMP on unix socket `path`, receiving passed descriptors.

    The caller closes the returned asyncio server and unlinks `path` at shutdown.
    """
    listener = FdListeningSocket()
    try:
        # As QEMU: a stale socket file from an earlier run is replaced.
        if os.path.exists(path) and not os.path.isdir(path):
            os.unlink(path)
        listener.bind(path)
        listener.listen(16)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    loop = asyncio.get_running_loop()
    return await loop.create_unix_server(
        lambda: _FdSession(server, listener), sock=listener
    )
