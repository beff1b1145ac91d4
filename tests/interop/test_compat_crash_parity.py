"""``-compat unstable-input=crash``: QEMU 7.2 and qapigen-vm (the generated dispatcher
with the same policy) side by side.

Observed on QEMU 7.2 (x86_64, TCG, `-compat unstable-input=crash`): a request using
something unstable (the command ``x-query-roms`` or ``x-colo-lost-heartbeat``, the
argument member ``x-checkpoint-delay`` of migrate-set-parameters, the enum value
``x-colo`` of migrate-set-capabilities) gets no reply: QEMU aborts (exit status -6,
SIGABRT) and prints nothing. The client sees the connection close: end of file, or
ECONNRESET when QEMU died with request bytes it had not read yet (it reads its
monitor a byte at a time, so the newline after the request is one). What is not
unstable is served as usual before. qapigen-vm, started with the same command line,
must do the same for the commands its schema has (``x-query-roms`` is not one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from qapigen_runtime.qmp import QMPConnectionError, SyncQMPClient
from qapigen_testing.peers import (
    MACHINE_ARGS,
    Peer,
    PeerKind,
    PeerStartError,
    Site,
    require_peers,
    site,
)

pytestmark = pytest.mark.timeout(120)

CRASH = ("-compat", "unstable-input=crash")

CASES: dict[str, tuple[str, dict[str, object]]] = {
    "unstable command": ("x-colo-lost-heartbeat", {}),
    "unstable argument member": ("migrate-set-parameters", {"x-checkpoint-delay": 200}),
    "unstable enum value": (
        "migrate-set-capabilities",
        {"capabilities": [{"capability": "x-colo", "state": False}]},
    ),
}

KINDS = [
    pytest.param(PeerKind.QEMU, marks=pytest.mark.qemu, id="qemu"),
    pytest.param(PeerKind.VM, id="qapigen-vm"),
]


@pytest.fixture
def started() -> Iterator[list[Peer]]:
    """The peers a test starts, stopped (if still running) when it ends."""
    peers: list[Peer] = []
    yield peers
    for peer in peers:
        peer.stop()


def _start(kind: PeerKind, peers: list[Peer], where: Site) -> Peer:
    require_peers(kind)
    peer = Peer(kind, "crash", where, [*MACHINE_ARGS, *CRASH])
    peers.append(peer)
    try:
        peer.wait_ready()
    except PeerStartError as error:
        if kind is PeerKind.QEMU and not os.environ.get("CI"):
            pytest.skip(str(error))
        raise
    return peer


def _crash_with(peer: Peer, name: str, arguments: dict[str, object]) -> str:
    """Serve query-status, then send `name`: what the client saw of it."""
    with SyncQMPClient() as client:
        client.connect(peer.qmp_path, timeout=10.0)
        assert client.execute("query-status") is not None
        try:
            reply = client.execute(name, arguments, timeout=30.0)
        except QMPConnectionError as error:
            return f"connection lost ({type(error).__name__})"
        return f"reply {reply!r}"


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_unstable_input_crash_aborts_without_a_reply(
    kind: PeerKind, case: str, started: list[Peer]
) -> None:
    name, arguments = CASES[case]
    with site() as where:
        peer = _start(kind, started, where)
        seen = _crash_with(peer, name, arguments)
        status = peer.process.wait(30)
    assert seen.startswith("connection lost"), seen
    assert status == -6  # SIGABRT, as QEMU aborts


@pytest.mark.qemu
def test_qemu_aborts_on_an_x_query_command(started: list[Peer]) -> None:
    with site() as where:
        peer = _start(PeerKind.QEMU, started, where)
        seen = _crash_with(peer, "x-query-roms", {})
        status = peer.process.wait(30)
    assert seen.startswith("connection lost"), seen
    assert status == -6
    assert peer.stderr() == ""  # QEMU says nothing
