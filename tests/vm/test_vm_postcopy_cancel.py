"""migrate_cancel during postcopy in the reference VM, as QEMU 7.2 does it.

Two engines in one process over loopback TCP (see test_vm_postcopy). What is checked
beyond the parity scenarios (qapigen_testing/scenarios/postcopy_cancel.py): the destination
never claims completion and never asks to exit; its memory is consistent (every page
it holds is the source's page as frozen at the switch, and the pages it lacks stay
missing); the source guest is never restarted after a postcopy cancel; a cancel of a
paused or recovering postcopy leaves the migration thread parked in cancelling, and
only the VM's shutdown ends it. The last test checks, on a real QEMU 7.2 pair, the
facts the parity scenarios rest on, so that their comparison cannot be vacuous.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from qapigen_testing.postcopy_pair import postcopy_pair, start_postcopy
from qapigen_testing.scenarios.postcopy_cancel import silent_listener
from qapigen_testing.vm_engine import MIB, Factory, Vm, ignore_passes
from qapigen_vm import VmCommandError
from qapigen_vm.source import OutgoingMigration

pytestmark = pytest.mark.timeout(60)

WATCH = 0.5
"""Seconds a state is watched to stay as it is (it would change within ms)."""


def in_postcopy(vms: Factory) -> tuple[Vm, Vm]:
    """A pair in postcopy-active, crawling (2 MiB/s for 8 MiB), an idle destination
    guest, the source guest stopped by the switch."""
    src, dst = postcopy_pair(vms, postcopy_bandwidth=2 * MIB)
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    dst.wait("postcopy-active")
    src.wait("postcopy-active")
    time.sleep(0.2)
    return src, dst


def outgoing(vm: Vm) -> OutgoingMigration:
    source = vm.engine.source
    assert source is not None
    return source


def refusal(call: object) -> str:
    assert callable(call)
    with pytest.raises(VmCommandError) as info:
        call()
    return info.value.desc


def assert_destination_consistent(src: Vm, dst: Vm) -> None:
    """Paused for good, never completed, not exiting; what it holds is the source's
    memory (frozen since the switch), and some pages are still missing."""
    time.sleep(WATCH)
    assert dst.status() == "postcopy-paused"
    assert "completed" not in dst.events.statuses()
    assert "failed" not in dst.events.statuses()
    assert dst.failures == []  # a QEMU destination does not exit here
    assert dst.engine.query_status()["status"] == "running"
    incoming = dst.engine.incoming
    assert incoming is not None and incoming.postcopy is not None
    missing = incoming.postcopy.presence.missing_mask()
    assert 0 < missing.sum() < dst.ram.page_count
    present = ~missing
    assert np.array_equal(src.ram.pages[present], dst.ram.pages[present])


def assert_parked_in_cancelling(src: Vm) -> None:
    """Stays cancelling, thread alive; every further cancel announces it again;
    neither resume nor a new migration is possible; shutdown ends the thread."""
    migration = outgoing(src)
    time.sleep(WATCH)
    assert src.status() == "cancelling"
    assert migration._thread is not None and migration._thread.is_alive()
    before = src.events.statuses().count("cancelling")
    src.engine.migrate_cancel()
    assert src.events.statuses().count("cancelling") == before + 1
    assert src.status() == "cancelling"
    assert refusal(lambda: src.engine.migrate("tcp:127.0.0.1:1", resume=True)) == (
        "Cannot resume if there is no paused migration"
    )
    assert refusal(lambda: src.engine.migrate("tcp:127.0.0.1:1")) == (
        "There's a migration process in progress"
    )
    assert src.engine.query_status()["status"] == "finish-migrate"
    # what the VM's shutdown does: the parked thread ends promptly
    migration.teardown()
    migration.join(5)
    assert not migration._thread.is_alive()


# -- postcopy-active ----------------------------------------------------------------------


def test_cancel_in_postcopy_active_ends_cancelled_and_keeps_the_guest_stopped(
    vms: Factory,
) -> None:
    src, dst = in_postcopy(vms)
    # the destination's migrate_cancel acts on an outgoing migration: it has none
    events_before = list(dst.events.events)
    dst.engine.migrate_cancel()
    assert dst.status() == "postcopy-active"
    assert dst.events.events == events_before
    workload = src.engine.runctl.workload
    assert workload is not None
    written = workload.pages_written
    src.engine.migrate_cancel()
    src.wait("cancelled")
    outgoing(src).join(5)
    assert ignore_passes(src.events.names())[-5:] == [
        "MIGRATION:active",
        "MIGRATION:postcopy-active",
        "STOP",
        "MIGRATION:cancelling",
        "MIGRATION:cancelled",
    ]
    dst.wait("postcopy-paused")
    assert_destination_consistent(src, dst)
    # never restarted: the guest's pages live on the destination now
    assert "RESUME" not in src.events.names()
    assert src.engine.query_status() == {
        "running": False,
        "singlestep": False,
        "status": "postmigrate",
    }
    assert workload.pages_written == written
    assert refusal(lambda: src.engine.migrate("tcp:127.0.0.1:1", resume=True)) == (
        "Cannot resume if there is no paused migration"
    )
    assert refusal(lambda: src.engine.migrate("tcp:127.0.0.1:1")) == (
        "Can't migrate the vm that was paused due to previous migration"
    )
    # the destination still listens for a recovery that cannot come
    dst.engine.migrate_recover("tcp:127.0.0.1:0")
    assert dst.status() == "postcopy-paused"
    src.engine.migrate_cancel()  # over: no event
    assert src.events.statuses()[-1] == "cancelled"
    assert src.status() == "cancelled"


# -- postcopy-paused and postcopy-recover ---------------------------------------------------


@pytest.mark.parametrize("paused_by", ["source", "destination"])
def test_cancel_in_postcopy_paused_stays_cancelling(
    vms: Factory, paused_by: str
) -> None:
    src, dst = in_postcopy(vms)
    (src if paused_by == "source" else dst).engine.migrate_pause()
    src.wait("postcopy-paused")
    dst.wait("postcopy-paused")
    dst.engine.migrate_cancel()  # no-op on the destination
    assert dst.status() == "postcopy-paused"
    src.engine.migrate_cancel()
    assert src.events.statuses()[-2:] == ["postcopy-paused", "cancelling"]
    assert_destination_consistent(src, dst)
    assert_parked_in_cancelling(src)


def test_cancel_in_postcopy_recover_stays_cancelling(vms: Factory) -> None:
    src, dst = in_postcopy(vms)
    src.engine.migrate_pause()
    src.wait("postcopy-paused")
    dst.wait("postcopy-paused")
    with silent_listener() as port:
        src.engine.migrate(f"tcp:127.0.0.1:{port}", resume=True)
        src.wait("postcopy-recover")
        src.engine.migrate_cancel()
        assert src.events.statuses()[-2:] == ["postcopy-recover", "cancelling"]
        assert_destination_consistent(src, dst)
        assert_parked_in_cancelling(src)


def test_shutdown_during_postcopy_still_ends_the_migration(vms: Factory) -> None:
    """The VM's own shutdown (engine.close) is not stuck by postcopy."""
    src, _ = in_postcopy(vms)
    migration = outgoing(src)
    started = time.monotonic()
    src.engine.close()
    assert migration._thread is not None and not migration._thread.is_alive()
    assert time.monotonic() - started < 5


# -- the facts on QEMU 7.2 the parity scenarios rest on -------------------------------------

QEMU_FACTS: dict[str, dict[str, object]] = {
    "postcopy-cancel-active": {
        "source final event": "cancelled",
        "destination after the cut": "postcopy-paused",
        "source run state after cancel": ("postmigrate", False),
        "destination run state after cancel": ("running", True),
        "destination exit": "running",
    },
    "postcopy-cancel-paused": {
        "source cancel event": "cancelling",
        "source cancel event again": "cancelling",
        "source run state at the end": ("finish-migrate", False),
        "destination exit": "running",
    },
    "postcopy-cancel-after-cut": {
        "source cancel event again": "cancelling",
        "destination exit": "running",
    },
    "postcopy-cancel-recovering": {
        "source recovering": "postcopy-recover",
        "source cancel event again": "cancelling",
    },
}


@pytest.mark.qemu
@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(QEMU_FACTS))
def test_parity_scenarios_observe_qemu(name: str) -> None:
    from qapigen_testing.scenarios import SCENARIOS
    from qapigen_testing.scenarios.parity import qemu_observation

    (scenario,) = [s for s in SCENARIOS if s.name == name]
    observation = qemu_observation(scenario)
    for label, value in QEMU_FACTS[name].items():
        assert observation.steps.get(label) == value, label
    if name == "postcopy-cancel-active":
        assert "RESUME" not in observation.source_events
    else:
        view = observation.steps["source at the end"]
        assert getattr(view, "status", None) == "cancelling"
