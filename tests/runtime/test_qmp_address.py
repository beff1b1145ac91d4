"""One QMP address syntax for every tool, and connect errors that say what happened."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qapigen_runtime.qmp import QMPClient, SyncQMPClient
from qapigen_runtime.qmp.address import (
    Address,
    AddressError,
    describe,
    not_qmp,
    parse_address,
    timed_out,
)
from qapigen_runtime.qmp.errors import QMPProtocolError, QMPTimeoutError


@pytest.mark.parametrize(
    "text, address",
    [
        ("unix:/run/q.sock", "/run/q.sock"),
        ("unix:q.sock", "q.sock"),
        ("/run/q.sock", "/run/q.sock"),
        ("q.sock", "q.sock"),
        ("./dir:1/q.sock", "./dir:1/q.sock"),  # a slash: never HOST:PORT
        ("tcp:localhost:4444", ("localhost", 4444)),
        ("localhost:4444", ("localhost", 4444)),
        ("tcp:127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]:4444", ("::1", 4444)),
        ("tcp:[fe80::1%eth0]:65535", ("fe80::1%eth0", 65535)),
    ],
)
def test_every_spelling(text: str, address: Address) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the QMP address is empty"),
        ("unix:", "QMP address 'unix:': no socket path after 'unix:'"),
        ("tcp:localhost", "QMP address 'tcp:localhost': expected tcp:HOST:PORT"),
        ("tcp:::1:4444", "an IPv6 host in brackets: tcp:[::1]:4444"),
        ("tcp:[]:4444", "QMP address 'tcp:[]:4444': no host inside the brackets"),
        (
            "localhost:99999",
            "QMP address 'localhost:99999': port 99999 is out of range",
        ),
        ("tcp:h:0", "port 0 is out of range (1 to 65535)"),
    ],
)
def test_bad_addresses_say_why(text: str, message: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_address(text)
    assert message in str(caught.value)


_hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    st.ip_addresses().map(str),
)


@given(host=_hosts, port=st.integers(1, 65535))
def test_describe_reads_back_tcp(host: str, port: int) -> None:
    assert parse_address(describe((host, port))) == (host, port)


@given(path=st.text(min_size=1).filter(lambda p: "\x00" not in p))
def test_describe_reads_back_paths(path: str) -> None:
    assert parse_address(describe(path)) == path


def test_messages_name_the_address_and_the_stage() -> None:
    assert (
        timed_out("/run/q.sock", "the QMP greeting", 2.5)
        == "timed out after 2.5 s waiting for the QMP greeting from unix:/run/q.sock"
    )
    text = not_qmp(("::1", 22), b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 " * 3)
    assert text.startswith("tcp:[::1]:22 is not a QMP server: it sent b'SSH-2.0-")
    assert "...' where a QMP greeting belongs" not in text and "..." in text


# -- peers that are not QMP, or say nothing --------------------------------------


class FakePeer:
    """A unix socket server that sends `greeting` (maybe nothing) to each client and
    then stays silent."""

    def __init__(self, path: Path, greeting: bytes) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.greeting = greeting
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.clients.append(client)
            if self.greeting:
                client.sendall(self.greeting)

    def close(self) -> None:
        self.server.close()
        for client in self.clients:
            client.close()


@pytest.fixture
def peer_factory(tmp_path: Path) -> Iterator[list[FakePeer]]:
    peers: list[FakePeer] = []
    yield peers
    for peer in peers:
        peer.close()


def start_peer(tmp_path: Path, peers: list[FakePeer], greeting: bytes) -> str:
    path = tmp_path / f"peer{len(peers)}.sock"
    peers.append(FakePeer(path, greeting))
    return str(path)


def connect_sync(address: str, timeout: float) -> None:
    with SyncQMPClient() as client:
        client.connect(address, timeout=timeout)


def connect_async(address: str, timeout: float) -> None:
    async def run() -> None:
        client = QMPClient()
        try:
            await client.connect(address, timeout=timeout)
        finally:
            await client.close()

    asyncio.run(run())


CONNECTS = [connect_sync, connect_async]


@pytest.mark.parametrize("connect", CONNECTS)
def test_a_silent_peer_times_out_naming_the_greeting(
    tmp_path: Path, peer_factory: list[FakePeer], connect: object
) -> None:
    address = start_peer(tmp_path, peer_factory, b"")
    with pytest.raises(QMPTimeoutError) as caught:
        connect(address, 0.3)  # type: ignore[operator]
    assert str(caught.value) == (
        f"timed out after 0.3 s waiting for the QMP greeting from unix:{address}"
    )


@pytest.mark.parametrize("connect", CONNECTS)
def test_a_peer_that_greets_and_then_says_nothing(
    tmp_path: Path, peer_factory: list[FakePeer], connect: object
) -> None:
    greeting = b'{"QMP": {"version": {}, "capabilities": []}}\r\n'
    address = start_peer(tmp_path, peer_factory, greeting)
    with pytest.raises(QMPTimeoutError) as caught:
        connect(address, 0.3)  # type: ignore[operator]
    assert "waiting for the reply to qmp_capabilities from unix:" in str(caught.value)


@pytest.mark.parametrize("connect", CONNECTS)
@pytest.mark.parametrize(
    "first", [b"SSH-2.0-OpenSSH_9.2p1\r\n", b'{"hello": 1}\n', b"[1, 2]\n"]
)
def test_a_peer_that_is_not_qmp_is_called_that(
    tmp_path: Path, peer_factory: list[FakePeer], connect: object, first: bytes
) -> None:
    address = start_peer(tmp_path, peer_factory, first)
    with pytest.raises(QMPProtocolError) as caught:
        connect(address, 5)  # type: ignore[operator]
    text = str(caught.value)
    assert text.startswith(f"unix:{address} is not a QMP server: it sent b")
    assert "invalid JSON" not in text
