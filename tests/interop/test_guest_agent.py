"""The guest-agent transport and the 7.2 package against a real ``qemu-ga`` 7.2.

qemu-ga runs on the host here (``-m unix-listen``) and serves the host: every
command it reports enabled is called once where that is safe, and the others are
listed in UNSAFE with the reason. Replies are decoded strictly (a member or enum
value the 7.2 schema lacks fails), from the wire values the transport returns.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qapigen_qga import commands
from qapigen_qga import types as t
from qapigen_runtime import codec as c
from qapigen_runtime.qga import QGAClient, SyncQGAClient, helpers
from qapigen_runtime.qmp.errors import (
    CommandNotFound,
    GenericError,
    QMPError,
    QMPTimeoutError,
)
from qapigen_testing.daemons import ChannelRelay, GuestAgent

pytestmark = pytest.mark.guest_agent

UNSAFE = {
    "guest-shutdown": "powers off, halts or reboots the machine running the tests",
    "guest-suspend-disk": "suspends the machine running the tests",
    "guest-suspend-ram": "suspends the machine running the tests",
    "guest-suspend-hybrid": "suspends the machine running the tests",
    "guest-fsfreeze-freeze": "freezes the host's file systems (the test run with them)",
    "guest-fsfreeze-freeze-list": "freezes the host's file systems",
    "guest-fsfreeze-thaw": "only meaningful after a freeze, which is unsafe",
    "guest-set-user-password": "changes a user's password on the host",
    "guest-ssh-add-authorized-keys": "grants ssh access to a user of the host",
    "guest-ssh-remove-authorized-keys": "rewrites a user's authorized_keys on the host",
    "guest-set-time": "sets the host's clock (without arguments: from the RTC)",
    "guest-set-vcpus": "takes the host's CPUs on or off line",
    "guest-fstrim": "discards the free blocks of every host file system: heavy I/O",
}


@pytest.fixture(scope="module")
def agent() -> Iterator[GuestAgent]:
    with GuestAgent() as running:
        yield running


@pytest.fixture
def client(agent: GuestAgent) -> Iterator[SyncQGAClient]:
    with SyncQGAClient.connected(str(agent.socket_path)) as connected:
        yield connected


def _array_of(decode: c.Decoder[object]) -> Callable[[object], object]:
    return lambda raw: c.decode(c.array_of(decode), raw, "", True)


def _nothing(raw: object) -> object:
    assert raw == {}, raw  # a command without 'returns' answers {}
    return None


def _int(raw: object) -> int:
    return c.int_(raw, "", True)


def test_every_enabled_command_once_with_strict_replies(
    client: SyncQGAClient, tmp_path: Path
) -> None:
    typed = commands.SyncClient(client)
    info = t.GuestAgentInfo.from_wire(client.execute("guest-info"), "", True)
    assert info.version.startswith("7.2")
    enabled = {cmd.name for cmd in info.supported_commands if cmd.enabled}
    called: dict[str, object] = {"guest-info": info}

    def call(
        name: str, decode: Callable[[object], object], **arguments: object
    ) -> object:
        assert name not in called, f"{name} called twice"
        called[name] = decoded = decode(client.execute(name, arguments or None))
        return decoded

    def call_or_refused(
        name: str, refusal: str, decode: Callable[[object], object], **arguments: object
    ) -> object:
        """A command whose answer depends on the host: a reply, or an error reply
        that says why the host cannot give one."""
        try:
            return call(name, decode, **arguments)
        except GenericError as error:
            assert refusal in error.desc, error
            called[name] = error
            return error

    call("guest-ping", _nothing)
    assert call("guest-sync", _int, id=1234) == 1234
    assert call("guest-sync-delimited", _int, id=4321) == 4321
    assert isinstance(call("guest-get-time", _int), int)
    osinfo = call("guest-get-osinfo", lambda r: t.GuestOSInfo.from_wire(r, "", True))
    assert isinstance(osinfo, t.GuestOSInfo) and osinfo.machine
    call("guest-get-host-name", lambda r: t.GuestHostName.from_wire(r, "", True))
    call("guest-get-timezone", lambda r: t.GuestTimezone.from_wire(r, "", True))
    call("guest-get-users", _array_of(t.GuestUser.from_wire))
    call("guest-get-vcpus", _array_of(t.GuestLogicalProcessor.from_wire))
    call("guest-get-cpustats", _array_of(t.decode_guest_cpu_stats))
    call("guest-get-diskstats", _array_of(t.GuestDiskStatsInfo.from_wire))
    call("guest-get-disks", _array_of(t.GuestDiskInfo.from_wire))
    call("guest-get-fsinfo", _array_of(t.GuestFilesystemInfo.from_wire))
    call(
        "guest-network-get-interfaces",
        _array_of(t.GuestNetworkInterface.from_wire),
    )
    call(
        "guest-fsfreeze-status",
        lambda r: t.GuestFsfreezeStatus.from_wire(r, "", True),
    )
    blocks = _array_of(t.GuestMemoryBlock.from_wire)
    block_info = lambda r: t.GuestMemoryBlockInfo.from_wire(r, "", True)  # noqa: E731
    call("guest-get-memory-blocks", blocks)
    call("guest-get-memory-block-info", block_info)
    # no blocks: changes nothing, and still answers with the (empty) results
    assert (
        call(
            "guest-set-memory-blocks",
            _array_of(t.GuestMemoryBlockResponse.from_wire),
            **{"mem-blks": []},
        )
        == []
    )
    keys = call_or_refused(
        "guest-ssh-get-authorized-keys",
        "authorized_keys",  # a user without one: "failed to read '...'"
        lambda r: t.GuestAuthorizedKeys.from_wire(r, "", True),
        username=getpass.getuser(),
    )
    assert isinstance(keys, t.GuestAuthorizedKeys | GenericError)

    # a file: open, write, seek, read, flush, close
    path = tmp_path / "file"
    handle = call("guest-file-open", _int, path=str(path), mode="w+")
    assert isinstance(handle, int)
    written = call(
        "guest-file-write",
        lambda r: t.GuestFileWrite.from_wire(r, "", True),
        handle=handle,
        **{"buf-b64": "aGVsbG8="},
    )
    assert isinstance(written, t.GuestFileWrite) and written.count == 5
    seek = call(
        "guest-file-seek",
        lambda r: t.GuestFileSeek.from_wire(r, "", True),
        handle=handle,
        offset=1,
        whence="set",
    )
    assert isinstance(seek, t.GuestFileSeek) and seek.position == 1
    read = call(
        "guest-file-read",
        lambda r: t.GuestFileRead.from_wire(r, "", True),
        handle=handle,
        count=10,
    )
    assert isinstance(read, t.GuestFileRead) and read.buf_b64 == "ZWxsbw=="
    call("guest-file-flush", _nothing, handle=handle)
    call("guest-file-close", _nothing, handle=handle)
    assert path.read_bytes() == b"hello"

    started = call(
        "guest-exec",
        lambda r: t.GuestExec.from_wire(r, "", True),
        path="/bin/true",
    )
    assert isinstance(started, t.GuestExec)
    status = call(
        "guest-exec-status",
        lambda r: t.GuestExecStatus.from_wire(r, "", True),
        pid=started.pid,
    )
    assert isinstance(status, t.GuestExecStatus)
    while not status.exited:  # the agent forgets the process once it told its end
        status = typed.guest_exec_status(pid=started.pid)
    assert status.exitcode == 0

    safe = enabled - UNSAFE.keys()
    assert set(called) == safe, "commands qemu-ga offers that this test does not call"
    assert not set(called) & UNSAFE.keys()


def test_typed_calls_and_errors_map_to_qmp_exception_classes(
    client: SyncQGAClient,
) -> None:
    typed = commands.SyncClient(client)
    assert typed.guest_sync(id=7) == 7
    with pytest.raises(GenericError, match="No such file or directory"):
        typed.guest_file_open(path="/nonexistent/qapigen")
    with pytest.raises(CommandNotFound, match="guest-bogus has not been found"):
        client.execute("guest-bogus")
    with pytest.raises(QMPError, match="no out-of-band"):
        client.execute("guest-ping", oob=True)
    assert client.in_sync  # errors leave the stream in step
    typed.guest_ping()


def test_guest_exec_reads_back_echo(client: SyncQGAClient) -> None:
    typed = commands.SyncClient(client)
    result = helpers.run(typed, "/bin/echo", ["hello", "guest"])
    assert result.ok and result.stdout == b"hello guest\n" and result.stderr == b""
    fed = helpers.run(typed, "/bin/cat", input=b"\x00\xffbytes")
    assert fed.stdout == b"\x00\xffbytes"
    failed = helpers.run(typed, "/bin/sh", ["-c", "echo oops >&2; exit 3"])
    assert (failed.exitcode, failed.stderr) == (3, b"oops\n")


def test_guest_files_and_system_info(client: SyncQGAClient, tmp_path: Path) -> None:
    typed = commands.SyncClient(client)
    path = tmp_path / "data.bin"
    data = os.urandom(200_000)
    with helpers.GuestFile(typed, str(path), "wb+") as guest_file:
        assert guest_file.write(data) == len(data)
        guest_file.seek(100)
        assert guest_file.read(10) == data[100:110]
        assert guest_file.tell() == 110
    assert path.read_bytes() == data
    with helpers.GuestFile(typed, str(path), "rb") as guest_file:
        assert guest_file.readall() == data
    info = helpers.system_info(typed)
    assert info.host_name == os.uname().nodename
    assert info.machine == os.uname().machine


def test_async_client_exec_files_and_concurrent_calls(
    agent: GuestAgent, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with await QGAClient.connected(str(agent.socket_path)) as transport:
            typed = commands.AsyncClient(transport)
            # concurrent calls queue: each gets its own reply
            ids = await asyncio.gather(*(typed.guest_sync(id=n) for n in range(20)))
            assert ids == list(range(20))
            result = await helpers.run_async(typed, "/bin/echo", ["async"])
            assert result.stdout == b"async\n"
            path = tmp_path / "async.txt"
            opened = await helpers.AsyncGuestFile.open(typed, str(path), "w+")
            async with opened as guest_file:
                await guest_file.write(b"written")
                await guest_file.seek(0)
                assert await guest_file.read() == b"written"
            info = await helpers.system_info_async(typed)
            assert info.machine == os.uname().machine
            with pytest.raises(GenericError):
                await typed.guest_file_open(path="/nonexistent/qapigen")
            await typed.guest_ping()

    asyncio.run(scenario())


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_resync_after_a_half_sent_command_and_stale_bytes(
    agent: GuestAgent, tcp: bool
) -> None:
    """The channel outlives clients, as a virtio-serial one does: a client that left
    half a request in the agent's parser, and replies nobody read, do not disturb
    the next client (over a unix socket or TCP)."""
    with ChannelRelay(agent.socket_path, tcp=tcp) as relay:
        with SyncQGAClient.connected(relay.address) as first:
            commands.SyncClient(first).guest_ping()
            # a reply nobody reads (kept in the channel), then half a request
            relay.hold(True)
            relay.to_agent(b'{"execute":"guest-get-osinfo"}\n')
            relay.to_agent(b'{"execute":"guest-sync", "arguments": {"id": 9')
            relay.drop_client()
        deadline = time.monotonic() + 10
        while relay.pending() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.pending() > 0, "the agent did not answer guest-get-osinfo"
        # stale bytes of every kind on the way to the next client
        relay.to_client(b'{"return": {}}\ngarbage \x01\x02\n\xff{"return": 55}\n')
        relay.hold(False)
        with SyncQGAClient.connected(relay.address) as second:
            typed = commands.SyncClient(second)
            assert typed.guest_sync(id=10) == 10
            assert typed.guest_get_host_name().host_name == os.uname().nodename
            assert second.resyncs == 1


def test_resync_after_a_timeout(agent: GuestAgent) -> None:
    with (
        ChannelRelay(agent.socket_path) as relay,
        SyncQGAClient.connected(relay.address) as transport,
    ):
        typed = commands.SyncClient(transport)
        relay.hold(True)
        with pytest.raises(QMPTimeoutError, match="no reply to guest-sync"):
            transport.execute("guest-sync", {"id": 1}, timeout=0.2)
        assert not transport.in_sync
        relay.hold(False)  # the late reply arrives: it must not be taken
        assert typed.guest_sync(id=2) == 2
        assert transport.resyncs == 2


def test_async_resync_after_a_timeout_and_a_cancellation(agent: GuestAgent) -> None:
    async def scenario(relay: ChannelRelay) -> None:
        async with await QGAClient.connected(relay.address) as transport:
            typed = commands.AsyncClient(transport)
            relay.hold(True)
            with pytest.raises(QMPTimeoutError):
                await transport.execute("guest-sync", {"id": 1}, timeout=0.2)
            task = asyncio.create_task(typed.guest_sync(id=2))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            relay.hold(False)
            assert await typed.guest_sync(id=3) == 3
            assert transport.resyncs == 2

    with ChannelRelay(agent.socket_path, tcp=True) as relay:
        asyncio.run(scenario(relay))
