"""Typed helpers where the guest agent's raw protocol is awkward.

- `run` / `run_async`: ``guest-exec`` with the input and output as bytes (the wire
  carries base64), waiting for ``guest-exec-status`` to report the exit;
- `GuestFile` (an `io.RawIOBase`: wrap it in `io.BufferedReader` or
  `io.TextIOWrapper` as any raw file) and `AsyncGuestFile`:
  ``guest-file-open/read/write/seek/flush/close``;
- `system_info` / `system_info_async`: ``guest-get-osinfo``, ``guest-get-host-name``
  and ``guest-get-timezone`` in one record.

They take a generated guest-agent client (``PKG.commands.SyncClient`` or
``AsyncClient``) through the structural protocols below rather than importing one:
the runtime imports no generated package (the dependencies run one way), and the
protocols name only what every guest-agent schema from QEMU 5.2 to 10.0 has, with
the types each release accepts, so the clients of all of them type-check here.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..qmp.errors import QMPTimeoutError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

DEFAULT_POLL_INTERVAL = 0.005
"""Seconds between two ``guest-exec-status`` polls at first (it doubles up to 0.1 s:
a short command is read back at once, a long one costs few requests)."""

_MAX_POLL_INTERVAL = 0.1

READ_CHUNK = 1024 * 1024
"""Bytes a `GuestFile.read()` without a size asks for at a time."""

# -- what the helpers need of a generated client ------------------------------


class ExecStarted(Protocol):
    @property
    def pid(self) -> int: ...


class ExecStatus(Protocol):
    @property
    def exited(self) -> bool: ...
    @property
    def exitcode(self) -> int | None: ...
    @property
    def signal(self) -> int | None: ...
    @property
    def out_data(self) -> str | None: ...
    @property
    def err_data(self) -> str | None: ...
    @property
    def out_truncated(self) -> bool | None: ...
    @property
    def err_truncated(self) -> bool | None: ...


class FileRead(Protocol):
    @property
    def count(self) -> int: ...
    @property
    def buf_b64(self) -> str: ...
    @property
    def eof(self) -> bool: ...


class FileWrite(Protocol):
    @property
    def count(self) -> int: ...


class FileSeek(Protocol):
    @property
    def position(self) -> int: ...


class OSInfo(Protocol):
    @property
    def pretty_name(self) -> str | None: ...
    @property
    def kernel_release(self) -> str | None: ...
    @property
    def machine(self) -> str | None: ...


class HostName(Protocol):
    @property
    def host_name(self) -> str: ...


class Timezone(Protocol):
    @property
    def zone(self) -> str | None: ...
    @property
    def offset(self) -> int: ...


class SyncExecClient(Protocol):
    def guest_exec(
        self,
        *,
        path: str,
        arg: list[str] | None = None,
        input_data: str | None = None,
        capture_output: bool | None = None,
    ) -> ExecStarted: ...

    def guest_exec_status(self, *, pid: int) -> ExecStatus: ...


class AsyncExecClient(Protocol):
    async def guest_exec(
        self,
        *,
        path: str,
        arg: list[str] | None = None,
        input_data: str | None = None,
        capture_output: bool | None = None,
    ) -> ExecStarted: ...

    async def guest_exec_status(self, *, pid: int) -> ExecStatus: ...


class SyncFileClient(Protocol):
    def guest_file_open(self, *, path: str, mode: str | None = None) -> int: ...
    def guest_file_read(self, *, handle: int, count: int | None = None) -> FileRead: ...
    def guest_file_write(
        self, *, handle: int, buf_b64: str, count: int | None = None
    ) -> FileWrite: ...
    def guest_file_seek(self, *, handle: int, offset: int, whence: int) -> FileSeek: ...
    def guest_file_flush(self, *, handle: int) -> None: ...
    def guest_file_close(self, *, handle: int) -> None: ...


class AsyncFileClient(Protocol):
    async def guest_file_open(self, *, path: str, mode: str | None = None) -> int: ...
    async def guest_file_read(
        self, *, handle: int, count: int | None = None
    ) -> FileRead: ...
    async def guest_file_write(
        self, *, handle: int, buf_b64: str, count: int | None = None
    ) -> FileWrite: ...
    async def guest_file_seek(
        self, *, handle: int, offset: int, whence: int
    ) -> FileSeek: ...
    async def guest_file_flush(self, *, handle: int) -> None: ...
    async def guest_file_close(self, *, handle: int) -> None: ...


class SyncInfoClient(Protocol):
    def guest_get_osinfo(self) -> OSInfo: ...
    def guest_get_host_name(self) -> HostName: ...
    def guest_get_timezone(self) -> Timezone: ...


class AsyncInfoClient(Protocol):
    async def guest_get_osinfo(self) -> OSInfo: ...
    async def guest_get_host_name(self) -> HostName: ...
    async def guest_get_timezone(self) -> Timezone: ...


# -- guest-exec ---------------------------------------------------------------


@dataclass(frozen=True)
class ExecResult:
    """How a guest process ended and what it wrote (all of it, or as much as the
    agent keeps: `stdout_truncated` / `stderr_truncated` say when it cut)."""

    exitcode: int | None  # None when a signal ended it
    signal: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exitcode == 0


def _exec_arguments(
    args: Sequence[str], input: bytes | None
) -> tuple[list[str] | None, str | None]:
    data = None if input is None else base64.b64encode(input).decode("ascii")
    return (list(args) if args else None), data


def _result(status: ExecStatus) -> ExecResult:
    return ExecResult(
        exitcode=status.exitcode,
        signal=status.signal,
        stdout=base64.b64decode(status.out_data or ""),
        stderr=base64.b64decode(status.err_data or ""),
        stdout_truncated=bool(status.out_truncated),
        stderr_truncated=bool(status.err_truncated),
    )


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _check_deadline(deadline: float | None, path: str, pid: int) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise QMPTimeoutError(f"guest process {pid} ({path}) still runs")


def run(
    client: SyncExecClient,
    path: str,
    args: Sequence[str] = (),
    *,
    input: bytes | None = None,
    timeout: float | None = 60.0,
) -> ExecResult:
    """Run `path` with `args` in the guest, feed it `input`, wait for it to end and
    return what it wrote; QMPTimeoutError when it runs longer than `timeout`
    seconds (it is left running)."""
    arg, data = _exec_arguments(args, input)
    started = client.guest_exec(
        path=path, arg=arg, input_data=data, capture_output=True
    )
    deadline = _deadline(timeout)
    interval = DEFAULT_POLL_INTERVAL
    while True:
        status = client.guest_exec_status(pid=started.pid)
        if status.exited:
            return _result(status)
        _check_deadline(deadline, path, started.pid)
        time.sleep(interval)
        interval = min(2 * interval, _MAX_POLL_INTERVAL)


async def run_async(
    client: AsyncExecClient,
    path: str,
    args: Sequence[str] = (),
    *,
    input: bytes | None = None,
    timeout: float | None = 60.0,
) -> ExecResult:
    """`run` over an asynchronous client."""
    import asyncio  # here: a program of blocking calls does not load asyncio

    arg, data = _exec_arguments(args, input)
    started = await client.guest_exec(
        path=path, arg=arg, input_data=data, capture_output=True
    )
    deadline = _deadline(timeout)
    interval = DEFAULT_POLL_INTERVAL
    while True:
        status = await client.guest_exec_status(pid=started.pid)
        if status.exited:
            return _result(status)
        _check_deadline(deadline, path, started.pid)
        await asyncio.sleep(interval)
        interval = min(2 * interval, _MAX_POLL_INTERVAL)


# -- guest files --------------------------------------------------------------


def _encode(data: ReadableBuffer) -> tuple[str, int]:
    raw = memoryview(data).cast("B")
    return base64.b64encode(raw).decode("ascii"), len(raw)


class GuestFile(io.RawIOBase):
    """A file in the guest, opened with ``guest-file-open`` (`mode` as fopen's:
    "r", "w", "a", "r+", ... with "b" allowed), closed by `close` or ``with``."""

    def __init__(self, client: SyncFileClient, path: str, mode: str = "r") -> None:
        super().__init__()
        self._client = client
        self._mode = mode
        self.name = path
        self.handle = client.guest_file_open(path=path, mode=mode)

    def readable(self) -> bool:
        return "r" in self._mode or "+" in self._mode

    def writable(self) -> bool:
        return any(m in self._mode for m in "wa+")

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        reply = self._client.guest_file_read(handle=self.handle, count=len(view))
        data = base64.b64decode(reply.buf_b64)
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while True:
            reply = self._client.guest_file_read(handle=self.handle, count=READ_CHUNK)
            chunks.append(base64.b64decode(reply.buf_b64))
            if reply.eof or not reply.count:
                return b"".join(chunks)

    def write(self, data: ReadableBuffer) -> int:
        text, size = _encode(data)
        return self._client.guest_file_write(
            handle=self.handle, buf_b64=text, count=size
        ).count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._client.guest_file_seek(
            handle=self.handle, offset=offset, whence=whence
        ).position

    def tell(self) -> int:
        return self.seek(0, io.SEEK_CUR)

    def flush(self) -> None:
        if not self.closed and self.writable():
            self._client.guest_file_flush(handle=self.handle)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            super().close()
            self._client.guest_file_close(handle=self.handle)


class AsyncGuestFile:
    """`GuestFile` over an asynchronous client: ``async with await
    AsyncGuestFile.open(client, path, "w") as f: await f.write(b"...")``."""

    def __init__(self, client: AsyncFileClient, path: str, handle: int) -> None:
        self._client = client
        self.name = path
        self.handle = handle
        self.closed = False

    @classmethod
    async def open(
        cls, client: AsyncFileClient, path: str, mode: str = "r"
    ) -> AsyncGuestFile:
        return cls(client, path, await client.guest_file_open(path=path, mode=mode))

    async def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all to the end when negative); b"" at the end."""
        if size >= 0:
            reply = await self._client.guest_file_read(handle=self.handle, count=size)
            return base64.b64decode(reply.buf_b64)
        chunks = []
        while True:
            reply = await self._client.guest_file_read(
                handle=self.handle, count=READ_CHUNK
            )
            chunks.append(base64.b64decode(reply.buf_b64))
            if reply.eof or not reply.count:
                return b"".join(chunks)

    async def write(self, data: ReadableBuffer) -> int:
        text, size = _encode(data)
        reply = await self._client.guest_file_write(
            handle=self.handle, buf_b64=text, count=size
        )
        return reply.count

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        reply = await self._client.guest_file_seek(
            handle=self.handle, offset=offset, whence=whence
        )
        return reply.position

    async def flush(self) -> None:
        await self._client.guest_file_flush(handle=self.handle)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._client.guest_file_close(handle=self.handle)

    async def __aenter__(self) -> AsyncGuestFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- system information -------------------------------------------------------


@dataclass(frozen=True)
class SystemInfo:
    """What a guest is, from three commands."""

    pretty_name: str | None  # "Debian GNU/Linux 12 (bookworm)"
    kernel_release: str | None
    machine: str | None
    host_name: str
    timezone: str | None  # None where the guest has no name for it
    utc_offset: int  # seconds east of UTC


def _system_info(os: OSInfo, host: HostName, zone: Timezone) -> SystemInfo:
    return SystemInfo(
        pretty_name=os.pretty_name,
        kernel_release=os.kernel_release,
        machine=os.machine,
        host_name=host.host_name,
        timezone=zone.zone,
        utc_offset=zone.offset,
    )


def system_info(client: SyncInfoClient) -> SystemInfo:
    """``guest-get-osinfo``, ``guest-get-host-name`` and ``guest-get-timezone``."""
    return _system_info(
        client.guest_get_osinfo(),
        client.guest_get_host_name(),
        client.guest_get_timezone(),
    )


async def system_info_async(client: AsyncInfoClient) -> SystemInfo:
    """`system_info` over an asynchronous client."""
    return _system_info(
        await client.guest_get_osinfo(),
        await client.guest_get_host_name(),
        await client.guest_get_timezone(),
    )
