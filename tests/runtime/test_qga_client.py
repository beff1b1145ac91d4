"""The guest-agent clients against a scripted agent: what a real qemu-ga cannot be
made to do safely (a guest-shutdown that gets no reply) or at will (a broken reply,
silence). The real agent's side is tests/interop/test_guest_agent.py."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qapigen_qga import commands
from qapigen_runtime.qga import QGAClient, SyncQGAClient
from qapigen_runtime.qmp.errors import (
    QMPDisconnectedError,
    QMPError,
    QMPProtocolError,
    QMPTimeoutError,
)


class ScriptedAgent:
    """Answers as qemu-ga does (0xFF resets, guest-sync-delimited gets the sentinel),
    except: guest-shutdown is never answered (an unknown mode is refused, as the
    real agent refuses it), "guest-bad-reply" gets a line that is not JSON, and
    "guest-silence" gets nothing."""

    def __init__(self, stale: bytes = b"") -> None:
        self.stale = stale  # sent first, as a channel holds what no client read
        self.folder = Path(tempfile.mkdtemp(prefix="qapigen-qga-"))
        self.path = str(self.folder / "sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen()
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.sendall(self.stale)
            pending = b""
            while data := conn.recv(4096):
                pending += data
                while True:
                    if pending.startswith(b"\xff"):
                        pending = pending[1:]
                        conn.sendall(
                            b'{"error": {"class": "GenericError", "desc":'
                            b' "JSON parse error"}}\n'
                        )
                        continue
                    line, newline, rest = pending.partition(b"\n")
                    if not newline:
                        break
                    pending = rest
                    conn.sendall(self._answer(json.loads(line)))

    def _answer(self, request: dict[str, object]) -> bytes:
        name = str(request["execute"])
        arguments = request.get("arguments") or {}
        assert isinstance(arguments, dict)
        self.requests.append(name)
        if name == "guest-sync-delimited":
            return b"\xff" + json.dumps({"return": arguments["id"]}).encode() + b"\n"
        if name == "guest-shutdown":
            if arguments.get("mode", "powerdown") in ("powerdown", "halt", "reboot"):
                return b""
            error = {"class": "GenericError", "desc": "Invalid parameter 'mode'"}
            return json.dumps({"error": error}).encode() + b"\n"
        if name == "guest-bad-reply":
            return b"{not json\n"
        if name == "guest-silence":
            return b""
        if name == "guest-sync":
            return json.dumps({"return": arguments["id"]}).encode() + b"\n"
        return b'{"return": {}}\n'

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def scripted() -> Iterator[ScriptedAgent]:
    agent = ScriptedAgent()
    yield agent
    agent.close()


def test_a_command_without_success_response_does_not_wait(
    scripted: ScriptedAgent,
) -> None:
    with SyncQGAClient.connected(scripted.path, timeout=5) as transport:
        typed = commands.SyncClient(transport)
        typed.guest_shutdown(mode="halt")  # the agent never answers: no wait
        assert not transport.in_sync
        # refused: its error reply is dropped by the next command's resync
        typed.guest_shutdown(mode="bogus")
        assert typed.guest_sync(id=5) == 5
        assert transport.resyncs == 3
    assert scripted.requests.count("guest-shutdown") == 2


def test_the_async_client_does_not_wait_either(scripted: ScriptedAgent) -> None:
    async def scenario() -> None:
        async with await QGAClient.connected(scripted.path, timeout=5) as transport:
            typed = commands.AsyncClient(transport)
            await typed.guest_suspend_ram()
            assert await typed.guest_sync(id=6) == 6

    asyncio.run(scenario())
    assert scripted.requests[-3:] == [
        "guest-suspend-ram",
        "guest-sync-delimited",
        "guest-sync",
    ]


def test_an_unreadable_reply_is_a_protocol_error_and_the_next_command_resyncs(
    scripted: ScriptedAgent,
) -> None:
    with SyncQGAClient.connected(scripted.path, timeout=5) as transport:
        with pytest.raises(QMPProtocolError, match="reply to guest-bad-reply is not"):
            transport.execute("guest-bad-reply")
        assert transport.is_connected and not transport.in_sync
        assert transport.execute("guest-sync", {"id": 8}) == 8
        with pytest.raises(QMPTimeoutError, match="no reply to guest-silence within"):
            transport.execute("guest-silence", timeout=0.1)
        assert transport.execute("guest-sync", {"id": 9}) == 9
        assert transport.resyncs == 3


# What a channel may hold: any bytes, with sentinels, replies, sync replies of other
# ids and lines cut short among them.
STALE_PIECES = st.one_of(
    st.binary(max_size=40),
    st.just(b"\xff"),
    st.just(b"\n"),
    st.integers(0, 2**31).map(lambda n: b'\xff{"return": %d}\n' % n),
    st.just(b'{"return": {}}\n'),
    st.just(b'\xff{"return": '),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STALE_PIECES, max_size=8).map(b"".join))
def test_whatever_the_channel_holds_the_clients_resync(stale: bytes) -> None:
    agent = ScriptedAgent(stale)
    try:
        with SyncQGAClient.connected(agent.path, timeout=5) as transport:
            assert transport.execute("guest-sync", {"id": 3}) == 3
    finally:
        agent.close()

    async def scenario(path: str) -> None:
        async with await QGAClient.connected(path, timeout=5) as transport:
            assert await transport.execute("guest-sync", {"id": 4}) == 4

    agent = ScriptedAgent(stale)
    try:
        asyncio.run(scenario(agent.path))
    finally:
        agent.close()


def test_errors_of_the_agent_and_of_the_stream() -> None:
    with tempfile.TemporaryDirectory() as folder:
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(f"{folder}/sock")
        silent.listen()
        with pytest.raises(QMPTimeoutError, match="sync reply"):
            SyncQGAClient.connected(f"{folder}/sock", timeout=0.2)
        silent.close()
        with pytest.raises(QMPDisconnectedError, match="cannot connect"):
            SyncQGAClient.connected(f"{folder}/sock", timeout=0.2)


def test_a_qmp_transport_cannot_send_without_a_reply() -> None:
    class CommandsOnly:
        def execute(
            self,
            name: str,
            arguments: dict[str, object] | None = None,
            *,
            oob: bool = False,
            fds: object = (),
        ) -> object:
            raise AssertionError("not called")

    typed = commands.SyncClient(CommandsOnly())
    with pytest.raises(QMPError, match="guest-shutdown gets no reply when it succ"):
        typed.guest_shutdown()
