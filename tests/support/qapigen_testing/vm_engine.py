"""Two reference VM engines in one process, for migration tests: a factory of engines
with their event logs, migration modes (capabilities and parameters set on both
sides), a source with a busy guest, and the checks the VM's tests share."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qapigen_vm import GuestRam, MigrationEngine, MigrationInfo

MIB = 1 << 20
Event = tuple[str, dict[str, object]]


class EventLog:
    """Collects one VM's events; the test may react to them synchronously."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.hook: Callable[[str, dict[str, object]], None] | None = None
        self._lock = threading.Lock()

    def __call__(self, name: str, data: dict[str, object]) -> None:
        with self._lock:
            self.events.append((name, data))
        if self.hook is not None:
            self.hook(name, data)

    def statuses(self) -> list[object]:
        return [d["status"] for n, d in self.events if n == "MIGRATION"]

    def names(self) -> list[str]:
        return [
            n if n != "MIGRATION" else f"MIGRATION:{d['status']}"
            for n, d in self.events
        ]

    def wait_last(self, name: str, timeout: float = 15.0) -> list[str]:
        """The names once `name` is the last event (or the timeout passed): the VM
        sets its state, then raises the event, so a test that saw the state may have
        to wait for the event."""
        deadline = time.monotonic() + timeout
        while self.names()[-1:] != [name] and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.names()


@dataclasses.dataclass
class Vm:
    engine: MigrationEngine
    events: EventLog
    failures: list[str]

    @property
    def ram(self) -> GuestRam:
        return self.engine.ram

    def status(self) -> str | None:
        info = self.engine.query_migrate()
        return None if info.status is None else info.status.value

    def wait(self, *wanted: str, timeout: float = 15.0) -> MigrationInfo:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.engine.query_migrate()
            if info.status is not None and info.status.value in wanted:
                return info
            time.sleep(0.005)
        raise AssertionError(f"status {self.status()} never became one of {wanted}")

    def wait_exit(self, timeout: float = 15.0) -> list[str]:
        """The destination's exit request (it comes after the source had the reason)."""
        deadline = time.monotonic() + timeout
        while not self.failures and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.failures

    def port(self) -> str:
        port = self.engine.listening_port()
        assert port is not None
        return port


class Factory:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.vms: list[Vm] = []

    def vm(
        self,
        size: int = 8 * MIB,
        *,
        incoming: str | None = None,
        start_paused: bool = False,
        vm_uuid: uuid.UUID | None = None,
        events: bool = True,
        ram: GuestRam | None = None,
    ) -> Vm:
        log = EventLog()
        failures: list[str] = []
        engine = MigrationEngine(
            ram if ram is not None else GuestRam(size),
            vm_uuid=vm_uuid,
            incoming=incoming,
            start_paused=start_paused,
            sink=log,
            on_incoming_failure=failures.append,
        )
        if events:
            engine.migrate_set_capabilities([("events", True)])
        engine.start()
        vm = Vm(engine, log, failures)
        self.vms.append(vm)
        return vm

    def source(self, size: int = 8 * MIB, seed: int = 1, **kw: object) -> Vm:
        ram = GuestRam(size)
        ram.fill_random(seed)
        # a few zero pages in the middle, sent as duplicates
        ram.pages[100:164] = 0
        return self.vm(ram=ram, **kw)  # type: ignore[arg-type]

    def destination(
        self, size: int = 8 * MIB, uri: str = "tcp:127.0.0.1:0", **kw: object
    ) -> Vm:
        kw.setdefault("start_paused", True)
        return self.vm(size, incoming=uri, **kw)  # type: ignore[arg-type]

    def close(self) -> None:
        for vm in self.vms:
            vm.engine.close()


def same_memory(a: GuestRam, b: GuestRam) -> bool:
    return bool(np.array_equal(a.pages, b.pages))


def ignore_passes(names: list[str]) -> list[str]:
    return [n for n in names if n != "MIGRATION_PASS"]


def assert_failed_and_running(src: Vm, dst: Vm | None) -> MigrationInfo:
    info = src.wait("failed", "completed")
    assert info.status is not None and info.status.value == "failed", info
    assert info.error_desc
    assert src.engine.query_status()["running"] is True
    if "STOP" in src.events.names():
        # the failed status comes first, then the guest runs again (as in QEMU)
        assert src.events.wait_last("RESUME")[-1] == "RESUME"
    if dst is not None:
        dst.wait("failed")
        assert "completed" not in dst.events.statuses()
        assert dst.wait_exit()
    return info


@dataclasses.dataclass(frozen=True)
class Mode:
    """A migration mode: capabilities and parameters set on both sides."""

    capabilities: tuple[str, ...] = ()
    parameters: dict[str, object] = dataclasses.field(default_factory=dict)

    def apply(self, vm: Vm) -> None:
        if self.capabilities:
            vm.engine.migrate_set_capabilities(
                [(name, True) for name in self.capabilities]
            )
        if self.parameters:
            vm.engine.migrate_set_parameters(self.parameters)

    def to_json(self) -> str:
        return json.dumps(
            {"capabilities": list(self.capabilities), "parameters": self.parameters}
        )


def busy_source(
    vms: Factory,
    size: int,
    mode: Mode,
    *,
    rate: int = 20000,
    pages: int = 1024,
    bytes_per_page: int | None = 8,
) -> Vm:
    """A source whose guest rewrites a few bytes of pages in a working set."""
    src = vms.source(size)
    mode.apply(src)
    src.engine.start_workload(
        rate=rate,
        first_page=256,
        pages=pages,
        pattern="random",
        seed=7,
        bytes_per_page=bytes_per_page,
    )
    return src


def migrate_and_check(src: Vm, dst: Vm, uri: str | None = None) -> None:
    """Migrate to ``dst`` (tcp unless ``uri``), expect completion and equal RAM."""
    src.engine.migrate(uri or f"tcp:127.0.0.1:{dst.port()}")
    info = src.wait("completed", "failed", timeout=25)
    assert info.status is not None and info.status.value == "completed", info
    dst.wait("completed")
    assert same_memory(src.ram, dst.ram)
