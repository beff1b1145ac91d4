"""Postcopy in the reference VM: the destination runs while pages are still missing.

Two engines in one process over loopback TCP. The destination guest really runs
during postcopy: it touches random pages, and every touch of a missing page waits for
a page request to be served. Memory is compared byte for byte against the source's
RAM, which is frozen from the switch on: all of it for an idle destination guest, and
every page the destination guest did not write itself for a busy one.
"""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from qapigen_testing.fault_trials import Proxy, fault_trial_seeds
from qapigen_testing.postcopy_pair import postcopy_pair, start_postcopy
from qapigen_testing.vm_engine import MIB, Factory, Vm, ignore_passes, same_memory
from qapigen_vm import GuestRam, VmCommandError
from qapigen_vm.postcopy_ram import PostcopyRam

pytestmark = pytest.mark.timeout(30)


def completed(vm: Vm, timeout: float = 25.0) -> None:
    info = vm.wait("completed", "failed", timeout=timeout)
    assert info.status is not None and info.status.value == "completed", info


def guest_written_pages(dst: Vm) -> np.ndarray:
    """Stop the destination guest and return which pages it wrote (its dirty log)."""
    dst.engine.stop()
    written = np.zeros(dst.ram.page_count, dtype=np.bool_)
    dst.engine.log.harvest_into(written)
    return written


def assert_memory_matches(src: Vm, dst: Vm) -> None:
    """Byte for byte, except the pages the destination guest wrote after the switch."""
    written = guest_written_pages(dst)
    untouched = ~written
    assert untouched.sum() > dst.ram.page_count // 4
    assert np.array_equal(src.ram.pages[untouched], dst.ram.pages[untouched])


# -- the happy path -------------------------------------------------------------------


def test_postcopy_completes_with_identical_memory(vms: Factory) -> None:
    src, dst = postcopy_pair(vms)
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    completed(src)
    completed(dst)
    assert same_memory(src.ram, dst.ram)
    # QEMU 7.2's orders: the source goes postcopy-active before it stops the guest
    assert ignore_passes(src.events.names()) == [
        "MIGRATION:setup",
        "MIGRATION:active",
        "MIGRATION:postcopy-active",
        "STOP",
        "MIGRATION:completed",
    ]
    assert dst.events.names() == [
        "MIGRATION:setup",
        "MIGRATION:active",
        "MIGRATION:postcopy-active",
        "RESUME",
        "MIGRATION:completed",
    ]
    assert src.engine.query_status()["status"] == "postmigrate"
    assert dst.engine.query_status()["status"] == "running"
    ram = src.engine.query_migrate().ram
    assert ram is not None and ram.remaining == 0
    assert ram.normal + ram.duplicate >= src.ram.page_count


def test_destination_guest_waits_for_requested_pages(vms: Factory) -> None:
    src, dst = postcopy_pair(vms, size=16 * MIB, postcopy_bandwidth=8 * MIB)
    dst.engine.start_workload(
        rate=3000, pages=1024, pattern="random", seed=5, bytes_per_page=8
    )
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    completed(src)
    completed(dst)
    ram = src.engine.query_migrate().ram
    assert ram is not None and ram.postcopy_requests > 0
    wire = dst.engine.query_migrate().to_wire()
    vcpu = wire["postcopy-vcpu-blocktime"]
    assert isinstance(vcpu, list) and len(vcpu) == 1
    assert wire["postcopy-blocktime"] == vcpu[0]
    workload = dst.engine.runctl.workload
    assert workload is not None and workload.pages_written > 0
    assert_memory_matches(src, dst)


def test_blocktime_needs_its_capability(vms: Factory) -> None:
    src, dst = postcopy_pair(vms, guest_rate=2000)
    dst.engine.migrate_set_capabilities([("postcopy-blocktime", False)])
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    completed(src)
    completed(dst)
    assert "postcopy-blocktime" not in dst.engine.query_migrate().to_wire()


def test_postcopy_bandwidth_limit_holds(vms: Factory) -> None:
    limit = 4 * MIB
    src, dst = postcopy_pair(vms, postcopy_bandwidth=limit)
    at_switch: dict[str, float] = {}

    def on_event(name: str, data: dict[str, object]) -> None:
        if data.get("status") == "postcopy-active":
            ram = src.engine.query_migrate().ram
            assert ram is not None
            at_switch.update(time=time.monotonic(), bytes=ram.transferred)

    src.events.hook = on_event
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    completed(src)
    elapsed = time.monotonic() - at_switch["time"]
    ram = src.engine.query_migrate().ram
    assert ram is not None and ram.postcopy_requests == 0  # an idle destination
    sent = ram.transferred - at_switch["bytes"]
    assert sent > src.ram.size // 2
    # The limit can only slow the transfer down: it took at least sent / limit, less
    # the one window that may start with a full budget.
    assert elapsed >= sent / limit - 0.15


def test_release_ram_frees_the_sources_sent_pages(vms: Factory) -> None:
    src, dst = postcopy_pair(vms, source_caps=("release-ram",))
    workload = src.engine.runctl.workload
    assert workload is not None
    workload.close()  # an idle source guest: its RAM before migrate is what arrives
    before = src.ram.pages.copy()
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    completed(src)
    completed(dst)
    assert np.array_equal(dst.ram.pages, before)
    released = ~src.ram.words.any(axis=1)
    assert released.sum() > src.ram.page_count // 2


@pytest.mark.parametrize("mode", ["multifd", "compress", "xbzrle"])
def test_postcopy_after_precopy_passes_in_other_modes(vms: Factory, mode: str) -> None:
    """A first pass over RAM in ``mode``, then postcopy (asked for at pass 2, from
    the event, so that precopy cannot converge first)."""
    dst = vms.destination(uri="defer", start_paused=False)
    dst.engine.migrate_set_capabilities([("postcopy-ram", True), (mode, True)])
    dst.engine.migrate_incoming("tcp:127.0.0.1:0")
    src = vms.source()
    src.engine.migrate_set_capabilities([("postcopy-ram", True), (mode, True)])
    src.engine.migrate_set_parameters({"max-bandwidth": 32 * MIB, "downtime-limit": 1})
    src.engine.start_workload(
        rate=5000, first_page=512, pages=256, seed=3, bytes_per_page=8
    )

    def on_event(name: str, data: dict[str, object]) -> None:
        if name == "MIGRATION_PASS" and data["pass"] == 2:
            src.engine.migrate_start_postcopy()

    src.events.hook = on_event
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    completed(src)
    completed(dst)
    assert "postcopy-active" in dst.events.statuses()
    assert same_memory(src.ram, dst.ram)


# -- command errors -------------------------------------------------------------------


def _desc(call: object) -> str:
    assert callable(call)
    with pytest.raises(VmCommandError) as info:
        call()
    return info.value.desc


def test_postcopy_command_errors(vms: Factory) -> None:
    src, dst = postcopy_pair(vms)
    src.engine.migrate_set_capabilities([("postcopy-ram", False)])
    assert _desc(src.engine.migrate_start_postcopy) == (
        "Enable postcopy with migrate_set_capability before the start of migration"
    )
    src.engine.migrate_set_capabilities([("postcopy-ram", True)])
    assert _desc(src.engine.migrate_start_postcopy) == (
        "Postcopy must be started after migration has been started"
    )
    assert _desc(src.engine.migrate_pause) == (
        "migrate-pause is currently only supported during postcopy-active state"
    )
    assert _desc(lambda: dst.engine.migrate_recover("tcp:127.0.0.1:0")) == (
        "Migrate recover can only be run when postcopy is paused."
    )
    assert _desc(lambda: src.engine.migrate("tcp:127.0.0.1:1", resume=True)) == (
        "Cannot resume if there is no paused migration"
    )
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    completed(src)
    completed(dst)
    src.engine.migrate_start_postcopy()  # only sets a flag: no error after the end
    assert _desc(src.engine.migrate_pause).startswith("migrate-pause is currently")


def test_destination_without_postcopy_fails_at_the_switch(vms: Factory) -> None:
    src, dst = postcopy_pair(vms)
    dst.engine.migrate_set_capabilities([("postcopy-ram", False)])
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    dst.wait("failed")
    assert "postcopy-ram capability is off" in dst.wait_exit()[0]
    assert "completed" not in dst.events.statuses()


# -- pause and recovery ---------------------------------------------------------------


def recover(src: Vm, dst: Vm) -> None:
    """Both sides paused: migrate-recover on the destination, resume the source."""
    src.wait("postcopy-paused")
    dst.wait("postcopy-paused")
    # QEMU 7.2 shows the blocktime only once postcopy has completed
    assert "postcopy-blocktime" not in dst.engine.query_migrate().to_wire()
    setups = dst.events.statuses().count("setup")
    dst.engine.migrate_recover("tcp:127.0.0.1:0")
    # QEMU: setup is announced although the state stays postcopy-paused
    assert dst.events.statuses().count("setup") == setups + 1
    assert dst.status() == "postcopy-paused"
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}", resume=True)
    completed(src)
    completed(dst)


@pytest.mark.parametrize("side", ["source", "destination"])
def test_migrate_pause_then_recover_completes(vms: Factory, side: str) -> None:
    src, dst = postcopy_pair(vms, postcopy_bandwidth=4 * MIB, guest_rate=2000)
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    dst.wait("postcopy-active")
    time.sleep(0.3)
    (src if side == "source" else dst).engine.migrate_pause()
    recover(src, dst)
    assert src.events.statuses()[-4:] == [
        "postcopy-paused",
        "postcopy-recover",
        "postcopy-active",
        "completed",
    ]
    assert dst.events.statuses()[-5:] == [
        "postcopy-paused",
        "setup",
        "postcopy-recover",
        "postcopy-active",
        "completed",
    ]
    assert_memory_matches(src, dst)


def test_resume_refused_with_release_ram(vms: Factory) -> None:
    src, dst = postcopy_pair(
        vms, postcopy_bandwidth=2 * MIB, source_caps=("release-ram",)
    )
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    dst.wait("postcopy-active")
    src.engine.migrate_pause()
    src.wait("postcopy-paused")
    assert _desc(lambda: src.engine.migrate("tcp:127.0.0.1:1", resume=True)) == (
        "Postcopy recovery cannot work when release-ram capability is set"
    )


def test_failed_recovery_attempt_goes_back_to_paused(vms: Factory) -> None:
    src, dst = postcopy_pair(vms, postcopy_bandwidth=4 * MIB)
    start_postcopy(src, f"tcp:127.0.0.1:{dst.port()}")
    dst.wait("postcopy-active")
    dst.engine.migrate_pause()
    src.wait("postcopy-paused")
    closed = Proxy("1")  # a port nobody listens on behind it is not needed: close it
    port = closed.port
    closed.close()
    src.engine.migrate(f"tcp:127.0.0.1:{port}", resume=True)
    deadline = time.monotonic() + 5
    while "postcopy-recover" not in src.events.statuses():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    src.wait("postcopy-paused")
    assert src.events.statuses()[-2:] == ["postcopy-recover", "postcopy-paused"]
    recover(src, dst)
    assert same_memory(src.ram, dst.ram)


@pytest.mark.parametrize("seed", fault_trial_seeds())
def test_cut_connection_pauses_then_recovers(vms: Factory, seed: int) -> None:
    """A cut at a seeded moment of postcopy: both sides pause, recovery completes."""
    rng = random.Random(seed)
    src, dst = postcopy_pair(
        vms, postcopy_bandwidth=4 * MIB, guest_rate=rng.choice([0, 1000, 4000])
    )
    proxy = Proxy(dst.port())
    try:
        start_postcopy(src, f"tcp:127.0.0.1:{proxy.port}")
        # A cut before the destination has switched would kill it for good (QEMU
        # too): the trials cut postcopy itself.
        dst.wait("postcopy-active")
        time.sleep(rng.uniform(0.0, 0.5))
        proxy.close()
        recover(src, dst)
    finally:
        proxy.close()
    assert "failed" not in src.events.statuses() + dst.events.statuses()
    assert_memory_matches(src, dst)


# -- the destination's page-present bitmap --------------------------------------------


def test_received_pages_never_overwrite_present_ones() -> None:
    ram = GuestRam(64 * 4096)
    missing = np.zeros(64, dtype=np.bool_)
    missing[[3, 4, 5]] = True
    presence = PostcopyRam(ram, missing, lambda pages: None)
    ram.pages[2] = 7  # the guest wrote a present page
    data = np.full((3, 4096), 9, dtype=np.uint8)
    presence.place(np.array([2, 3, 4]), data, np.array([5]))
    assert (ram.pages[2] == 7).all()
    assert (ram.pages[3] == 9).all() and (ram.pages[4] == 9).all()
    assert presence.missing_count() == 0
    ram.pages[3] = 1
    presence.place(np.array([3]), data[:1], np.empty(0, dtype=np.intp))
    assert (ram.pages[3] == 1).all()  # arrived twice: the second copy is dropped


def test_access_to_a_missing_page_requests_and_waits() -> None:
    ram = GuestRam(16 * 4096)
    missing = np.zeros(16, dtype=np.bool_)
    missing[8:] = True
    requested: list[list[int]] = []
    presence = PostcopyRam(ram, missing, lambda pages: requested.append(list(pages)))
    quit_event = threading.Event()
    presence.access(np.array([0, 1]), quit_event)  # present: no request, no wait
    assert requested == []
    done = threading.Event()

    def guest() -> None:
        presence.access(np.array([1, 9, 9]), quit_event)
        done.set()

    threading.Thread(target=guest, daemon=True).start()
    deadline = time.monotonic() + 5
    while not requested:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert requested == [[9]]
    assert not done.wait(0.1)  # still blocked on page 9
    assert list(presence.waiting_pages()) == [9]
    presence.place(
        np.array([9]), np.ones((1, 4096), dtype=np.uint8), np.empty(0, dtype=np.intp)
    )
    assert done.wait(5)
    assert presence.faults == 1 and presence.blocktime_ms >= 100
    presence.release()
    presence.access(np.array([10]), quit_event)  # released: never blocks again
