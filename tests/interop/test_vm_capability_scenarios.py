"""What the capability and multifd-4-defer scenarios must observe, so that their
parity (in test_vm_parity.py) is not vacuous: on QEMU 7.2 the facts the scenarios
were written for, and on qapigen-vm the same facts without QEMU installed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qapigen_testing.peers import PeerKind, require_peers, site, start_pair
from qapigen_testing.scenarios import SCENARIOS, Observation, Scenario, observe
from qapigen_testing.scenarios.capabilities import RARE
from qapigen_testing.scenarios.observation import ErrorSeen
from qapigen_testing.vm_engine import MIB, Factory, same_memory
from qapigen_vm import VmCommandError

pytestmark = pytest.mark.timeout(240)

INCOMPATIBLE = ErrorSeen(
    "GenericError",
    "Command options are incompatible with current migration capabilities",
)
IGNORE_SHARED = ErrorSeen(
    "GenericError", "Postcopy is not compatible with ignore-shared"
)


def run(kind: PeerKind, name: str) -> Observation:
    require_peers(kind)
    (scenario,) = [s for s in SCENARIOS if s.name == name]
    assert isinstance(scenario, Scenario)
    with site() as where, start_pair(kind, where, scenario.arguments(where)) as pair:
        return asyncio.run(observe(pair, scenario.body))


KINDS = [
    pytest.param(PeerKind.QEMU, marks=pytest.mark.qemu, id="qemu"),
    pytest.param(PeerKind.VM, id="vm"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_capability_settings(kind: PeerKind) -> None:
    steps = run(kind, "capability-settings").steps
    for cap in RARE:  # each is accepted alone and reads back on
        assert steps[f"{cap.value} on"] == "ok"
        on = steps[f"after {cap.value} on"]
        assert isinstance(on, tuple) and on[0] == {cap.value}
    assert steps["postcopy-ram after x-ignore-shared"] == IGNORE_SHARED
    assert steps["x-ignore-shared after postcopy-ram"] == IGNORE_SHARED
    assert steps["x-ignore-shared with postcopy-ram off in one request"] == "ok"
    assert steps["all seven together"] == "ok"
    assert steps["migrate blk with block on"] == INCOMPATIBLE
    assert steps["migrate inc with block on"] == INCOMPATIBLE
    assert steps["migrate blk with x-colo on"] == ErrorSeen(
        "GenericError", "No disk migration is required in COLO mode"
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "name",
    ["multifd-4-defer", "precopy-harmless-capabilities", "precopy-return-path"],
)
def test_migrations_complete(kind: PeerKind, name: str) -> None:
    observation = run(kind, name)
    steps = observation.steps
    assert steps["source final event"] == "completed"
    assert steps["destination final event"] == "completed"
    assert steps["destination run state after"] == ("running", True)
    assert observation.source_events[-1] == "MIGRATION completed"
    if name == "multifd-4-defer":
        assert steps["source multifd-channels"] == 4
        assert steps["destination multifd-channels"] == 4


def test_vm_block_options_copy_nothing_and_complete(tmp_path: Path) -> None:
    """migrate blk/inc (and the block, dirty-bitmaps capabilities) on the disk-less
    VM: accepted when nothing excludes them, and the RAM still arrives whole."""
    vms = Factory(tmp_path)
    try:
        for blk, inc in ((True, False), (False, True)):
            src = vms.source(4 * MIB)
            dst = vms.destination(4 * MIB)
            for vm in (src, dst):
                vm.engine.migrate_set_capabilities(
                    [("dirty-bitmaps", True), ("zero-blocks", True)]
                )
            src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}", blk=blk, inc=inc)
            info = src.wait("completed", "failed")
            assert info.status is not None and info.status.value == "completed"
            dst.wait("completed")
            assert same_memory(src.ram, dst.ram)
        src = vms.source(4 * MIB)
        src.engine.migrate_set_parameters({"block-incremental": True})
        with pytest.raises(VmCommandError) as refused:
            src.engine.migrate("tcp:127.0.0.1:1", inc=True)
        assert refused.value.desc == INCOMPATIBLE.desc
    finally:
        vms.close()
