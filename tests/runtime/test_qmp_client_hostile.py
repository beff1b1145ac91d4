"""Both QMP clients against servers that misbehave: no answer to the negotiation,
messages that are no reply, extra replies, replies nested too deep, floods of
events, a server that does not read, QEMU's pretty-printed output."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TypeVar

import pytest

from qapigen_runtime.qmp import (
    QMPClient,
    QMPConnectionError,
    QMPProtocolError,
    QMPTimeoutError,
    SyncQMPClient,
)
from qapigen_runtime.qmp.requests import DEFAULT_COMMAND_TIMEOUT

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")

GREETING = (
    b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, '
    b'"package": ""}, "capabilities": ["oob"]}}\r\n'
)
Script = Callable[[socket.socket, "Lines"], None]


class Lines:
    """The requests a fake server reads, one line at a time."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def next(self) -> dict[str, object]:
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise ConnectionError("client left")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(line)
        assert isinstance(message, dict)
        return message


def answer(conn: socket.socket, request: dict[str, object], result: object) -> None:
    reply: dict[str, object] = {"return": result}
    if "id" in request:
        reply["id"] = request["id"]
    conn.sendall(json.dumps(reply).encode() + b"\r\n")


class FakeServer:
    """One connection at a time on a unix socket, each running `script` in a thread
    after the greeting (and, with `negotiate`, the answer to qmp_capabilities)."""

    def __init__(self, path: str, script: Script, *, negotiate: bool = True) -> None:
        self.path = path
        self.script = script
        self.negotiate = negotiate
        self.error: BaseException | None = None
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(path)
        self._listener.listen(4)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                lines = Lines(conn)
                conn.sendall(GREETING)
                if self.negotiate:
                    answer(conn, lines.next(), {})
                self.script(conn, lines)
                try:
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass
        except BaseException as error:  # reported by close()
            self.error = error

    def close(self) -> None:
        self._thread.join(timeout=30)
        self._listener.close()
        Path(self.path).unlink(missing_ok=True)
        if self.error is not None and not isinstance(self.error, ConnectionError):
            raise self.error


def _in_thread(call: Callable[[], T], timeout: float = 30.0) -> T:
    """Run `call` in a thread; fail (instead of hanging) if it does not return."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still blocked after {timeout} s"
    if failure:
        raise failure[0]
    return outcome[0]


def _run(coroutine: Coroutine[object, object, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


@pytest.fixture
def path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("h") / "fake.sock")


# -- negotiation ----------------------------------------------------------------


def _silent(conn: socket.socket, lines: Lines) -> None:
    lines.next()  # qmp_capabilities, never answered
    time.sleep(3)


def test_sync_connect_times_out_when_negotiation_is_not_answered(path: str) -> None:
    fake = FakeServer(path, _silent, negotiate=False)
    client = SyncQMPClient()
    started = time.monotonic()
    with pytest.raises(QMPTimeoutError) as timed_out:
        _in_thread(lambda: client.connect(path, timeout=0.5))
    assert time.monotonic() - started < 20
    assert "qmp_capabilities" in str(timed_out.value)
    assert not client.is_connected
    fake.close()


def test_async_connect_times_out_when_negotiation_is_not_answered(path: str) -> None:
    fake = FakeServer(path, _silent, negotiate=False)
    with pytest.raises(QMPTimeoutError):
        _run(QMPClient().connect(path, timeout=0.5))
    fake.close()


# -- messages that are no reply -----------------------------------------------------


def _answer_with(*messages: bytes) -> Script:
    def script(conn: socket.socket, lines: Lines) -> None:
        lines.next()
        conn.sendall(b"".join(messages))

    return script


UNKNOWN = b'{"foo": 1}\r\n'
SECOND_GREETING = GREETING


@pytest.mark.parametrize(
    "message", [UNKNOWN, SECOND_GREETING], ids=["unknown", "greeting"]
)
def test_sync_client_refuses_a_message_that_is_no_reply(
    path: str, message: bytes
) -> None:
    fake = FakeServer(path, _answer_with(message, b'{"return": {}}\r\n'))
    client = SyncQMPClient()
    client.connect(path, timeout=10)
    with pytest.raises(QMPProtocolError):
        client.execute("query-status")
    assert not client.is_connected
    with pytest.raises(QMPConnectionError):
        client.execute("query-status")
    fake.close()


@pytest.mark.parametrize(
    "message", [UNKNOWN, SECOND_GREETING], ids=["unknown", "greeting"]
)
def test_async_client_refuses_a_message_that_is_no_reply(
    path: str, message: bytes
) -> None:
    fake = FakeServer(path, _answer_with(message, b'{"return": {}}\r\n'))

    async def scenario() -> None:
        client = QMPClient()
        await client.connect(path, timeout=10)
        with pytest.raises(QMPProtocolError):
            await client.execute("query-status")
        assert not client.is_connected
        await client.close()

    _run(scenario())
    fake.close()


# -- extra replies --------------------------------------------------------------------


def test_sync_client_detects_an_extra_reply(path: str) -> None:
    fake = FakeServer(path, _answer_with(b'{"return": 1}\r\n{"return": 2}\r\n'))
    client = SyncQMPClient()
    client.connect(path, timeout=10)
    assert client.execute("first") == 1
    time.sleep(0.2)  # the extra reply arrives before the next command goes out
    with pytest.raises(QMPProtocolError):
        client.execute("second")
    fake.close()


def test_async_client_detects_an_extra_reply_to_pipelined_commands(path: str) -> None:
    def script(conn: socket.socket, lines: Lines) -> None:
        first, second = lines.next(), lines.next()
        answer(conn, first, "first")
        conn.sendall(b'{"return": "extra"}\r\n')
        answer(conn, second, "second")

    fake = FakeServer(path, script)

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(path, timeout=10)
            first = asyncio.ensure_future(client.execute("a"))
            second = asyncio.ensure_future(client.execute("b"))
            assert await first == "first"
            with pytest.raises(QMPProtocolError):
                await second

    _run(scenario())
    fake.close()


def test_async_client_detects_an_extra_reply_when_idle(path: str) -> None:
    fake = FakeServer(path, _answer_with(b'{"return": 1}\r\n{"return": 2}\r\n'))

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(path, timeout=10)
            assert await client.execute("first") == 1
            await asyncio.sleep(0.2)
            assert not client.is_connected
            with pytest.raises(QMPProtocolError):
                await client.execute("second")

    _run(scenario())
    fake.close()


# -- nesting --------------------------------------------------------------------------

DEEP = b'{"return": ' + b"[" * 2000 + b"]" * 2000 + b"}\r\n"


def test_sync_client_ends_cleanly_on_a_reply_nested_too_deep(path: str) -> None:
    fake = FakeServer(path, _answer_with(DEEP))
    client = SyncQMPClient()
    client.connect(path, timeout=10)
    with pytest.raises(QMPProtocolError):
        client.execute("deep")
    assert not client.is_connected
    fake.close()


def test_async_client_ends_cleanly_on_a_reply_nested_too_deep(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    fake = FakeServer(path, _answer_with(DEEP))

    async def scenario() -> None:
        client = QMPClient()
        await client.connect(path, timeout=10)
        with pytest.raises(QMPProtocolError):
            await client.execute("deep")
        assert not client.is_connected
        await client.close()

    _run(scenario())
    fake.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- events ---------------------------------------------------------------------------

EVENT_SIZE = 1024 * 1024


def _flood(count: int) -> Script:
    def script(conn: socket.socket, lines: Lines) -> None:
        request = lines.next()
        for index in range(count):
            data = json.dumps({"index": index, "blob": "e" * EVENT_SIZE})
            conn.sendall(
                b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "BIG", '
                + f'"data": {data}}}\r\n'.encode()
            )
        answer(conn, request, {})

    return script


def test_event_backlog_is_bounded_in_bytes(path: str) -> None:
    budget = 4 * EVENT_SIZE
    fake = FakeServer(path, _flood(30))

    async def scenario() -> None:
        async with QMPClient(event_backlog_bytes=budget) as client:
            await client.connect(path, timeout=10)
            await client.execute("flood")
            kept = client.clear_events()
            assert [e.data["index"] for e in kept] == list(range(27, 30))
            assert client.events_dropped == 27

    _run(scenario())
    fake.close()

    fake = FakeServer(path, _flood(30))
    with SyncQMPClient(event_backlog_bytes=budget) as client:
        client.connect(path, timeout=10)
        client.execute("flood")
        assert [e.data["index"] for e in client.clear_events()] == [27, 28, 29]
        assert client.events_dropped == 27
    fake.close()


# -- a server that does not read ----------------------------------------------------


def _deaf(conn: socket.socket, lines: Lines) -> None:
    time.sleep(4)  # reads nothing more


def test_async_writes_to_a_server_that_does_not_read_are_bounded(path: str) -> None:
    fake = FakeServer(path, _deaf)
    argument = {"data": "w" * 100_000}

    async def scenario() -> int:
        async with QMPClient() as client:
            await client.connect(path, timeout=10)
            outcomes = await asyncio.gather(
                *(client.execute("x", argument, timeout=1) for _ in range(50)),
                return_exceptions=True,
            )
            assert all(isinstance(o, QMPTimeoutError) for o in outcomes)
            return client.unsent_bytes

    unsent = _run(scenario())
    assert unsent <= 64 * 1024 + 2 * 100_100  # the high-water mark and a request
    fake.close()


def test_sync_write_to_a_server_that_does_not_read_times_out(path: str) -> None:
    fake = FakeServer(path, _deaf)
    client = SyncQMPClient()
    client.connect(path, timeout=10)
    with pytest.raises(QMPTimeoutError):
        _in_thread(lambda: client.execute("x", {"data": "w" * 10_000_000}, timeout=1))
    assert not client.is_connected  # half a request went out: the stream is lost
    fake.close()


# -- the default timeout ----------------------------------------------------------------


def _never_answers(conn: socket.socket, lines: Lines) -> None:
    lines.next()
    time.sleep(3)


def test_execute_has_a_default_timeout(path: str) -> None:
    assert QMPClient().command_timeout == DEFAULT_COMMAND_TIMEOUT
    assert SyncQMPClient().command_timeout == DEFAULT_COMMAND_TIMEOUT
    assert DEFAULT_COMMAND_TIMEOUT is not None

    fake = FakeServer(path, _never_answers)
    client = SyncQMPClient(command_timeout=0.3)
    client.connect(path, timeout=10)
    with pytest.raises(QMPTimeoutError):
        _in_thread(lambda: client.execute("never"))
    client.close()
    fake.close()

    fake = FakeServer(path, _never_answers)

    async def scenario() -> None:
        async with QMPClient(command_timeout=0.3) as client:
            await client.connect(path, timeout=10)
            with pytest.raises(QMPTimeoutError):
                await client.execute("never")

    _run(scenario())
    fake.close()


def _late(conn: socket.socket, lines: Lines) -> None:
    request = lines.next()
    time.sleep(0.6)
    answer(conn, request, "late")


def test_a_timeout_of_none_waits(path: str) -> None:
    fake = FakeServer(path, _late)
    with SyncQMPClient(command_timeout=0.1) as client:
        client.connect(path, timeout=10)
        assert client.execute("slow", timeout=None) == "late"
    fake.close()

    fake = FakeServer(path, _late)

    async def scenario() -> None:
        async with QMPClient(command_timeout=None) as client:
            await client.connect(path, timeout=10)
            assert await client.execute("slow") == "late"

    _run(scenario())
    fake.close()


# -- -qmp-pretty ------------------------------------------------------------------


def _pretty(message: object) -> bytes:
    """A message as QEMU's -qmp-pretty writes it (4-space indents, CRLF)."""
    return json.dumps(message, indent=4).replace("\n", "\r\n").encode() + b"\r\n"


PRETTY_GREETING = _pretty(
    {
        "QMP": {
            "version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""},
            "capabilities": ["oob"],
        }
    }
)


class PrettyServer(FakeServer):
    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                lines = Lines(conn)
                conn.sendall(PRETTY_GREETING)
                lines.next()
                conn.sendall(_pretty({"return": {}}))
                request = lines.next()
                event = {
                    "timestamp": {"seconds": 5, "microseconds": 6},
                    "event": "STOP",
                }
                # the event in pieces, then the reply
                payload = _pretty(event) + _pretty({"return": {"status": "paused"}})
                for start in range(0, len(payload), 7):
                    conn.sendall(payload[start : start + 7])
                assert request["execute"] == "query-status"
                while conn.recv(65536):
                    pass
        except BaseException as error:
            self.error = error


def test_both_clients_read_pretty_printed_output(path: str) -> None:
    fake = PrettyServer(path, _deaf)
    with SyncQMPClient() as client:
        client.connect(path, timeout=10)
        assert client.greeting is not None and client.greeting.capabilities == ("oob",)
        assert client.execute("query-status") == {"status": "paused"}
        assert client.wait_for("STOP", timeout=5).seconds == 5
    fake.close()

    fake = PrettyServer(path, _deaf)

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(path, timeout=10)
            assert client.oob_enabled
            assert await client.execute("query-status") == {"status": "paused"}
            assert (await client.wait_for("STOP", timeout=5)).microseconds == 6

    _run(scenario())
    fake.close()


def test_a_broken_multi_line_message_is_a_protocol_error(path: str) -> None:
    fake = FakeServer(path, _answer_with(b'{\r\n    "return": [1,\r\n    }\r\n}\r\n'))
    client = SyncQMPClient()
    client.connect(path, timeout=10)
    with pytest.raises(QMPProtocolError):
        client.execute("broken")
    fake.close()


def test_refusal_instead_of_a_greeting_is_reported(tmp_path: Path) -> None:
    path = str(tmp_path / "r.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)

    def refuse() -> None:
        conn, _ = listener.accept()
        conn.sendall(
            b'{"error": {"class": "GenericError", "desc": "too many QMP connections'
            b' (1), try again later"}}\r\n'
        )
        conn.close()

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    with pytest.raises(QMPConnectionError) as refused:
        SyncQMPClient().connect(path, timeout=10)
    assert "refused the connection: too many QMP connections" in str(refused.value)
    thread.join(10)
    listener.close()
