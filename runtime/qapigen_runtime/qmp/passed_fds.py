"""File descriptors that QMP clients pass with SCM_RIGHTS, kept as QEMU's monitor does.

A client sends a descriptor in the same ``sendmsg`` as the command that uses it
(``getfd``, ``add-fd``). asyncio's socket transport reads with ``recv()``, and the kernel
discards the descriptors of a message read that way, so the server's unix listeners
accept `FdReceivingSocket`s: sockets whose ``recv`` is a ``recvmsg`` that keeps what
arrived until the session claims it along with the bytes.

What happens to the descriptors then follows QEMU 7.2 (observed with
tests/runtime/test_qmp_server_fds.py's ``qemu`` test):

- at most `MAX_FDS_PER_MESSAGE` descriptors arrive with one message; the kernel closes
  the others;
- they arrive in blocking mode (QEMU clears ``O_NONBLOCK``; the flag belongs to the open
  file, so the sender sees the change too) and close-on-exec here;
- the descriptors of one message replace those of an earlier one that nobody took (the
  earlier ones are closed);
- a command takes the first one (`take_passed_fd`) and the rest of that message's are
  closed; descriptors no command takes stay with the connection for a later command
  until other descriptors replace them or the connection closes, when they are closed.

Handlers reach the descriptors of the connection whose command they serve through a
context variable that the session sets around each command, so generated handler
implementations need no extra parameter.
"""

from __future__ import annotations

import array
import contextvars
import os
import socket
import stat
import weakref
from collections.abc import Iterable

MAX_FDS_PER_MESSAGE = 16
"""QEMU's limit (its socket channel's receive buffer holds 16 descriptors)."""

_INT_SIZE = array.array("i").itemsize
_ANCILLARY_SPACE = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * _INT_SIZE)
# Descriptors must not leak into the processes the server starts (exec: migration).
_RECV_FLAGS = getattr(socket, "MSG_CMSG_CLOEXEC", 0)


def close_fds(fds: Iterable[int]) -> None:
    """Close each descriptor, ignoring ones already gone."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _fds_in(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors an SCM_RIGHTS control message carried, made blocking."""
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % _INT_SIZE])
            fds.extend(received)
    for fd in fds:
        if not _RECV_FLAGS:
            os.set_inheritable(fd, False)
        try:
            os.set_blocking(fd, True)
        except OSError:
            pass  # a descriptor without file status flags is usable as it is
    return fds


class FdReceivingSocket(socket.socket):
    """A connected unix socket whose reads keep the descriptors passed with the data.

    Used from the event loop's thread only: asyncio reads it and hands the bytes to
    the session, which calls `claim_arrived` for the descriptors of those bytes.
    """

    def __init__(self, family: int, kind: int, proto: int, fileno: int) -> None:
        super().__init__(family, kind, proto, fileno)
        self._arrived: list[int] = []

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancdata, _msg_flags, _address = self.recvmsg(
            bufsize, _ANCILLARY_SPACE, flags | _RECV_FLAGS
        )
        if ancdata:
            self._arrived.extend(_fds_in(ancdata))
        return data

    def recv_into(self, buffer: object, nbytes: int = 0, flags: int = 0) -> int:
        # For a buffered protocol: the same descriptor keeping as recv.
        view = memoryview(buffer)  # type: ignore[arg-type]
        if nbytes:
            view = view[:nbytes]
        count, ancdata, _msg_flags, _address = self.recvmsg_into(
            [view], _ANCILLARY_SPACE, flags | _RECV_FLAGS
        )
        if ancdata:
            self._arrived.extend(_fds_in(ancdata))
        return count

    def claim_arrived(self) -> list[int]:
        """The descriptors received since the last claim; the caller owns them."""
        arrived, self._arrived = self._arrived, []
        return arrived

    def close(self) -> None:
        close_fds(self.claim_arrived())
        super().close()


class FdListeningSocket(socket.socket):
    """A listening unix socket whose accepted connections are `FdReceivingSocket`s.

    `connection` finds the socket behind an asyncio transport (whose
    ``get_extra_info("socket")`` is a wrapper) by its descriptor number.
    """

    def __init__(self) -> None:
        super().__init__(socket.AF_UNIX, socket.SOCK_STREAM)
        self._connections: weakref.WeakValueDictionary[int, FdReceivingSocket] = (
            weakref.WeakValueDictionary()
        )

    def accept(self) -> tuple[socket.socket, object]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        conn = FdReceivingSocket(self.family, self.type, self.proto, fileno=fd)
        if self.gettimeout() is None:
            conn.setblocking(True)  # as socket.accept does; asyncio then unblocks it
        self._connections[fd] = conn
        return conn, address

    def connection(self, fd: int) -> FdReceivingSocket | None:
        return self._connections.get(fd)


def bind_unix_listener(
    path: str, *, backlog: int = 100, replace_any_file: bool = False
) -> FdListeningSocket:
    """A non-blocking `FdListeningSocket` bound to `path` and listening.

    A file already at `path` is replaced when it is a socket (a stale one from an
    earlier run, as asyncio does), or, with `replace_any_file`, whatever it is except
    a directory (as QEMU does). Binding errors are raised as OSError.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISSOCK(mode) or (replace_any_file and not stat.S_ISDIR(mode)):
            os.unlink(path)
    listener = FdListeningSocket()
    try:
        listener.bind(path)
        listener.listen(backlog)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener


class PassedFds:
    """The descriptors one connection holds for its commands (QEMU's rules above)."""

    def __init__(self) -> None:
        self._held: list[int] = []
        self._closed = False

    def arrive(self, fds: list[int]) -> None:
        """Descriptors of a new message: they replace those nobody took."""
        if self._closed:
            close_fds(fds)
            return
        old, self._held = self._held, fds
        close_fds(old)

    def take(self) -> int | None:
        """The first descriptor held, or None; the others held are closed."""
        if not self._held:
            return None
        first, *rest = self._held
        self._held = []
        close_fds(rest)
        return first

    @property
    def held(self) -> int:
        """How many descriptors wait for a command."""
        return len(self._held)

    def close(self) -> None:
        """The connection closed: close what is held and whatever arrives later."""
        self._closed = True
        held, self._held = self._held, []
        close_fds(held)


_serving: contextvars.ContextVar[PassedFds | None] = contextvars.ContextVar(
    "qmp_passed_fds", default=None
)


def serving(fds: PassedFds) -> contextvars.Token[PassedFds | None]:
    """Make `fds` the descriptors `take_passed_fd` sees (the server calls this)."""
    return _serving.set(fds)


def done_serving(token: contextvars.Token[PassedFds | None]) -> None:
    _serving.reset(token)


def take_passed_fd() -> int | None:
    """A descriptor the client passed with SCM_RIGHTS for the command being served.

    Call it from the command's handler (in its coroutine, not in another thread).
    Returns the first descriptor of the latest message that brought some and that no
    command took yet, closing the others of that message, as QEMU's ``getfd`` does;
    None when there is none (always over TCP, and outside a command). The caller owns
    the descriptor and must close it.
    """
    fds = _serving.get()
    return None if fds is None else fds.take()
