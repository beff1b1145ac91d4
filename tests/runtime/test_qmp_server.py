"""QMPServer against its own clients and a raw socket: QEMU's negotiation and error
texts, out-of-band execution, events, many clients, and hostile clients."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen_runtime.qmp import (
    DeviceNotFound,
    GenericError,
    QMPClient,
    QMPCommandError,
    SyncQMPClient,
)
from qapigen_runtime.qmp.json_stream import JsonInputError, JsonStreamParser
from qapigen_testing.qmp_fixtures import (
    OBSERVED_AFTER_NEGOTIATION,
    OBSERVED_BEFORE_NEGOTIATION,
    OBSERVED_WITHOUT_OOB,
    STATUS,
    Observed,
    RawQMP,
    ServerThread,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    path = str(tmp_path_factory.mktemp("qmp") / "shared.sock")
    with ServerThread(path) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(str(tmp_path / "qmp.sock")) as running:
        yield running


def test_greeting_announces_version_and_oob(shared_server: ServerThread) -> None:
    raw = RawQMP(shared_server.address)
    try:
        assert raw.greeting == {
            "QMP": {
                "version": {
                    "qemu": {"micro": 0, "minor": 2, "major": 7},
                    "package": "qapigen",
                },
                "capabilities": ["oob"],
            }
        }
    finally:
        raw.close()


def test_negotiation_mode_refuses_like_qemu(shared_server: ServerThread) -> None:
    raw = RawQMP(shared_server.address)
    try:
        for case in OBSERVED_BEFORE_NEGOTIATION:
            raw.send(case.data)
            assert [raw.read() for _ in case.replies] == case.replies, case.label
        raw.negotiate(oob=True)
        assert raw.exchange(b'{"execute":"query-status","id":1}') == [
            {"return": STATUS, "id": 1}
        ]
    finally:
        raw.close()


@pytest.mark.parametrize("case", OBSERVED_AFTER_NEGOTIATION, ids=lambda c: c.label)
def test_bad_input_answered_like_qemu(
    shared_server: ServerThread, case: Observed
) -> None:
    raw = RawQMP(shared_server.address)
    try:
        raw.negotiate(oob=True)
        assert raw.exchange(case.data) == case.replies
        # and the connection keeps working afterwards
        assert raw.exchange(b'{"execute":"ping","id":9}\n') == [
            {"return": {"pong": True}, "id": 9}
        ]
    finally:
        raw.close()


@pytest.mark.parametrize("case", OBSERVED_WITHOUT_OOB, ids=lambda c: c.label)
def test_oob_refused_unless_negotiated(
    shared_server: ServerThread, case: Observed
) -> None:
    raw = RawQMP(shared_server.address)
    try:
        raw.negotiate(oob=False)
        assert raw.exchange(case.data) == case.replies
    finally:
        raw.close()


def test_query_commands_lists_dispatcher_and_builtins(
    shared_server: ServerThread,
) -> None:
    with SyncQMPClient() as client:
        client.connect(shared_server.address)
        reply = client.execute("query-commands")
        assert isinstance(reply, list)
        names = {entry["name"] for entry in reply}
        assert names == set(shared_server.dispatcher.command_names()) | {
            "qmp_capabilities",
            "query-commands",
        }


def test_oob_command_overtakes_slow_in_band_command(server: ServerThread) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(server.address)
            assert client.oob_enabled
            done: list[str] = []

            async def run(name: str, oob: bool, arguments: dict[str, object]) -> None:
                await client.execute(name, arguments, oob=oob)
                done.append(name)

            await asyncio.gather(
                run("sleep", False, {"seconds": 0.3}),
                run("echo", False, {}),  # in-band: waits behind sleep
                run("ping", True, {}),  # out-of-band: does not
            )
            assert done == ["ping", "sleep", "echo"]

    asyncio.run(scenario())


def test_events_reach_every_negotiated_client(server: ServerThread) -> None:
    async def scenario() -> None:
        clients = [QMPClient() for _ in range(3)]
        for client in clients:
            await client.connect(server.address)
        idle = RawQMP(server.address)  # connected, never negotiated
        try:
            await clients[0].execute("emit", {"event": "HELLO", "count": 2})
            for client in clients:
                first = await client.wait_for("HELLO", timeout=5)
                second = await client.wait_for("HELLO", timeout=5)
                assert (first.data, second.data) == ({"index": 0}, {"index": 1})
            idle.send(b'{"execute":"qmp_capabilities","id":1}')
            assert idle.read() == {"return": {}, "id": 1}  # no event came before
        finally:
            idle.close()
            for client in clients:
                await client.close()

    asyncio.run(scenario())


def test_many_clients_at_once(server: ServerThread) -> None:
    async def one_client(index: int) -> int:
        async with QMPClient() as client:
            await client.connect(server.address)
            replies = await asyncio.gather(
                *(client.execute("echo", {"c": index, "n": n}) for n in range(100))
            )
            assert replies == [{"c": index, "n": n} for n in range(100)]
            return len(replies)

    async def scenario() -> None:
        counts = await asyncio.gather(*(one_client(i) for i in range(32)))
        assert sum(counts) == 3200

    asyncio.run(scenario())


def _session_count(server: ServerThread) -> int:
    async def count() -> int:
        assert server.server is not None
        return len(server.server.sessions)

    return server.call(count())


def test_disconnect_mid_message_leaves_others_alone(server: ServerThread) -> None:
    with SyncQMPClient() as steady:
        steady.connect(server.address)
        for _ in range(5):
            rude = RawQMP(server.address)
            rude.negotiate()
            rude.send(b'{"execute":"echo","arguments":{"half":')
            rude.close()
        # a client that leaves while its command runs
        leaving = RawQMP(server.address)
        leaving.negotiate()
        leaving.send(b'{"execute":"sleep","arguments":{"seconds":0.2}}')
        leaving.close()
        assert steady.execute("echo", {"still": "here"}) == {"still": "here"}
        time.sleep(0.4)
        assert steady.execute("ping") == {"pong": True}
    deadline = time.monotonic() + 5
    while _session_count(server) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _session_count(server) == 0


def test_client_that_never_reads_cannot_hold_memory(tmp_path: Path) -> None:
    limit = 64 * 1024
    with ServerThread(str(tmp_path / "q.sock"), event_backlog_bytes=limit) as server:
        sleeper = socket.socket(socket.AF_UNIX)
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleeper.connect(str(server.address))
        sleeper.sendall(b'{"execute":"qmp_capabilities"}\n')

        async def scenario() -> tuple[int, int]:
            async with QMPClient(event_backlog=100_000) as client:
                await client.connect(server.address)
                # ~1.4 MB of events: more than socket buffers and the limit hold
                for _ in range(150):
                    await client.execute("emit", {"event": "FLOOD", "count": 100})
                return len(client.clear_events()), client.events_dropped

        try:
            assert asyncio.run(scenario()) == (15000, 0)  # the reader lost nothing

            async def sleeper_state() -> tuple[int, int]:
                assert server.server is not None
                (session,) = [s for s in server.server.sessions if s.dropped_events]
                return session.dropped_events, session.unsent_bytes

            dropped, buffered = server.call(sleeper_state())
            assert dropped > 0
            assert buffered <= limit + 200  # one event past the limit at most
        finally:
            sleeper.close()


def test_input_limits_refuse_and_keep_serving(tmp_path: Path) -> None:
    with ServerThread(
        str(tmp_path / "q.sock"), max_value_size=1024, max_depth=8
    ) as server:
        raw = RawQMP(server.address)
        try:
            raw.negotiate()
            huge = b'{"execute":"echo","arguments":{"s":"' + b"x" * 4000 + b'"}}\n'
            replies = raw.exchange(huge)
            assert replies[0] == {
                "error": {
                    "class": "GenericError",
                    "desc": "JSON token size limit exceeded",
                }
            }
            deep = (
                b'{"execute":"echo","arguments":{"a":' + b"[" * 8 + b"]" * 8 + b"}}\n"
            )
            assert raw.exchange(deep)[0] == {
                "error": {
                    "class": "GenericError",
                    "desc": "JSON nesting depth limit exceeded",
                }
            }
            assert raw.exchange(b'{"execute":"echo","arguments":{"ok":1},"id":1}') == [
                {"return": {"ok": 1}, "id": 1}
            ]
        finally:
            raw.close()


def test_streamed_huge_string_is_cut_off_without_buffering_it(tmp_path: Path) -> None:
    with ServerThread(str(tmp_path / "q.sock"), max_value_size=64 * 1024) as server:
        raw = RawQMP(server.address)
        try:
            raw.negotiate()
            raw.send(b'{"execute":"echo","arguments":{"s":"')
            for _ in range(64):
                raw.send(b"y" * 4096)
            assert raw.read() == {
                "error": {
                    "class": "GenericError",
                    "desc": "JSON token size limit exceeded",
                }
            }
            raw.send(b'"}}\n')
            assert raw.exchange(b'{"execute":"ping","id":2}')[-1] == {
                "return": {"pong": True},
                "id": 2,
            }
        finally:
            raw.close()


def test_handler_errors_and_bugs_become_replies(shared_server: ServerThread) -> None:
    with SyncQMPClient() as client:
        client.connect(shared_server.address)
        with pytest.raises(DeviceNotFound) as device:
            client.execute(
                "fail", {"class": "DeviceNotFound", "desc": "no such device"}
            )
        assert device.value.desc == "no such device"
        with pytest.raises(QMPCommandError) as novel:
            client.execute("fail", {"class": "SomethingNew", "desc": "from the future"})
        assert type(novel.value) is QMPCommandError
        assert (novel.value.error_class, novel.value.desc) == (
            "SomethingNew",
            "from the future",
        )
        with pytest.raises(GenericError) as bug:
            client.execute("crash")
        assert bug.value.desc == "internal error in crash: handler bug"
        assert client.execute("ping") == {"pong": True}


def test_tcp_listener() -> None:
    with ServerThread(("127.0.0.1", 0)) as server:
        address = server.address
        assert isinstance(address, tuple), address
        host, port = address
        assert port != 0
        with SyncQMPClient() as client:
            client.connect((host, port))
            assert client.execute("echo", {"over": "tcp"}) == {"over": "tcp"}

        async def scenario() -> None:
            async with QMPClient() as client:
                await client.connect(server.address)
                assert await client.execute("ping") == {"pong": True}

        asyncio.run(scenario())


def test_replies_are_crlf_terminated_json(shared_server: ServerThread) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(shared_server.address))
    try:
        data = b""
        while not data.endswith(b"\r\n"):
            data += sock.recv(4096)
        assert json.loads(data)["QMP"]["capabilities"] == ["oob"]
    finally:
        sock.close()


def test_error_replies_keep_their_place_behind_a_running_command(
    shared_server: ServerThread,
) -> None:
    raw = RawQMP(shared_server.address)
    try:
        raw.negotiate()
        replies = raw.exchange(
            b'{"execute":"sleep","arguments":{"seconds":0.2},"id":1}\n@\n'
            b'{"exec-oob":"ping","id":2}\n'
        )
        # oob overtakes; the parse error waits for the in-band command before it
        assert replies == [
            {"return": {"pong": True}, "id": 2},
            {"return": {"slept": 0.2}, "id": 1},
            {"error": {"class": "GenericError", "desc": "JSON parse error, stray '@'"}},
        ]
    finally:
        raw.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _feed_in_pieces(data: bytes, cuts: list[int]) -> list[object]:
    parser = JsonStreamParser()
    out: list[object] = []
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        out += parser.feed(data[start:cut])
        start = cut
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=4),
    st.lists(st.integers(min_value=0), max_size=10),
    st.booleans(),
)
def test_stream_parser_reads_any_json_in_any_pieces(
    messages: list[dict[str, object]], cuts: list[int], one_line: bool
) -> None:
    separator = " " if one_line else "\n"
    data = "".join(
        json.dumps(m, ensure_ascii=bool(len(m) % 2)) + separator for m in messages
    )
    assert _feed_in_pieces(data.encode(), cuts) == messages


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=8))
def test_stream_parser_never_raises_and_fast_path_agrees(
    data: bytes, cuts: list[int]
) -> None:
    whole = JsonStreamParser().feed(data + b"\n")
    byte_by_byte = _feed_in_pieces(data + b"\n", list(range(len(data) + 1)))
    assert whole == byte_by_byte
    assert _feed_in_pieces(data + b"\n", cuts) == whole
    for item in whole:
        assert (
            isinstance(item, JsonInputError)
            or item is None
            or isinstance(item, (bool, int, float, str, list, dict))
        )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"{",
                b"}",
                b"[",
                b"]",
                b'"',
                b"'",
                b"\\",
                b":",
                b",",
                b"1",
                b"-",
                b".",
                b"e",
                b"true",
                b"nul",
                b"\n",
                b" ",
                b"\xff",
                b"\xc3",
                b"\t",
                b'"a"',
                b"\\u12",
                b"\\ud800",
            ]
        ),
        max_size=40,
    )
)
def test_stream_parser_agrees_on_json_like_noise(pieces: list[bytes]) -> None:
    data = b"".join(pieces) + b"\n"
    whole = JsonStreamParser().feed(data)
    assert whole == _feed_in_pieces(data, list(range(len(data))))
