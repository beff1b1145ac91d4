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
from collections.abc import Iterator

import pytest

from qapigen_runtime.bindings.events import EventOutput, EventTables
from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_runtime.qmp import QMPClient, SyncQMPClient
from qapigen_runtime.qmp.server import QMPServer
from qapigen_testing.peers import (
    MACHINE_ARGS,
    Peer,
    PeerKind,
    require_peers,
    site,
)
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
def _peer(kind: PeerKind) -> Iterator[str]:
    """A QEMU or qapigen-vm process under ``-compat deprecated-output=hide`` (the same
    command line for both); yields its QMP socket's path."""
    require_peers(kind)
    with site() as where:
        args = [*MACHINE_ARGS, "-compat", "deprecated-output=hide"]
        peer = Peer(kind, "events", where, args)
        try:
            peer.wait_ready()
            yield peer.qmp_path
        finally:
            peer.stop()


def _stop_and_cont(address: str) -> list[tuple[str, object]]:
    """Connect, stop and continue the machine: the events that came, as sent."""
    with SyncQMPClient() as client:
        client.connect(address, timeout=10.0)
        client.execute("stop")
        client.execute("cont")
        events: list[tuple[str, object]] = []
        for event in client.events(timeout=5.0):
            events.append((event.name, event.data))
            if event.name == "RESUME":
                break
        return events


def test_the_vm_under_deprecated_output_hide() -> None:
    with _peer(PeerKind.VM) as address:
        events = _stop_and_cont(address)
    assert events == [("STOP", {}), ("RESUME", {})]


@pytest.mark.qemu
def test_the_vm_sends_what_qemu_sends_under_deprecated_output_hide() -> None:
    with _peer(PeerKind.QEMU) as address:
        from_qemu = _stop_and_cont(address)
    with _peer(PeerKind.VM) as address:
        from_vm = _stop_and_cont(address)
    assert from_vm == from_qemu == [("STOP", {}), ("RESUME", {})]
