"""COLO (capability x-colo) in the reference VM: real checkpoints of real memory.

Two engines in this process, a primary whose guest dirties memory and a secondary:
after every checkpoint the secondary's RAM is the primary's RAM as it was at that
checkpoint (snapshotted while the primary was stopped for it); a failover on either
side leaves the survivor running with that memory; a checkpoint cut mid-way leaves
the secondary with the last complete one. The QEMU side of the parity is in
qapigen_testing/scenarios/colo.py (run by tests/interop/test_vm_parity.py); the last
test here checks that scenario really observes COLO on QEMU, so the parity cannot
pass vacuously.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from qapigen_testing.colo_pair import MIB, ColoPair, ColoVm, wait_for
from qapigen_testing.scenarios.observation import ErrorSeen
from qapigen_vm import GuestRam, VmCommandError
from qapigen_vm.stream import ByteSink

pytestmark = pytest.mark.timeout(60)

PAGE = 4096


@pytest.fixture
def pair() -> Iterator[ColoPair]:
    made = ColoPair()
    yield made
    made.close()


def test_entering_colo_follows_qemu(pair: ColoPair) -> None:
    pair.start(dirty_rate=0)
    assert pair.primary.names()[:5] == [
        "MIGRATION setup",
        "MIGRATION active",
        "STOP",
        "MIGRATION colo",
        "RESUME",
    ]
    wait_for(lambda: pair.secondary.run_state() == "running", "the secondary to run")
    assert pair.secondary.names()[:4] == [
        "MIGRATION setup",
        "MIGRATION active",
        "MIGRATION colo",
        "RESUME",
    ]
    assert pair.primary.engine.query_migrate().to_wire() == {"status": "colo"}
    assert pair.primary.colo_status() == ("primary", "none", "none")
    assert pair.secondary.colo_status() == ("secondary", "none", "none")
    assert pair.primary.run_state() == "running"


@pytest.mark.parametrize("caps", [(), ("xbzrle",), ("multifd",), ("compress",)])
def test_checkpoints_copy_the_dirtied_memory(caps: tuple[str, ...]) -> None:
    """Whatever carried the first full migration, checkpoints follow it."""
    pair = ColoPair(caps=caps)
    try:
        check_checkpoints_copy_the_dirtied_memory(pair)
    finally:
        pair.close()


def check_checkpoints_copy_the_dirtied_memory(pair: ColoPair) -> None:
    pair.start()
    written_at_start = pair.workload.pages_written
    pair.wait_checkpoints(3)
    assert pair.workload.pages_written > written_at_start  # the guest really ran
    transferred = pair.primary_colo.migration.counters.transferred
    syncs = pair.primary_colo.migration.counters.dirty_sync_count
    # stop the primary's guest: the next full checkpoint carries its final memory
    # (one may be under way, started while the guest still ran)
    done = pair.secondary_colo.checkpoints
    pair.primary.engine.stop()
    pair.wait_checkpoints(done + 2)
    assert np.array_equal(pair.secondary.ram.pages, pair.primary.ram.pages)
    assert pair.secondary.run_state() == "paused"  # the device state came along
    counters = pair.primary_colo.migration.counters
    assert counters.transferred > transferred  # checkpoints count in the stats
    assert counters.dirty_sync_count > syncs  # one sync per checkpoint
    # every checkpoint stopped and resumed the secondary's guest
    secondary = pair.secondary.names()
    assert secondary.count("STOP") >= 4 and secondary.count("RESUME") >= 4
    assert pair.primary.status() == "colo" and pair.secondary.status() == "colo"


def test_every_checkpoint_is_the_primary_memory_of_that_moment(
    pair: ColoPair,
) -> None:
    """Checked inside each checkpoint, while the primary keeps dirtying between
    them: the secondary's RESUME comes right after it applied checkpoint k, with the
    primary still stopped waiting for "loaded", so its RAM must be snapshot k."""
    results: list[bool] = []

    def compare(name: str, data: dict[str, object]) -> None:
        colo = pair.secondary.engine.incoming
        if name == "RESUME" and colo is not None and colo.colo is not None:
            applied = colo.colo.checkpoints
            if applied:
                snapshot = pair.snapshots[applied - 1]
                results.append(np.array_equal(pair.secondary.ram.pages, snapshot))

    pair.secondary.hook = compare
    pair.start()
    wait_for(lambda: len(results) >= 5, "5 checkpoints compared")
    assert all(results), results
    # the memory really changed between checkpoints
    assert not np.array_equal(pair.snapshots[0], pair.snapshots[-1])


def test_failover_to_the_secondary_keeps_the_last_checkpoint(pair: ColoPair) -> None:
    pair.start()
    pair.wait_checkpoints(2)
    # No checkpoint under way at the failover (its STOP would come before it): a
    # longer delay, set behind the command's back (migrate-set-parameters in colo
    # would checkpoint at once, as QEMU does).
    primary = pair.primary.engine
    primary.settings.set_parameters({"x-checkpoint-delay": 20000})
    since = len(pair.secondary.events)
    pair.secondary.engine.x_colo_lost_heartbeat()
    wait_for(lambda: pair.secondary.status() == "completed", "secondary failover")
    primary.migrate_set_parameters({"x-checkpoint-delay": 100})
    wait_for(lambda: pair.secondary.run_state() == "running", "the survivor to run")
    applied = pair.secondary_colo.checkpoints
    assert np.array_equal(pair.secondary.ram.pages, pair.snapshots[applied - 1])
    assert pair.secondary.names(since) == [
        "STOP",
        "MIGRATION completed",
        "COLO_EXIT",
        "RESUME",
    ]
    assert pair.secondary.colo_exits() == [{"mode": "secondary", "reason": "request"}]
    assert pair.secondary.colo_status() == ("none", "secondary", "request")
    assert pair.secondary.engine.query_migrate().to_wire() == {"status": "completed"}
    # the primary notices at its next checkpoint, keeps its guest and stays colo
    wait_for(lambda: pair.primary.colo_exits() != [], "the primary's COLO_EXIT")
    assert pair.primary.colo_exits() == [{"mode": "primary", "reason": "error"}]
    assert pair.primary.status() == "colo"
    wait_for(lambda: pair.primary.run_state() == "running", "the primary to run")
    with pytest.raises(VmCommandError, match="The feature 'colo' is not enabled"):
        pair.secondary.engine.x_colo_lost_heartbeat()


def test_failover_on_the_primary(pair: ColoPair) -> None:
    pair.start()
    pair.wait_checkpoints(1)
    since = len(pair.primary.events)
    pair.primary.engine.x_colo_lost_heartbeat()
    wait_for(lambda: pair.primary.status() == "completed", "primary failover")
    names = pair.primary.names(since)
    # a checkpoint may have been under way (STOP/RESUME of its own) when asked
    assert names[-4:] == ["STOP", "MIGRATION completed", "COLO_EXIT", "RESUME"]
    assert pair.primary.colo_exits() == [{"mode": "primary", "reason": "request"}]
    assert pair.primary.colo_status() == ("none", "primary", "request")
    wire = pair.primary.engine.query_migrate().to_wire()
    assert {"status", "setup-time", "total-time", "downtime", "ram"} <= set(wire)
    # QEMU 7.2 computes these only for a migration that completes on its own
    assert (wire["total-time"], wire["downtime"]) == (0, 0)
    ram = wire["ram"]
    assert isinstance(ram, dict) and ram["transferred"] > 0  # real statistics stay
    written = pair.workload.pages_written
    wait_for(lambda: pair.workload.pages_written > written, "the guest to go on")
    # the secondary sees its stream end: COLO_EXIT error, and stays colo until its
    # own failover, which keeps the memory of the last checkpoint
    wait_for(lambda: pair.secondary.colo_exits() != [], "the secondary's COLO_EXIT")
    assert pair.secondary.colo_exits() == [{"mode": "secondary", "reason": "error"}]
    assert pair.secondary.status() == "colo"
    assert pair.secondary.colo_status() == ("secondary", "none", "none")
    since = len(pair.secondary.events)
    pair.secondary.engine.x_colo_lost_heartbeat()
    wait_for(lambda: pair.secondary.status() == "completed", "secondary failover")
    assert "COLO_EXIT" not in pair.secondary.names(since)  # announced once
    applied = pair.secondary_colo.checkpoints
    assert np.array_equal(pair.secondary.ram.pages, pair.snapshots[applied - 1])


class CuttingChannel:
    """Passes `allowed` bytes of a checkpoint on, then cuts the connection."""

    def __init__(self, inner: ByteSink, allowed: int, cut: Callable[[], None]) -> None:
        self.inner = inner
        self.allowed = allowed
        self.cut = cut

    def send(self, data: bytes | memoryview) -> None:
        if len(data) > self.allowed:
            self.inner.send(memoryview(data)[: self.allowed])
            self.cut()
            raise OSError("connection cut by the test")
        self.allowed -= len(data)
        self.inner.send(data)


def test_a_checkpoint_cut_midway_is_not_applied(pair: ColoPair) -> None:
    # Most of the 2048 pages dirty per checkpoint: two page records of up to 4 MiB,
    # and the cut (after 5 MiB) falls in the second.
    pair.primary.engine.migrate_set_parameters({"x-checkpoint-delay": 300})
    pair.start(dirty_rate=20000)
    pair.wait_checkpoints(2)
    cut_at = len(pair.snapshots) + 1  # the checkpoint after the next snapshot

    def cut(name: str, data: dict[str, object]) -> None:
        if name == "MIGRATION_PASS" and pair.primary.status() == "colo":
            pair.snapshots.append(pair.primary.ram.pages.copy())
            if len(pair.snapshots) == cut_at:
                colo = pair.primary_colo
                writer = colo.writer
                writer.channel = CuttingChannel(
                    writer.channel, 5 * MIB, colo.channel.shutdown
                )

    pair.primary.hook = cut
    wait_for(lambda: pair.secondary.colo_exits() != [], "the secondary's COLO_EXIT")
    assert pair.secondary.colo_exits() == [{"mode": "secondary", "reason": "error"}]
    applied = pair.secondary_colo.checkpoints
    assert applied == cut_at - 1
    # part of the cut checkpoint reached the cache, none of it the guest's RAM
    last_complete = pair.snapshots[applied - 1]
    cache = pair.secondary_colo.cache.pages
    assert not np.array_equal(cache, last_complete)
    assert np.array_equal(pair.secondary.ram.pages, last_complete)
    pair.secondary.engine.x_colo_lost_heartbeat()
    wait_for(lambda: pair.secondary.status() == "completed", "secondary failover")
    wait_for(lambda: pair.secondary.run_state() == "running", "the survivor to run")
    assert np.array_equal(pair.secondary.ram.pages, last_complete)
    # the primary saw its checkpoint fail: COLO_EXIT error, guest running
    wait_for(lambda: pair.primary.colo_exits() != [], "the primary's COLO_EXIT")
    assert pair.primary.colo_exits() == [{"mode": "primary", "reason": "error"}]
    wait_for(lambda: pair.primary.run_state() == "running", "the primary to run")
    assert pair.primary.status() == "colo"


def test_migrate_cancel_in_colo_cuts_the_stream_but_keeps_the_status(
    pair: ColoPair,
) -> None:
    pair.primary.engine.migrate_set_parameters({"x-checkpoint-delay": 20000})
    pair.start(dirty_rate=0)
    pair.primary.engine.migrate_cancel()
    wait_for(lambda: pair.secondary.colo_exits() != [], "the secondary's COLO_EXIT")
    assert pair.primary.status() == "colo"
    assert pair.primary.colo_status() == ("primary", "none", "none")
    pair.primary.engine.x_colo_lost_heartbeat()
    wait_for(lambda: pair.primary.status() == "completed", "primary failover")
    assert pair.primary.colo_exits() == [{"mode": "primary", "reason": "error"}]


def test_setting_the_checkpoint_delay_in_colo_checkpoints_at_once() -> None:
    pair = ColoPair(delay_ms=60000)
    try:
        pair.start(dirty_rate=0)
        time.sleep(0.3)
        assert pair.secondary_colo.checkpoints == 0  # 60 s to the first one
        pair.primary.engine.migrate_set_parameters({"x-checkpoint-delay": 60000})
        pair.wait_checkpoints(1)
        time.sleep(0.3)
        assert pair.secondary_colo.checkpoints == 1  # then 60 s again
        # outside colo the parameter is only stored
        pair.secondary.engine.migrate_set_parameters({"x-checkpoint-delay": 50})
        assert pair.secondary_colo.checkpoints == 1
    finally:
        pair.close()


def test_migrate_in_colo_leaves_the_session_behind() -> None:
    """QEMU 7.2: setup, "duplicate yank instance" whatever the URI; the session goes
    on unaware until its next checkpoint is due; the secondary notices nothing."""
    pair = ColoPair(delay_ms=1500)
    try:
        pair.start(dirty_rate=0)
        primary, secondary = pair.primary, pair.secondary
        since = len(primary.events)
        with pytest.raises(VmCommandError, match="^duplicate yank instance$"):
            primary.engine.migrate("foo:bar")
        assert primary.names(since) == ["MIGRATION setup"]
        assert primary.engine.query_migrate().to_wire() == {"status": "setup"}
        assert primary.colo_status() == ("none", "none", "none")
        assert primary.run_state() == "running"
        with pytest.raises(VmCommandError, match="The feature 'colo' is not enabled"):
            primary.engine.x_colo_lost_heartbeat()
        with pytest.raises(VmCommandError, match="There's a migration process"):
            primary.engine.migrate(f"tcp:127.0.0.1:{pair.port}")
        # the delay runs out: the old session ends, without a checkpoint
        wait_for(lambda: primary.colo_exits() != [], "the primary's COLO_EXIT")
        assert primary.colo_exits() == [{"mode": "primary", "reason": "error"}]
        assert primary.status() == "setup"
        assert primary.run_state() == "running"
        time.sleep(0.3)
        assert secondary.colo_exits() == [] and secondary.status() == "colo"
        assert pair.secondary_colo.checkpoints == 0
        # migrate_cancel: cancelling for good, with the statistics of a new migration
        primary.engine.migrate_cancel()
        wire = primary.engine.query_migrate().to_wire()
        assert wire["status"] == "cancelling"
        assert isinstance(wire["ram"], dict) and wire["ram"]["transferred"] == 0
        time.sleep(0.3)
        assert primary.status() == "cancelling" and secondary.colo_exits() == []
        # the secondary can still go on alone
        secondary.engine.x_colo_lost_heartbeat()
        wait_for(lambda: secondary.status() == "completed", "secondary failover")
        assert secondary.colo_status() == ("none", "secondary", "request")
    finally:
        pair.close()


def test_an_extra_connection_to_the_secondary_is_closed() -> None:
    pair = ColoPair(delay_ms=60000)
    try:
        pair.start(dirty_rate=0)
        address = ("127.0.0.1", int(pair.port))
        for _ in range(2):  # the listener stays after one
            with socket.create_connection(address, timeout=5) as extra:
                assert extra.recv(1) == b""  # accepted, then closed
        info = pair.secondary.engine.query_migrate()
        assert info.status is not None and info.status.value == "colo"
        assert pair.secondary.engine.listening_port() == pair.port
        assert pair.secondary.colo_exits() == []  # the session did not notice
        pair.secondary.engine.x_colo_lost_heartbeat()
        wait_for(lambda: pair.secondary.status() == "completed", "secondary failover")
        assert pair.secondary.engine.query_migrate().to_wire() == {
            "status": "completed"
        }
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5).close()
    finally:
        pair.close()


def test_colo_over_a_pipe_waits_for_a_secondary_that_cannot_answer(
    tmp_path: Path,
) -> None:
    """exec: has no way back: colo, the guest left stopped, and a failover that only
    completes the migration (as QEMU 7.2, whose COLO thread stays blocked)."""
    vm = ColoVm(GuestRam(4 * MIB))
    try:
        vm.engine.migrate_set_capabilities([("x-colo", True)])
        stream = tmp_path / "colo-stream"
        vm.engine.migrate(f"exec:cat > {stream}")
        wait_for(lambda: vm.status() == "colo", "the primary in colo")
        assert vm.run_state() == "finish-migrate"
        assert vm.colo_status() == ("primary", "none", "none")
        # the shell of `exec:` creates the file when it runs, which may be after
        # the primary reached colo (the stream waits in the pipe meanwhile)
        wait_for(
            lambda: stream.exists() and stream.stat().st_size > 0,
            "the full migration in the file",
        )
        since = len(vm.events)
        vm.engine.x_colo_lost_heartbeat()
        wait_for(lambda: vm.status() == "completed", "the failover")
        assert vm.names(since) == ["MIGRATION completed"]
        assert vm.colo_exits() == []
        assert vm.run_state() == "finish-migrate"
        assert vm.colo_status() == ("none", "primary", "request")
        wire = vm.engine.query_migrate().to_wire()
        assert (wire["total-time"], wire["downtime"]) == (0, 0)
    finally:
        vm.engine.close()
        vm.ram.close()


def test_lost_heartbeat_outside_colo_is_refused() -> None:
    vm = ColoVm(GuestRam(1 * MIB))
    try:
        with pytest.raises(VmCommandError) as error:
            vm.engine.x_colo_lost_heartbeat()
        assert error.value.desc == "The feature 'colo' is not enabled"
        assert vm.colo_status() == ("none", "none", "none")
    finally:
        vm.engine.close()


EXPECTED_ON_QEMU: dict[str, dict[str, object]] = {
    "colo-primary-failover": {
        "source reached": "colo",
        "destination reached": "colo",
        "source colo status in colo": ("primary", "none", "none"),
        "source final event": "completed",
        "source times after failover": (0, 0),
        "destination COLO_EXIT": ("secondary", "error"),
        "destination colo status after failover": ("none", "secondary", "request"),
    },
    "colo-secondary-failover": {
        "extra connection in colo": "closed",
        "destination colo status after an extra connection": (
            "secondary",
            "none",
            "none",
        ),
        "destination final event": "completed",
        "extra connection after failover": "refused",
    },
    "colo-migrate-again": {
        "migrate in colo": ErrorSeen("GenericError", "duplicate yank instance"),
        "source after migrate in colo": "setup",
        "source colo status after migrate in colo": ("none", "none", "none"),
        "source lost-heartbeat after migrate": ErrorSeen(
            "GenericError", "The feature 'colo' is not enabled"
        ),
        "migrate again": ErrorSeen(
            "GenericError", "There's a migration process in progress"
        ),
        "source after cancel": "cancelling",
        "destination final event": "completed",
    },
    "colo-stopped-failover": {
        "source run state stopped in colo": ("paused", False),
        "destination run state stopped in colo": ("paused", False),
        "source final event": "completed",
        "source run state after failover": ("running", True),
        "destination run state after failover": ("running", True),
    },
    "colo-capability-off": {
        "source x-colo off in colo": "ok",
        "source colo status with x-colo off": ("primary", "none", "none"),
        "destination colo status with x-colo off": ("secondary", "none", "none"),
        "destination migrate-incoming in colo": ErrorSeen(
            "GenericError", "The incoming migration has already been started"
        ),
        "source final event": "completed",
        "destination final event": "completed",
    },
    "colo-over-exec": {
        "source reached": "colo",
        "source run state in colo": ("finish-migrate", False),
        "source final event": "completed",
        "source times after failover": (0, 0),
        "source colo status after failover": ("none", "primary", "request"),
        "source run state after failover": ("finish-migrate", False),
    },
}


@pytest.mark.qemu
@pytest.mark.parametrize("name", sorted(EXPECTED_ON_QEMU))
def test_colo_scenarios_observe_colo_on_qemu(name: str) -> None:
    """The parity of these scenarios must not pass vacuously: on QEMU they reach
    what they are about."""
    from qapigen_testing.peers import PeerKind, require_peers, site, start_pair
    from qapigen_testing.scenarios import SCENARIOS, observe

    require_peers(PeerKind.QEMU)
    (scenario,) = [s for s in SCENARIOS if s.name == name]
    with (
        site() as where,
        start_pair(PeerKind.QEMU, where, scenario.arguments(where)) as qemu,
    ):
        steps = asyncio.run(observe(qemu, scenario.body)).steps
    for label, value in EXPECTED_ON_QEMU[name].items():
        assert steps.get(label) == value, label
