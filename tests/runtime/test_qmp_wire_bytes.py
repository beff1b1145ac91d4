"""What the QMP clients put on the wire and how they read it back: compact requests,
no "arguments" member when there are none, in-band requests without an id when
alone (matched by order) and with small ids when others are in flight, out-of-band
ones with small ids; replies split across reads, several in
one read, and larger than the receive buffer."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from qapigen_runtime.qmp import (
    QMPClient,
    QMPMessageTooLargeError,
    QMPTimeoutError,
    SyncQMPClient,
)

pytestmark = pytest.mark.timeout(60)

GREETING = (
    b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, '
    b'"package": ""}, "capabilities": ["oob"]}}\r\n'
)

Script = Callable[[socket.socket, "Requests"], None]


class Requests:
    """Reads the client's requests off the connection, each as the bytes sent."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""
        self.raw: list[bytes] = []

    def next(self) -> dict[str, object]:
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise ConnectionError("client left")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.raw.append(line + b"\n")
        message = json.loads(line)
        assert isinstance(message, dict)
        return message


class FakeQemu:
    """One connection: greeting, negotiation answered, then `script` runs."""

    def __init__(self, path: str, script: Script) -> None:
        self.path = path
        self.script = script
        self.requests: Requests | None = None
        self.error: BaseException | None = None
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(path)
        self._listener.listen(1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                self.requests = requests = Requests(conn)
                conn.sendall(GREETING)
                requests.next()  # qmp_capabilities
                conn.sendall(b'{"return": {}}\r\n')
                self.script(conn, requests)
                try:
                    conn.recv(1)  # until the client leaves
                except ConnectionResetError:
                    pass  # it left without reading everything
        except BaseException as error:  # reported by close()
            self.error = error

    def close(self) -> list[bytes]:
        """The raw requests after negotiation; raises what the script raised."""
        self._thread.join(timeout=20)
        self._listener.close()
        Path(self.path).unlink(missing_ok=True)
        if self.error is not None:
            raise self.error
        assert self.requests is not None
        return self.requests.raw[1:]


def _answer_in_order(count: int, reply: Callable[[dict[str, object]], bytes]) -> Script:
    def script(conn: socket.socket, requests: Requests) -> None:
        for _ in range(count):
            conn.sendall(reply(requests.next()))

    return script


def _echo(request: dict[str, object]) -> bytes:
    message: dict[str, object] = {"return": request.get("arguments", "none")}
    if "id" in request:
        message["id"] = request["id"]
    return json.dumps(message).encode() + b"\r\n"


def test_requests_are_compact_without_empty_arguments(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sock")
    fake = FakeQemu(path, _answer_in_order(3, _echo))

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(path)
            assert await client.execute("query-migrate-parameters") == "none"
            assert await client.execute("migrate", {"uri": "tcp:0:4"}) == {
                "uri": "tcp:0:4"
            }
            assert await client.execute("x-ping", {"n": 1}, oob=True) == {"n": 1}

    asyncio.run(scenario())
    async_sent = fake.close()

    fake = FakeQemu(path, _answer_in_order(3, _echo))
    with SyncQMPClient() as client:
        client.connect(path)
        assert client.execute("query-migrate-parameters") == "none"
        assert client.execute("migrate", {"uri": "tcp:0:4"}) == {"uri": "tcp:0:4"}
        assert client.execute("x-ping", {"n": 1}, oob=True) == {"n": 1}
    sync_sent = fake.close()

    expected = [
        b'{"execute":"query-migrate-parameters"}\n',
        b'{"execute":"migrate","arguments":{"uri":"tcp:0:4"}}\n',
        b'{"exec-oob":"x-ping","arguments":{"n":1},"id":1}\n',
    ]
    assert async_sent == expected
    assert sync_sent == expected


def _reply(request: dict[str, object], result: object) -> bytes:
    """A reply as QEMU sends it: the request's id echoed when it had one."""
    message: dict[str, object] = {"return": result}
    if "id" in request:
        message["id"] = request["id"]
    return json.dumps(message).encode() + b"\r\n"


def test_in_band_replies_match_by_order_out_of_band_by_id(tmp_path: Path) -> None:
    """Out-of-band replies overtake in-band ones; in-band requests sent while others
    are in flight carry ids; a timed-out command's late reply is dropped and the
    next command gets its own."""

    def script(conn: socket.socket, requests: Requests) -> None:
        slow = requests.next()  # in band: answered last
        oob = requests.next()
        conn.sendall(b'{"return": "oob", "id": %d}\r\n' % int(str(oob["id"])))
        fast = requests.next()  # in band, behind `slow`
        late = requests.next()  # in band, times out on the client
        # sent while others were in flight, they carry ids (the first did not)
        assert "id" not in slow and "id" in fast and "id" in late
        conn.sendall(
            b'{"return": "slow"}\r\n'
            + _reply(fast, "fast")
            + b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "E"}\r\n'
        )
        assert (slow["execute"], fast["execute"], late["execute"]) == ("a", "b", "c")
        after = requests.next()
        conn.sendall(_reply(late, "late") + _reply(after, after["execute"]))

    path = str(tmp_path / "q.sock")
    fake = FakeQemu(path, script)

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(path)
            slow = asyncio.ensure_future(client.execute("a"))
            await asyncio.sleep(0.01)
            assert await client.execute("p", oob=True) == "oob"
            fast = asyncio.ensure_future(client.execute("b"))
            await asyncio.sleep(0.01)  # "b" goes out before "c"
            with pytest.raises(QMPTimeoutError):
                await client.execute("c", timeout=0.2)
            assert (await slow, await fast) == ("slow", "fast")
            assert await client.execute("d") == "d"
            event = await client.wait_for("E", timeout=5)
            assert (event.seconds, event.microseconds) == (1, 2)

    asyncio.run(scenario())
    fake.close()


def _big_reply(size: int) -> Script:
    def script(conn: socket.socket, requests: Requests) -> None:
        requests.next()
        payload = json.dumps({"return": "x" * size}).encode() + b"\r\n"
        # in pieces, the last one with a second reply behind it
        for start in range(0, len(payload), 7001):
            conn.sendall(payload[start : start + 7001])
        requests.next()
        conn.sendall(b'{"return": 1}\r\n{"timestamp": {"seconds": 3, "microse')
        conn.sendall(b'conds": 4}, "event": "LATE"}\r\n')

    return script


@pytest.mark.parametrize("size", [10, 70_000, 300_000])
def test_replies_in_pieces_and_larger_than_the_buffer(
    tmp_path: Path, size: int
) -> None:
    path = str(tmp_path / "q.sock")
    fake = FakeQemu(path, _big_reply(size))

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(path)
            assert await client.execute("big") == "x" * size
            assert await client.execute("small") == 1
            event = await client.wait_for("LATE", timeout=5)
            assert event.seconds == 3

    asyncio.run(scenario())
    fake.close()

    fake = FakeQemu(path, _big_reply(size))
    with SyncQMPClient() as client:
        client.connect(path)
        assert client.execute("big") == "x" * size
        assert client.execute("small") == 1
        assert client.wait_for("LATE", timeout=5).microseconds == 4
    fake.close()


def test_a_message_over_the_limit_is_refused_before_it_ends(tmp_path: Path) -> None:
    def script(conn: socket.socket, requests: Requests) -> None:
        requests.next()
        try:
            conn.sendall(b'{"return": "' + b"y" * 200_000)
        except OSError:
            pass  # the client gave up first

    path = str(tmp_path / "q.sock")
    fake = FakeQemu(path, script)

    async def scenario() -> None:
        client = QMPClient(max_message_size=50_000)
        await client.connect(path)
        with pytest.raises(QMPMessageTooLargeError):
            await client.execute("big", timeout=10)
        await client.close()

    asyncio.run(scenario())
    fake.close()

    fake = FakeQemu(path, script)
    sync_client = SyncQMPClient(max_message_size=50_000)
    sync_client.connect(path)
    with pytest.raises(QMPMessageTooLargeError):
        sync_client.execute("big", timeout=10)
    sync_client.close()
    fake.close()


def test_typed_events_over_the_blocking_client(tmp_path: Path) -> None:
    """The generated `typed_events_sync` decodes what the sync client queued and what
    arrives next, skips events the schema lacks, and stops after `timeout`."""
    from qapigen_migration.events import (
        MigrationEvent,
        MigrationPassEvent,
        typed_events_sync,
    )
    from qapigen_migration.types import MigrationStatus

    def script(conn: socket.socket, requests: Requests) -> None:
        requests.next()
        stamp = b'{"timestamp": {"seconds": 5, "microseconds": 6}, '
        conn.sendall(
            stamp + b'"event": "MIGRATION", "data": {"status": "active"}}\r\n'
            b'{"return": {}}\r\n'
            + stamp
            + b'"event": "FROM_A_NEWER_QEMU"}\r\n'
            + stamp
            + b'"event": "MIGRATION_PASS", "data": {"pass": 2}}\r\n'
        )

    path = str(tmp_path / "q.sock")
    fake = FakeQemu(path, script)
    with SyncQMPClient() as client:
        client.connect(path)
        assert client.execute("query-status") == {}
        events = list(typed_events_sync(client, timeout=0.5))
        assert [type(event) for event in events] == [MigrationEvent, MigrationPassEvent]
        first = events[0]
        assert isinstance(first, MigrationEvent)
        assert first.status is MigrationStatus.ACTIVE
        assert client.clear_events() == []
    fake.close()
