"""A blocking guest-agent client: generated `SyncClient`s ride on it as on QMP's.

    with SyncQGAClient.connected("/run/qga.sock") as agent:
        qga = SyncClient(agent)  # from qapigen_qga.commands (or any release's)
        print(qga.guest_get_osinfo().pretty_name)

One command at a time, in order (the agent answers in order and its replies carry no
id). See `wire` for the resynchronisation this client does on connecting and after a
timeout, an unreadable reply or a command sent without waiting.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping, Sequence

from ..qmp.address import Address, connecting, open_socket, timed_out
from ..qmp.errors import (
    QMPDisconnectedError,
    QMPMessageTooLargeError,
    QMPProtocolError,
    QMPTimeoutError,
)
from ..qmp.requests import CLIENT_TIMEOUT, Timeout
from . import wire

_READ_SIZE = 64 * 1024


class SyncQGAClient:
    """Blocking guest-agent client (implements `SyncCommandTransport` and
    `SyncNoReplyTransport`); not thread-safe.

    `execute` waits `command_timeout` seconds at most (None: for ever) unless given
    its own timeout; a resynchronisation waits `sync_timeout` seconds at most.
    """

    def __init__(
        self,
        *,
        command_timeout: float | None = wire.DEFAULT_COMMAND_TIMEOUT,
        sync_timeout: float | None = wire.DEFAULT_SYNC_TIMEOUT,
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.command_timeout = command_timeout
        self.sync_timeout = sync_timeout
        self.max_message_size = max_message_size
        self.resyncs = 0  # resynchronisations done, connecting included
        self._sock: socket.socket | None = None
        self._address: Address = ""
        self._buffer = bytearray()
        self._scan = 0  # where the search for the next newline resumes
        self._in_sync = False
        self._kernel_timeouts: dict[int, float] = {}
        self._requests: dict[str, bytes] = {}  # encoded argument-less requests

    @classmethod
    def connected(
        cls, address: Address, *, timeout: float | None = 10.0
    ) -> SyncQGAClient:
        """A client connected to `address` (a unix socket path or (host, port))."""
        client = cls()
        client.connect(address, timeout=timeout)
        return client

    @property
    def is_connected(self) -> bool:
        return self._sock is not None

    @property
    def in_sync(self) -> bool:
        """False when the next command resynchronises first."""
        return self._in_sync

    def connect(self, address: Address, *, timeout: float | None = 10.0) -> None:
        """Connect and resynchronise; QMPConnectionError on failure. `timeout`
        bounds both (a channel with no agent behind it connects, then times out)."""
        if self._sock is not None:
            raise QMPDisconnectedError("already connected")
        with connecting(address, timeout):
            sock = open_socket(address, timeout)
        sock.settimeout(None)  # blocking: deadlines are the kernel's (_kernel_timeout)
        self._sock, self._address = sock, address
        self._kernel_timeouts = {}
        self._buffer.clear()
        self._scan = 0
        try:
            self.resync(timeout=timeout)
        except QMPTimeoutError:
            self.close()
            raise QMPTimeoutError(
                timed_out(address, "the guest agent's sync reply", timeout)
            ) from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._in_sync = False
        if sock is not None:
            sock.close()

    def __enter__(self) -> SyncQGAClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands --------------------------------------------------------------

    def execute(
        self,
        name: str,
        arguments: Mapping[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
        timeout: Timeout = CLIENT_TIMEOUT,
    ) -> object:
        """Run a command; its ``return`` value, or QMPCommandError (the agent's
        error reply) or QMPConnectionError. After a timeout the connection stays
        open, and the next command resynchronises before it is sent."""
        wire.check_request(name, oob, fds)
        if timeout is CLIENT_TIMEOUT:
            timeout = self.command_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._in_sync:
            self._resync(deadline)
        if arguments is None:
            payload = self._requests.get(name)
            if payload is None:
                payload = self._requests[name] = wire.request(name, None)
        else:
            payload = wire.request(name, arguments)
        self._send(payload, name, deadline)
        try:
            line = self._read_line(deadline)
        except QMPTimeoutError:
            self._in_sync = False
            raise QMPTimeoutError(
                f"no reply to {name} within {timeout} s (the next command"
                " resynchronises first)"
            ) from None
        try:
            return wire.reply_value(name, line)
        except QMPProtocolError:
            self._in_sync = False
            raise

    def execute_no_reply(
        self, name: str, arguments: Mapping[str, object] | None = None
    ) -> None:
        """Send a command that gets no reply when it succeeds (guest-shutdown) and
        return once it is sent. Should it fail, its error reply is discarded by the
        resynchronisation the next command does first."""
        deadline = (
            None
            if self.command_timeout is None
            else time.monotonic() + self.command_timeout
        )
        if not self._in_sync:
            self._resync(deadline)
        self._send(wire.request(name, arguments), name, deadline)
        self._in_sync = False

    def resync(self, *, timeout: Timeout = CLIENT_TIMEOUT) -> None:
        """Resynchronise now (see `wire`); `timeout` defaults to `sync_timeout`."""
        if timeout is CLIENT_TIMEOUT:
            timeout = self.sync_timeout
        self._resync(None if timeout is None else time.monotonic() + timeout)

    def _resync(self, deadline: float | None) -> None:
        try:
            self._sync(deadline)
        except QMPTimeoutError:
            raise QMPTimeoutError(
                f"no reply to {wire.SYNC_COMMAND} in time: the guest agent does not"
                " answer"
            ) from None

    def _sync(self, deadline: float | None) -> None:
        self._in_sync = False
        sync_id = wire.new_sync_id()
        self._send(wire.sync_request(sync_id), wire.SYNC_COMMAND, deadline)
        self.resyncs += 1
        buffer = self._buffer
        while True:
            sentinel = buffer.find(wire.RESET)
            if sentinel < 0:
                buffer.clear()  # all of it stale
                self._scan = 0
                self._receive(deadline)
                continue
            del buffer[: sentinel + 1]
            self._scan = 0
            try:
                line = self._read_line(deadline)
            except QMPMessageTooLargeError:
                continue  # no sync reply is this long: stale; look further
            if wire.is_sync_reply(line, sync_id):
                self._in_sync = True
                return

    # -- bytes -----------------------------------------------------------------

    def _send(self, payload: bytes, name: str, deadline: float | None) -> None:
        sock = self._socket()
        try:
            self._kernel_timeout(socket.SO_SNDTIMEO, deadline)
            sock.sendall(payload)
        except (BlockingIOError, QMPTimeoutError):
            # part of it may have gone: the agent's parser holds half a request
            self._in_sync = False
            raise QMPTimeoutError(
                f"sending {name} timed out: the guest agent does not read"
            ) from None
        except OSError as error:
            self.close()
            raise QMPDisconnectedError(f"sending {name} failed: {error}") from error

    def _read_line(self, deadline: float | None) -> bytearray:
        """The next line, without its newline."""
        buffer = self._buffer
        while True:
            newline = buffer.find(b"\n", self._scan)
            if newline >= 0:
                line = buffer[:newline]
                del buffer[: newline + 1]
                self._scan = 0
                return line
            self._scan = len(buffer)
            if self._scan > self.max_message_size:
                # drop it: the caller resynchronises, and this is no reply to read
                buffer.clear()
                self._scan = 0
                self._in_sync = False
                raise QMPMessageTooLargeError(
                    f"a reply exceeds {self.max_message_size} bytes"
                )
            self._receive(deadline)

    def _receive(self, deadline: float | None) -> None:
        sock = self._socket()
        try:
            self._kernel_timeout(socket.SO_RCVTIMEO, deadline)
            data = sock.recv(_READ_SIZE)
        except BlockingIOError:
            if deadline is None or time.monotonic() >= deadline:
                raise QMPTimeoutError("no reply in time") from None
            return  # the kernel's wait ended a little early: the caller reads again
        except OSError as error:
            self.close()
            raise QMPDisconnectedError(f"the connection failed: {error}") from error
        if not data:
            self.close()
            raise QMPDisconnectedError("the guest agent closed the connection")
        self._buffer += data

    def _kernel_timeout(self, option: int, deadline: float | None) -> None:
        """Make the kernel end a blocking send or receive near `deadline`.

        The socket stays blocking (one system call per send or receive, as a bare
        loop makes); SO_RCVTIMEO / SO_SNDTIMEO are changed only when the one set
        would wait past the deadline or far less than it could, and set a little
        short of it, so the next command (with the same timeout) keeps it.
        """
        current = self._kernel_timeouts.get(option, 0.0)  # 0: no limit
        if deadline is None:
            wanted = 0.0
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QMPTimeoutError("the deadline passed")
            if current and remaining / 2 <= current <= remaining:
                return
            wanted = remaining * 0.8 if remaining > 0.01 else remaining
        if wanted == current:
            return
        seconds, fraction = divmod(wanted, 1.0)
        microseconds = max(1, int(fraction * 1e6)) if wanted else 0
        self._socket().setsockopt(
            socket.SOL_SOCKET, option, struct.pack("ll", int(seconds), microseconds)
        )
        self._kernel_timeouts[option] = wanted

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise QMPDisconnectedError("not connected")
        return self._sock
