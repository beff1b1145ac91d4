"""An asyncio guest-agent client: generated `AsyncClient`s ride on it as on QMP's.

    async with await QGAClient.connected("/run/qga.sock") as agent:
        qga = AsyncClient(agent)  # from qapigen_qga.commands (or any release's)
        print((await qga.guest_get_osinfo()).pretty_name)

Commands are serialised (the agent answers in order and its replies carry no id):
concurrent `execute` calls queue on a lock. See `wire` for the resynchronisation done
on connecting and after a timeout, a cancelled command, an unreadable reply or a
command sent without waiting.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from typing import NoReturn

from ..qmp.address import Address, connecting, timed_out
from ..qmp.errors import (
    QMPDisconnectedError,
    QMPMessageTooLargeError,
    QMPProtocolError,
    QMPTimeoutError,
)
from ..qmp.requests import CLIENT_TIMEOUT, Timeout
from . import wire


class QGAClient:
    """Asyncio guest-agent client (implements `AsyncCommandTransport` and
    `AsyncNoReplyTransport`).

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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._in_sync = False

    @classmethod
    async def connected(
        cls, address: Address, *, timeout: float | None = 10.0
    ) -> QGAClient:
        """A client connected to `address` (a unix socket path or (host, port))."""
        client = cls()
        await client.connect(address, timeout=timeout)
        return client

    @property
    def is_connected(self) -> bool:
        return self._writer is not None

    @property
    def in_sync(self) -> bool:
        """False when the next command resynchronises first."""
        return self._in_sync

    async def connect(self, address: Address, *, timeout: float | None = 10.0) -> None:
        """Connect and resynchronise; QMPConnectionError on failure. `timeout`
        bounds both (a channel with no agent behind it connects, then times out)."""
        if self._writer is not None:
            raise QMPDisconnectedError("already connected")
        limit = self.max_message_size + 1
        with connecting(address, timeout):
            async with asyncio.timeout(timeout):
                if isinstance(address, str):
                    opened = asyncio.open_unix_connection(address, limit=limit)
                    self._reader, self._writer = await opened
                else:
                    host, port = address
                    opened = asyncio.open_connection(host, port, limit=limit)
                    self._reader, self._writer = await opened
                    sock = self._writer.get_extra_info("socket")
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self.resync(timeout=timeout)
        except QMPTimeoutError:
            await self.close()
            raise QMPTimeoutError(
                timed_out(address, "the guest agent's sync reply", timeout)
            ) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._in_sync = False
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass  # the peer went first: closed all the same

    async def __aenter__(self) -> QGAClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- commands --------------------------------------------------------------

    async def execute(
        self,
        name: str,
        arguments: Mapping[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
        timeout: Timeout = CLIENT_TIMEOUT,
    ) -> object:
        """Run a command; its ``return`` value, or QMPCommandError (the agent's
        error reply) or QMPConnectionError. After a timeout (or a cancellation) the
        connection stays open, and the next command resynchronises first."""
        wire.check_request(name, oob, fds)
        if timeout is CLIENT_TIMEOUT:
            timeout = self.command_timeout
        async with self._lock:
            try:
                async with asyncio.timeout(timeout):
                    if not self._in_sync:
                        await self._sync()
                    await self._send(wire.request(name, arguments), name)
                    line = await self._read_line()
            except TimeoutError:
                raise QMPTimeoutError(
                    f"no reply to {name} within {timeout} s (the next command"
                    " resynchronises first)"
                ) from None
            except BaseException:
                self._in_sync = False  # a cancellation mid-command, a failure
                raise
            try:
                return wire.reply_value(name, line)
            except QMPProtocolError:
                self._in_sync = False
                raise

    async def execute_no_reply(
        self, name: str, arguments: Mapping[str, object] | None = None
    ) -> None:
        """Send a command that gets no reply when it succeeds (guest-shutdown) and
        return once it is sent. Should it fail, its error reply is discarded by the
        resynchronisation the next command does first."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.command_timeout):
                    if not self._in_sync:
                        await self._sync()
                    await self._send(wire.request(name, arguments), name)
            except TimeoutError:
                raise QMPTimeoutError(
                    f"sending {name} timed out: the guest agent does not read"
                ) from None
            finally:
                self._in_sync = False

    async def resync(self, *, timeout: Timeout = CLIENT_TIMEOUT) -> None:
        """Resynchronise now (see `wire`); `timeout` defaults to `sync_timeout`."""
        if timeout is CLIENT_TIMEOUT:
            timeout = self.sync_timeout
        async with self._lock:
            try:
                async with asyncio.timeout(timeout):
                    await self._sync()
            except TimeoutError:
                raise QMPTimeoutError(
                    f"no reply to {wire.SYNC_COMMAND} within {timeout} s: the"
                    " guest agent does not answer"
                ) from None

    async def _sync(self) -> None:
        self._in_sync = False
        sync_id = wire.new_sync_id()
        await self._send(wire.sync_request(sync_id), wire.SYNC_COMMAND)
        self.resyncs += 1
        reader = self._stream()
        while True:
            await self._skip_to_sentinel(reader)
            try:
                line = await self._read_line()
            except QMPMessageTooLargeError:
                continue  # no sync reply is this long: stale; look further
            if wire.is_sync_reply(line, sync_id):
                self._in_sync = True
                return

    # -- bytes -----------------------------------------------------------------

    async def _skip_to_sentinel(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                await reader.readuntil(wire.RESET)
                return
            except asyncio.LimitOverrunError as error:
                await reader.readexactly(error.consumed)  # stale: dropped
            except asyncio.IncompleteReadError:
                await self._lost("the guest agent closed the connection")

    async def _send(self, payload: bytes, name: str) -> None:
        writer = self._writer
        if writer is None:
            raise QMPDisconnectedError("not connected")
        try:
            writer.write(payload)
            await writer.drain()
        except OSError as error:
            await self._lost(f"sending {name} failed: {error}")

    async def _read_line(self) -> bytes:
        """The next line, without its newline."""
        reader = self._stream()
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as error:
            # drop the too-long reply (up to where the reader looked)
            await reader.readexactly(error.consumed)
            self._in_sync = False
            raise QMPMessageTooLargeError(
                f"a reply exceeds {self.max_message_size} bytes"
            ) from None
        except asyncio.IncompleteReadError:
            await self._lost("the guest agent closed the connection")
        except OSError as error:
            await self._lost(f"the connection failed: {error}")
        return line[:-1]

    def _stream(self) -> asyncio.StreamReader:
        if self._reader is None:
            raise QMPDisconnectedError("not connected")
        return self._reader

    async def _lost(self, why: str) -> NoReturn:
        await self.close()
        raise QMPDisconnectedError(why)
