"""What one QMP connection may hold on the server: replies its client has not taken,
queued requests, passed descriptors, and how many connections there may be. Clients
that never read cost a bounded number of bytes, and others are served meanwhile;
clients that hang up stop costing anything (and flood no log)."""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import pytest

from qapigen_runtime.qmp import QMPClient, QMPConnectionError, SyncQMPClient
from qapigen_runtime.qmp.server import PASSED_FD_COST, QMPSession
from qapigen_testing.qmp_fixtures import ServerThread

pytestmark = pytest.mark.timeout(120)

BIG_REPLY = 10_000
"""Bytes of a reply to "big" (QEMU's query-qmp-schema answer is ~200 KiB)."""


class BigDispatcher:
    """Answers "big" with BIG_REPLY bytes and "echo" with its arguments."""

    def command_names(self) -> Sequence[str]:
        return ["big", "echo", "sleep"]

    def oob_command_names(self) -> Collection[str]:
        return ()

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        if name == "big":
            return {"data": "x" * BIG_REPLY}
        if name == "sleep":
            seconds = arguments.get("seconds", 0.1)
            assert isinstance(seconds, float)
            await asyncio.sleep(seconds)
        return arguments


class BigServerThread(ServerThread):
    def __init__(self, address: str, **options: object) -> None:
        super().__init__(address, **options)
        self.dispatcher = BigDispatcher()  # type: ignore[assignment]


def _sessions(server: ServerThread) -> list[QMPSession]:
    async def collect() -> list[QMPSession]:
        assert server.server is not None
        return list(server.server.sessions)

    return server.call(collect())


def _settle(read: Callable[[], object], timeout: float = 20.0) -> None:
    """Wait until `read()` gives the same answer twice, 0.3 s apart."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = read()
        if now == last:
            return
        last = now
    raise AssertionError(f"still changing after {timeout} s: {last!r}")


def _never_reading_client(address: str, requests: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address)
    sock.sendall(b'{"execute":"qmp_capabilities"}\n')
    sock.setblocking(False)
    try:
        sock.send(requests)  # as much as the server takes in one write
    except BlockingIOError:
        pass
    return sock


@pytest.fixture
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("b")


def test_clients_that_never_read_hold_a_bounded_amount(short_dir: Path) -> None:
    budget = 1024 * 1024  # the default
    address = str(short_dir / "q.sock")
    with BigServerThread(address) as server:
        # each write: ~64 KiB of requests whose replies weigh ~38 MB
        requests = b'{"execute":"big"}\n' * 3_800
        sleepers = [_never_reading_client(address, requests) for _ in range(3)]
        try:
            _settle(lambda: [s.unsent_bytes for s in _sessions(server)])
            sessions = [s for s in _sessions(server) if s.negotiated]
            assert len(sessions) == 3
            for session in sessions:
                # the budget and one reply past it
                assert session.unsent_bytes <= budget + BIG_REPLY + 100
                # and one read not parsed yet
                assert session.held_bytes <= budget + BIG_REPLY + 300 * 1024
            with SyncQMPClient() as bystander:
                bystander.connect(address, timeout=30)
                assert bystander.execute("echo", {"here": 1}, timeout=30) == {"here": 1}
        finally:
            for sleeper in sleepers:
                sleeper.close()


def test_the_connection_limit_refuses_clearly(short_dir: Path) -> None:
    address = str(short_dir / "q.sock")
    with ServerThread(address, max_connections=2) as server:
        first, second = SyncQMPClient(), SyncQMPClient()
        first.connect(address)
        second.connect(address)
        try:
            with pytest.raises(QMPConnectionError) as refused:
                SyncQMPClient().connect(address, timeout=10)
            assert "too many QMP connections (2)" in str(refused.value)

            async def refused_async() -> str:
                with pytest.raises(QMPConnectionError) as error:
                    await QMPClient().connect(address, timeout=10)
                return str(error.value)

            assert "too many QMP connections (2)" in asyncio.run(refused_async())
            first.close()  # a place is free again
            deadline = time.monotonic() + 10
            while len(_sessions(server)) > 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            with SyncQMPClient() as third:
                third.connect(address, timeout=10)
                assert third.execute("ping") == {"pong": True}
        finally:
            first.close()
            second.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_passed_descriptors_count_against_the_budget(short_dir: Path) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("/proc/self/fd is not available on this system")
    address = str(short_dir / "q.sock")
    with BigServerThread(address) as server:
        read_end, write_end = os.pipe()
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(address)
            sock.sendall(b'{"execute":"qmp_capabilities"}\n')
            sock.sendall(b'{"execute":"sleep","arguments":{"seconds":3.0}}\n')
            time.sleep(0.2)
            before = _open_fds()
            fds = array.array("i", [write_end] * 16)
            sock.setblocking(False)
            sent = 0
            for _ in range(40):  # 640 descriptors offered while the command runs
                try:
                    sock.sendmsg([b" "], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                    sent += 1
                except BlockingIOError:
                    break
            time.sleep(0.5)
            held = _open_fds() - before
            # the budget's worth, the set waiting for a command, one read's
            assert held <= (1024 * 1024) // PASSED_FD_COST + 2 * 16
            assert sent > held // 16  # the client did offer more than that
        finally:
            sock.close()
            os.close(read_end)
            os.close(write_end)
        _settle(lambda: len(_sessions(server)))


def test_hung_up_clients_flood_no_log_and_others_are_served(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    address = str(short_dir / "q.sock")
    with ServerThread(address) as server:
        for _ in range(20):
            junk = socket.socket(socket.AF_UNIX)
            junk.connect(address)
            junk.recv(4096)  # the greeting: the server is on it
            junk.sendall(b'{"execute":"qmp_capabilities"}\n' + b"x " * 20_000)
            junk.close()
        with SyncQMPClient() as fresh:
            fresh.connect(address, timeout=30)
            assert fresh.execute("ping", timeout=30) == {"pong": True}
        deadline = time.monotonic() + 30
        while len(_sessions(server)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sessions(server) == []
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], f"{len(noisy)} log lines, the first: {noisy[0].getMessage()}"
