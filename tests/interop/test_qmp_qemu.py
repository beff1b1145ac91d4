"""Interop with a real qemu-system-x86_64 (7.2): both clients, errors, events, fds,
and the record of how QEMU answers bad input (the facts QMPServer reproduces)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qapigen_runtime.qmp import (
    CommandNotFound,
    GenericError,
    QMPClient,
    QMPCommandError,
    QMPDisconnectedError,
    SyncQMPClient,
)
from qapigen_runtime.qmp.transport import AsyncTransport, SyncTransport
from qapigen_testing.qmp_fixtures import (
    OBSERVED_AFTER_NEGOTIATION,
    OBSERVED_BEFORE_NEGOTIATION,
    OBSERVED_WITHOUT_OOB,
    Observed,
    RawQMP,
    wait_for_path,
)

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(120)]


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[str]:
    """A QEMU with no machine, its QMP monitor on a unix socket; stopped afterwards."""
    binary = shutil.which("qemu-system-x86_64")
    if binary is None:
        pytest.skip(
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
        )
    path = str(tmp_path / "qmp.sock")
    process = subprocess.Popen(
        [binary, "-M", "none", "-nodefaults", "-display", "none"]
        + ["-qmp", f"unix:{path},server=on,wait=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_path(path)
        yield path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_async_client_negotiates_and_queries(qemu: str) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(qemu)
            assert client.greeting is not None
            assert client.greeting.capabilities == ("oob",)
            version = client.greeting.version["qemu"]
            assert isinstance(version, dict) and version["major"] == 7
            assert client.oob_enabled
            status = await client.execute("query-status")
            assert isinstance(status, dict) and status["status"] == "running"
            caps = await client.execute("query-migrate-capabilities")
            assert isinstance(caps, list)
            names = {c["capability"] for c in caps if isinstance(c, dict)}
            assert {"xbzrle", "postcopy-ram", "events"} <= names
            # many in flight at once, answered in any order, matched by id
            replies = await asyncio.gather(
                *(client.execute("query-migrate-parameters") for _ in range(100))
            )
            assert all(
                isinstance(r, dict) and r["downtime-limit"] == 300 for r in replies
            )

    asyncio.run(scenario())


def test_sync_client_negotiates_and_queries(qemu: str) -> None:
    with SyncQMPClient() as client:
        client.connect(qemu)
        assert client.oob_enabled
        status = client.execute("query-status")
        assert isinstance(status, dict) and status["running"] is True
        caps = client.execute("query-migrate-capabilities")
        assert isinstance(caps, list) and any(
            isinstance(c, dict) and c["capability"] == "xbzrle" for c in caps
        )


def test_error_classes_through_both_clients(qemu: str) -> None:
    with SyncQMPClient() as sync_client:
        sync_client.connect(qemu)
        with pytest.raises(CommandNotFound) as missing:
            sync_client.execute("nonexistent")
        assert missing.value.desc == "The command nonexistent has not been found"
        with pytest.raises(GenericError) as bad:
            sync_client.execute("query-status", {"bogus": 1})
        assert bad.value.desc == "Parameter 'bogus' is unexpected"
        with pytest.raises(GenericError) as typed:
            sync_client.execute("migrate", {"uri": 5})
        assert typed.value.desc == "Invalid parameter type for 'uri', expected: string"

    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(qemu)
            with pytest.raises(CommandNotFound):
                await client.execute("nonexistent")
            with pytest.raises(QMPCommandError) as bad:
                await client.execute("migrate-set-parameters", {"compress-level": 99})
            assert bad.value.error_class == "GenericError"
            assert bad.value.desc == (
                "Parameter 'compress_level' expects a value between 0 and 9"
            )
            # exec-oob reaches the command: migrate-pause allows oob
            with pytest.raises(GenericError) as oob:
                await client.execute("migrate-pause", oob=True)
            assert "postcopy-active" in oob.value.desc

    asyncio.run(scenario())


def test_stop_and_cont_events(qemu: str) -> None:
    async def scenario() -> None:
        async with QMPClient() as client:
            await client.connect(qemu)
            await client.execute("stop")
            stop = await client.wait_for("STOP", timeout=5)
            assert stop.seconds > 0 and stop.data == {}
            await client.execute("cont")
            resume = await client.wait_for("RESUME", timeout=5)
            assert resume.timestamp >= stop.timestamp

    asyncio.run(scenario())
    with SyncQMPClient() as client:
        client.connect(qemu)
        client.execute("stop")
        client.execute("cont")
        names = [event.name for event in client.events(timeout=1.0)]
        assert names[:2] == ["STOP", "RESUME"]


def _check_getfd_sync(client: SyncTransport, read_end: int) -> None:
    client.execute("getfd", {"fdname": "mig"}, fds=[read_end])
    client.execute("closefd", {"fdname": "mig"})
    with pytest.raises(GenericError) as gone:
        client.execute("closefd", {"fdname": "mig"})
    assert gone.value.desc == "File descriptor named 'mig' not found"


def test_getfd_with_scm_rights(qemu: str) -> None:
    read_end, write_end = os.pipe()
    try:
        with SyncQMPClient() as sync_client:
            sync_client.connect(qemu)
            with pytest.raises(GenericError) as missing:
                sync_client.execute("getfd", {"fdname": "x"})
            assert missing.value.desc == "No file descriptor supplied via SCM_RIGHTS"
            _check_getfd_sync(sync_client, read_end)

        async def scenario(transport: AsyncTransport) -> None:
            await transport.execute("getfd", {"fdname": "async-fd"}, fds=[read_end])
            await transport.execute("closefd", {"fdname": "async-fd"})

        async def run() -> None:
            async with QMPClient() as client:
                await client.connect(qemu)
                await scenario(client)

        asyncio.run(run())
    finally:
        os.close(read_end)
        os.close(write_end)


def test_qemu_qmp_adapter_against_qemu(qemu: str) -> None:
    qmp = pytest.importorskip("qemu.qmp")
    from qapigen_runtime.qmp.qemu_qmp_adapter import QemuQmpTransport

    async def scenario() -> None:
        raw = qmp.QMPClient("adapter-test")
        await raw.connect(qemu)
        try:
            transport: AsyncTransport = QemuQmpTransport(raw)
            status = await transport.execute("query-status")
            assert isinstance(status, dict) and status["running"] is True
            with pytest.raises(CommandNotFound) as missing:
                await transport.execute("nonexistent")
            assert missing.value.desc == "The command nonexistent has not been found"
            await transport.execute("stop")
            assert (await transport.wait_for("STOP", timeout=5)).name == "STOP"
            await transport.execute("cont")
        finally:
            await raw.disconnect()

    asyncio.run(scenario())


def _check_observed(raw: RawQMP, case: Observed) -> None:
    assert raw.exchange(case.data) == case.replies, case.label


def test_qemu_answers_bad_input_as_recorded(qemu: str) -> None:
    """The facts of qmp_fixtures, re-observed: each input and QEMU 7.2's replies."""
    raw = RawQMP(qemu)
    try:
        assert raw.greeting["QMP"] is not None
        for case in OBSERVED_BEFORE_NEGOTIATION:
            raw.send(case.data)
            assert [raw.read() for _ in case.replies] == case.replies, case.label
        raw.negotiate(oob=True)
        for case in OBSERVED_AFTER_NEGOTIATION:
            _check_observed(raw, case)
    finally:
        raw.close()
    raw = RawQMP(qemu)
    try:
        raw.negotiate(oob=False)
        for case in OBSERVED_WITHOUT_OOB:
            _check_observed(raw, case)
    finally:
        raw.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_both_clients_over_tcp() -> None:
    binary = shutil.which("qemu-system-x86_64")
    if binary is None:
        pytest.skip(
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
        )
    port, other = _free_port(), _free_port()
    while other == port:
        other = _free_port()
    process = subprocess.Popen(
        [binary, "-M", "none", "-nodefaults", "-display", "none"]
        + ["-qmp", f"tcp:127.0.0.1:{port},server=on,wait=off"]
        + ["-qmp", f"tcp:127.0.0.1:{other},server=on,wait=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with SyncQMPClient() as client:
            for _ in range(200):  # QEMU needs a moment before it listens
                try:
                    client.connect(("127.0.0.1", port))
                    break
                except QMPDisconnectedError:
                    time.sleep(0.05)
            status = client.execute("query-status")
            assert isinstance(status, dict) and status["status"] == "running"

        async def scenario() -> None:
            async with QMPClient() as client:
                await client.connect(("127.0.0.1", other))
                assert client.oob_enabled
                reply = await client.execute("query-migrate-parameters")
                assert isinstance(reply, dict) and reply["max-bandwidth"] == 134217728

        asyncio.run(scenario())
    finally:
        process.terminate()
        process.wait(timeout=10)
