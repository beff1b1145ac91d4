"""Both clients against a QEMU 7.2 whose monitor pretty-prints (``-qmp-pretty``): every
message spans many lines, indented, ended by a closing brace on a line of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from qapigen_runtime.qmp import (
    CommandNotFound,
    QMPClient,
    QMPDisconnectedError,
    SyncQMPClient,
)
from qapigen_testing.qemu_fixtures import QemuLauncher
from qapigen_testing.qmp_fixtures import wait_for_path

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def pretty_monitor() -> Iterator[str]:
    """The pretty-printing monitor of a paused QEMU 7.2."""
    with QemuLauncher() as launcher:
        path = str(launcher.directory / "pretty.sock")
        launcher.start(
            "pretty",
            extra_args=["-S", "-qmp-pretty", f"unix:{path},server=on,wait=off"],
        )
        wait_for_path(path)
        _until_it_greets(path)
        yield path


def _until_it_greets(path: str, timeout: float = 20.0) -> None:
    """Wait until the monitor serves a client: it serves one at a time, and its
    listen backlog may still hold the probe of wait_for_path (EAGAIN)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with SyncQMPClient() as probe:
                probe.connect(path, timeout=10)
            return
        except QMPDisconnectedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_sync_client_reads_pretty_output(pretty_monitor: str) -> None:
    _until_it_greets(pretty_monitor)
    with SyncQMPClient() as client:
        client.connect(pretty_monitor, timeout=30)
        assert client.greeting is not None
        version = client.greeting.version["qemu"]
        assert isinstance(version, dict) and version["major"] == 7
        assert client.oob_enabled
        status = client.execute("query-status")
        assert isinstance(status, dict) and status["status"] == "prelaunch"
        with pytest.raises(CommandNotFound):
            client.execute("nonexistent")
        schema = client.execute("query-qmp-schema")  # hundreds of KiB, many lines
        assert isinstance(schema, list) and len(schema) > 1000
        client.execute("cont")
        assert client.wait_for("RESUME", timeout=10).seconds > 0
        client.execute("stop")
        assert client.wait_for("STOP", timeout=10).seconds > 0


def test_async_client_reads_pretty_output(pretty_monitor: str) -> None:
    _until_it_greets(pretty_monitor)

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(pretty_monitor, timeout=30)
            assert client.greeting is not None and client.oob_enabled
            replies = await asyncio.gather(
                *(client.execute("query-status") for _ in range(20))
            )
            assert all(isinstance(r, dict) and "status" in r for r in replies)
            await client.execute("cont")
            resumed = await client.wait_for("RESUME", timeout=10)
            await client.execute("stop")
            stopped = await client.wait_for("STOP", timeout=10)
            assert stopped.stamp >= resumed.stamp

    asyncio.run(scenario())


def test_qemu_qmp_cannot_read_pretty_output(pretty_monitor: str) -> None:
    """qemu.qmp (not this project's) reads one message per line: it refuses the
    greeting, so there is no connection for the qemu.qmp adapter to carry."""
    qmp = pytest.importorskip("qemu.qmp")
    _until_it_greets(pretty_monitor)

    async def scenario() -> str:
        client = qmp.QMPClient("pretty")
        try:
            await client.connect(pretty_monitor)
        except qmp.ConnectError as error:
            return str(error)
        await client.disconnect()
        return "connected"

    assert "Did not understand Greeting" in asyncio.run(scenario())
