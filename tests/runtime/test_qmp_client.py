"""The asyncio and blocking QMP clients against QMPServer and scripted fake servers:
ids, concurrency, timeouts, disconnects, events, limits, negotiation, fd passing."""

from __future__ import annotations

import array
import asyncio
import gc
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qapigen_runtime.qmp import (
    AsyncTransport,
    CommandNotFound,
    QMPClient,
    QMPCommandError,
    QMPConnectionError,
    QMPDisconnectedError,
    QMPMessageTooLargeError,
    QMPNegotiationError,
    QMPTimeoutError,
    SyncQMPClient,
    SyncTransport,
)
from qapigen_testing.qmp_fixtures import ServerThread

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(str(tmp_path / "qmp.sock")) as running:
        yield running


GREETING = b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}\r\n'


class FakeServer:
    """A one-connection unix server running `script(conn)` in a thread."""

    def __init__(self, path: str, script: Callable[[socket.socket], None]) -> None:
        self.path = path
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(path)
        self._listener.listen(1)
        self._script = script
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                self._script(conn)
        except BaseException as error:  # reported by close()
            self.error = error

    def close(self) -> None:
        self._thread.join(timeout=10)
        self._listener.close()
        if self.error is not None:
            raise self.error


def _read_line(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    """One request line and the fds that came with it."""
    data = b""
    fds: list[int] = []
    while not data.endswith(b"\n"):
        chunk, ancillary, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(16))
        if not chunk:
            raise ConnectionError("client left")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % 4])
                fds.extend(received)
        data += chunk
    message = json.loads(data)
    assert isinstance(message, dict)
    return message, fds


def _answer(conn: socket.socket, request: dict[str, object], result: object) -> None:
    reply = {"return": result}
    if "id" in request:  # QEMU echoes the id when there is one
        reply["id"] = request["id"]
    conn.sendall(json.dumps(reply).encode() + b"\r\n")


def test_many_commands_in_flight_are_matched_by_id(server: ServerThread) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(server.address)
            calls = []
            for n in range(300):
                if n % 3 == 0:
                    calls.append(client.execute("ping", oob=True))
                else:
                    calls.append(client.execute("echo", {"n": n}))
            replies = await asyncio.gather(*calls)
            for n, reply in enumerate(replies):
                expected: dict[str, object] = {"pong": True} if n % 3 == 0 else {"n": n}
                assert reply == expected

    asyncio.run(scenario())


def test_command_timeout_leaves_connection_usable(server: ServerThread) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(server.address)
            with pytest.raises(QMPTimeoutError) as timed_out:
                await client.execute("sleep", {"seconds": 0.5}, timeout=0.05)
            assert isinstance(timed_out.value, TimeoutError)
            # the late reply arrives and is dropped; the next command gets its own
            assert await client.execute("echo", {"after": 1}) == {"after": 1}

    asyncio.run(scenario())
    with SyncQMPClient() as client:
        client.connect(server.address)
        with pytest.raises(QMPTimeoutError):
            client.execute("sleep", {"seconds": 0.5}, timeout=0.05)
        assert client.execute("echo", {"after": 2}) == {"after": 2}


def test_disconnect_fails_pending_commands(server: ServerThread) -> None:
    async def scenario() -> None:
        client = QMPClient()
        await client.connect(server.address)
        pending = asyncio.ensure_future(client.execute("sleep", {"seconds": 1}))
        events = client.events()
        await asyncio.sleep(0.1)
        assert server.server is not None
        server.call(server.server.close())
        with pytest.raises(QMPDisconnectedError):
            await pending
        assert [event async for event in events] == []  # the iterator ends
        with pytest.raises(QMPDisconnectedError):
            await client.execute("ping")
        with pytest.raises(QMPDisconnectedError):
            await client.wait_for("NEVER")
        await client.close()

    asyncio.run(scenario())


def test_sync_client_sees_disconnect(tmp_path: Path) -> None:
    with ServerThread(str(tmp_path / "q.sock")) as server:
        client = SyncQMPClient()
        client.connect(server.address)
        assert server.server is not None
        server.call(server.server.close())
        with pytest.raises(QMPDisconnectedError):
            client.execute("ping")
        assert not client.is_connected


def test_connect_failures_are_connection_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "nobody.sock")
    with pytest.raises(QMPDisconnectedError):
        SyncQMPClient().connect(missing)

    async def scenario() -> None:
        with pytest.raises(QMPConnectionError):
            await QMPClient().connect(missing)

    asyncio.run(scenario())


def test_events_iterator_and_wait_for(server: ServerThread) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(server.address)
            await client.execute("emit", {"event": "A", "count": 3})
            await client.execute("emit", {"event": "B", "count": 1})
            # wait_for takes the matching event and leaves the others queued
            b = await client.wait_for("B", timeout=5)
            assert b.name == "B" and b.seconds > 0
            second = await client.wait_for(
                "A", lambda e: e.data.get("index") == 1, timeout=5
            )
            assert second.data == {"index": 1}
            names = []
            async for event in client.events():
                names.append((event.name, event.data["index"]))
                if len(names) == 2:
                    break
            assert names == [("A", 0), ("A", 2)]
            with pytest.raises(QMPTimeoutError):
                await client.wait_for("A", timeout=0.05)
            # a waiter registered before the event arrives gets it
            waiting = asyncio.ensure_future(client.wait_for("LATER", timeout=5))
            await asyncio.sleep(0.01)
            await client.execute("emit", {"event": "LATER"})
            assert (await waiting).name == "LATER"

    asyncio.run(scenario())


def test_event_backlog_is_bounded(server: ServerThread) -> None:
    async def scenario() -> None:
        async with QMPClient(event_backlog=5) as client:
            await client.connect(server.address)
            await client.execute("emit", {"event": "E", "count": 12})
            kept = client.clear_events()
            assert [e.data["index"] for e in kept] == [7, 8, 9, 10, 11]
            assert client.events_dropped == 7

    asyncio.run(scenario())


def test_sync_client_events(server: ServerThread) -> None:
    with SyncQMPClient() as client:
        client.connect(server.address)
        client.execute("emit", {"event": "A", "count": 2})
        client.execute("emit", {"event": "B"})
        assert client.wait_for("B", timeout=5).name == "B"
        assert [e.data["index"] for e in client.events(timeout=0.05)] == [0, 1]
        with pytest.raises(QMPTimeoutError):
            client.wait_for("NOPE", timeout=0.05)
        assert client.execute("ping", oob=True) == {"pong": True}


def test_oversized_reply_is_refused(server: ServerThread) -> None:
    big = {"s": "x" * 5000}

    async def scenario() -> None:
        client = QMPClient(max_message_size=1000)
        await client.connect(server.address)
        with pytest.raises(QMPMessageTooLargeError):
            await client.execute("echo", big)
        with pytest.raises(QMPConnectionError):
            await client.execute("ping")
        await client.close()

    asyncio.run(scenario())
    client = SyncQMPClient(max_message_size=1000)
    client.connect(server.address)
    with pytest.raises(QMPMessageTooLargeError):
        client.execute("echo", big)
    assert not client.is_connected


def test_command_errors_keep_class_and_desc(server: ServerThread) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(server.address)
            with pytest.raises(CommandNotFound) as missing:
                await client.execute("nonexistent")
            assert str(missing.value) == (
                "CommandNotFound: The command nonexistent has not been found"
            )
            with pytest.raises(QMPCommandError) as novel:
                await client.execute("fail", {"class": "Brand-New", "desc": "d"})
            assert (novel.value.error_class, novel.value.desc) == ("Brand-New", "d")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "first_message",
    [b'{"hello": 1}\r\n', b"not json\r\n"],
    ids=["not a greeting", "not json"],
)
def test_bad_greeting_fails_negotiation(tmp_path: Path, first_message: bytes) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(first_message)
        conn.recv(1)  # wait for the client to give up

    path = str(tmp_path / "fake.sock")
    fake = FakeServer(path, script)
    with pytest.raises(QMPConnectionError):
        SyncQMPClient().connect(path, timeout=5)
    fake.close()


def test_refused_capabilities_fail_negotiation(tmp_path: Path) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(GREETING)
        request, _ = _read_line(conn)
        error = {"class": "GenericError", "desc": "no"}
        reply = {"error": error, **({"id": request["id"]} if "id" in request else {})}
        conn.sendall(json.dumps(reply).encode() + b"\n")
        conn.recv(1)

    path = str(tmp_path / "fake.sock")
    fake = FakeServer(path, script)

    async def scenario() -> None:
        with pytest.raises(QMPNegotiationError):
            await QMPClient().connect(path, timeout=5)

    asyncio.run(scenario())
    fake.close()


def _fd_receiving_server(path: str, received: list[int]) -> FakeServer:
    def script(conn: socket.socket) -> None:
        conn.sendall(GREETING)
        request, _ = _read_line(conn)
        assert request["arguments"] == {}  # no oob offered, none asked
        _answer(conn, request, {})
        request, fds = _read_line(conn)
        assert request["execute"] == "getfd"
        received.extend(fds)
        _answer(conn, request, {})
        conn.recv(1)

    return FakeServer(path, script)


def _check_passed_fd(received: list[int], read_end: int) -> None:
    assert len(received) == 1
    os.write(received[0], b"through SCM_RIGHTS")
    os.close(received[0])
    assert os.read(read_end, 100) == b"through SCM_RIGHTS"


def test_fd_passing_with_scm_rights(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        received: list[int] = []
        fake = _fd_receiving_server(str(tmp_path / "a.sock"), received)

        async def scenario() -> None:
            async with QMPClient() as client:
                await client.connect(fake.path)
                assert not client.oob_enabled
                assert (
                    await client.execute("getfd", {"fdname": "f"}, fds=[write_end])
                    == {}
                )

        asyncio.run(scenario())
        fake.close()
        _check_passed_fd(received, read_end)

        received.clear()
        fake = _fd_receiving_server(str(tmp_path / "s.sock"), received)
        with SyncQMPClient() as client:
            client.connect(fake.path)
            assert client.execute("getfd", {"fdname": "f"}, fds=[write_end]) == {}
        fake.close()
        _check_passed_fd(received, read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


async def _typed_layer_call(transport: AsyncTransport) -> object:
    """What generated code does: wire name, JSON arguments, wire reply."""
    return await transport.execute("echo", {"typed": True})


def _typed_layer_call_sync(transport: SyncTransport) -> object:
    return transport.execute("echo", {"typed": True})


def test_clients_are_transports(server: ServerThread) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(server.address)
            assert await _typed_layer_call(client) == {"typed": True}

    asyncio.run(scenario())
    with SyncQMPClient() as client:
        client.connect(server.address)
        assert _typed_layer_call_sync(client) == {"typed": True}


def test_qemu_qmp_adapter_over_own_server(server: ServerThread) -> None:
    qmp = pytest.importorskip("qemu.qmp")
    from qapigen_runtime.qmp.qemu_qmp_adapter import QemuQmpTransport

    async def scenario() -> None:
        raw = qmp.QMPClient("adapter")
        await raw.connect(server.address)
        try:
            transport = QemuQmpTransport(raw)
            assert await _typed_layer_call(transport) == {"typed": True}
            with pytest.raises(CommandNotFound):
                await transport.execute("nonexistent")
            with pytest.raises(QMPCommandError) as novel:
                await transport.execute("fail", {"class": "X-New", "desc": "d"})
            assert (novel.value.error_class, novel.value.desc) == ("X-New", "d")
            await transport.execute("emit", {"event": "A", "count": 2})
            second = await transport.wait_for(
                "A", lambda e: e.data["index"] == 1, timeout=5
            )
            assert second.data == {"index": 1}
            first = await anext(aiter(transport.events()))
            assert first.data == {"index": 0}
        finally:
            await raw.disconnect()

    asyncio.run(scenario())


def test_sync_events_without_waiting_reads_what_arrived(server: ServerThread) -> None:
    with SyncQMPClient() as listener, SyncQMPClient() as trigger:
        listener.connect(server.address)
        trigger.connect(server.address)
        trigger.execute("emit", {"event": "X", "count": 2})
        deadline = time.monotonic() + 5
        seen: list[int] = []
        while len(seen) < 2 and time.monotonic() < deadline:
            seen += [int(str(e.data["index"])) for e in listener.events(timeout=0)]
        assert seen == [0, 1]


def test_clients_reconnect_after_a_disconnect(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sock")
    sync_client, async_client = SyncQMPClient(), QMPClient()
    loop = asyncio.new_event_loop()  # one loop for the async client's whole life
    try:
        with ServerThread(path) as server:
            sync_client.connect(server.address)
            loop.run_until_complete(async_client.connect(server.address))
            with pytest.raises(QMPConnectionError):  # already connected
                loop.run_until_complete(async_client.connect(server.address))
            with pytest.raises(QMPConnectionError):
                sync_client.connect(server.address)
        with pytest.raises(QMPDisconnectedError):
            sync_client.execute("ping")
        with pytest.raises(QMPDisconnectedError):
            loop.run_until_complete(async_client.execute("ping"))
        with ServerThread(path) as server:
            sync_client.connect(server.address)
            assert sync_client.execute("ping") == {"pong": True}
            sync_client.close()
            loop.run_until_complete(async_client.connect(server.address))
            assert loop.run_until_complete(async_client.execute("ping")) == {
                "pong": True
            }
            loop.run_until_complete(async_client.close())
    finally:
        loop.close()


def test_failed_connect_leaves_no_unretrieved_future(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A failed connect() used to leave an exception on the greeting future that asyncio
    # then reported as "Future exception was never retrieved" on stderr.
    async def attempt() -> None:
        client = QMPClient()
        with pytest.raises(QMPConnectionError):
            await client.connect(str(tmp_path / "missing.sock"))

    asyncio.run(attempt())
    gc.collect()
    assert "never retrieved" not in caplog.text
