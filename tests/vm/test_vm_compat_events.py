"""qapigen-vm's events under `-compat` output policies.

The VM sends its events through its QMP server's encoder, `event_output(policy)` of
the VM's package, built from the `-compat` option: an event the policy hides is not
sent, members it hides leave event data (see tests/bindings/test_compat_events.py
for the encoder itself). Nothing in the VM's schema is deprecated or unstable, as
nothing in the events QEMU 7.2 sends for the same machine is, so under
``deprecated-output=hide`` the VM sends what QEMU 7.2 sends under it (checked live
against QEMU: STOP and RESUME around stop/cont); the forwarding itself is checked
with tables that make VM events special.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qapigen_runtime.bindings.events import EventOutput, EventTables
from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_runtime.qmp import QMPClient, QMPConnectionError, SyncQMPClient
from qapigen_runtime.qmp.server import QMPServer
from qapigen_testing.qemu_fixtures import QemuLauncher, QemuStartError
from qapigen_vm.main import EventForwarder
from qapigen_vm_qmp import types as vm_types
from qapigen_vm_qmp.commands import CommandDispatcher, CommandHandlerBase

pytestmark = pytest.mark.timeout(120)

HIDE_DEPRECATED = CompatPolicy(deprecated_output="hide")


def test_the_forwarder_sends_what_the_policy_lets_out() -> None:
    """STOP made deprecated, MIGRATION's required `status` made unstable: under
    both output policies STOP is not sent and MIGRATION goes out without status."""
    tables = EventTables(
        event_features={"STOP": ["deprecated"]},
        data_member_features={"MIGRATION": {"status": ["unstable"]}},
        member_features=vm_types.MEMBER_FEATURES,
    )
    policy = CompatPolicy(deprecated_output="hide", unstable_output="hide")
    received: list[tuple[str, object]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = QMPServer(
            CommandDispatcher(CommandHandlerBase(), policy=policy),
            events=EventOutput(tables, policy),
        )
        forwarder = EventForwarder(loop)
        forwarder.server = server
        address = await server.listen(("127.0.0.1", 0))
        try:
            async with QMPClient() as client:
                await client.connect(address)
                forwarder.sink("STOP", {})
                forwarder.sink("MIGRATION", {"status": "setup"})
                forwarder.sink("RESUME", {})
                await client.wait_for("RESUME", timeout=5)
                received.extend((e.name, e.data) for e in client.clear_events())
        finally:
            await server.close()

    asyncio.run(scenario())
    assert received == [("MIGRATION", {})]


@contextlib.contextmanager
def _vm(directory: Path, *args: str) -> Iterator[str]:
    """A qapigen-vm process with `args`; yields its QMP socket's path."""
    path = str(directory / "vm.qmp")
    argv = [sys.executable, "-m", "qapigen_vm.main", "-m", "32"]
    argv += ["-qmp", f"unix:{path},server=on,wait=off", *args]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"qapigen-vm did not start: {process.poll()}")
            time.sleep(0.05)
        yield path
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _stop_and_cont(address: str) -> list[tuple[str, object]]:
    """Connect, stop and continue the machine: the events that came, as sent."""
    with SyncQMPClient() as client:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.connect(address, timeout=5.0)
                break
            except QMPConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.execute("stop")
        client.execute("cont")
        events: list[tuple[str, object]] = []
        for event in client.events(timeout=5.0):
            events.append((event.name, event.data))
            if event.name == "RESUME":
                break
        return events


def test_the_vm_under_deprecated_output_hide() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="qvm-") as name,
        _vm(Path(name), "-compat", "deprecated-output=hide") as address,
    ):
        events = _stop_and_cont(address)
    assert events == [("STOP", {}), ("RESUME", {})]


@pytest.mark.qemu
def test_the_vm_sends_what_qemu_sends_under_deprecated_output_hide() -> None:
    try:
        with QemuLauncher() as launcher:
            qemu = launcher.start(
                "compat-events", extra_args=["-compat", "deprecated-output=hide"]
            )
            from_qemu = _stop_and_cont(qemu.qmp_address)
    except QemuStartError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(error))
    with (
        tempfile.TemporaryDirectory(prefix="qvm-") as name,
        _vm(Path(name), "-compat", "deprecated-output=hide") as address,
    ):
        from_vm = _stop_and_cont(address)
    assert from_vm == from_qemu == [("STOP", {}), ("RESUME", {})]
