"""COLO (capability x-colo) between two engines in one process: a primary with a
dirtying guest and a secondary, with the primary's memory snapshotted at every
checkpoint (what the secondary must end up with). The VM's COLO tests and
bench/bench_vm_colo.py use it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from qapigen_vm import GuestRam, MigrationEngine
from qapigen_vm.colo_primary import ColoPrimary
from qapigen_vm.colo_secondary import ColoSecondary

MIB = 1 << 20
Event = tuple[str, dict[str, object]]
Hook = Callable[[str, dict[str, object]], None]


class ColoVm:
    """One engine of a COLO pair and the events it emitted (optionally reacting to them)."""

    def __init__(
        self, ram: GuestRam, incoming: str | None = None, caps: tuple[str, ...] = ()
    ) -> None:
        self.events: list[Event] = []
        self.hook: Hook | None = None
        self._lock = threading.Lock()
        self.engine = MigrationEngine(ram, incoming=incoming, sink=self._sink)
        # before start(): a destination reads multifd when it starts listening
        self.engine.migrate_set_capabilities([(c, True) for c in ("events", *caps)])
        self.engine.start()

    def _sink(self, name: str, data: dict[str, object]) -> None:
        with self._lock:
            self.events.append((name, data))
        if self.hook is not None:
            self.hook(name, data)

    @property
    def ram(self) -> GuestRam:
        return self.engine.ram

    def names(self, since: int = 0) -> list[str]:
        with self._lock:
            events = self.events[since:]
        return [
            f"{n} {d['status']}" if n == "MIGRATION" else n
            for n, d in events
            if n != "MIGRATION_PASS"
        ]

    def colo_exits(self) -> list[dict[str, object]]:
        with self._lock:
            return [d for n, d in self.events if n == "COLO_EXIT"]

    def status(self) -> str | None:
        info = self.engine.query_migrate()
        return None if info.status is None else info.status.value

    def colo_status(self) -> tuple[str, str, str]:
        mode, last_mode, reason = self.engine.query_colo_status()
        return mode.value, last_mode.value, reason.value

    def run_state(self) -> object:
        return self.engine.query_status()["status"]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class ColoPair:
    """A primary (random RAM, a dirtying guest) and a secondary, in COLO."""

    def __init__(
        self, size: int = 8 * MIB, delay_ms: int = 100, caps: tuple[str, ...] = ()
    ) -> None:
        ram = GuestRam(size)
        ram.fill_random(7)
        ram.pages[100:164] = 0  # some zero pages, sent as such
        self.secondary = ColoVm(GuestRam(size), incoming="tcp:127.0.0.1:0", caps=caps)
        self.primary = ColoVm(ram, caps=caps)
        self.snapshots: list[npt.NDArray[np.uint8]] = []
        self.primary.hook = self._snapshot_at_checkpoint
        port = self.secondary.engine.listening_port()
        assert port is not None
        self.port = port
        self.primary.engine.migrate_set_capabilities([("x-colo", True)])
        self.primary.engine.migrate_set_parameters({"x-checkpoint-delay": delay_ms})

    def _snapshot_at_checkpoint(self, name: str, data: dict[str, object]) -> None:
        """MIGRATION_PASS of a checkpoint comes with the primary stopped, before its
        pages go out: the memory the secondary must end up with."""
        if name == "MIGRATION_PASS" and self.primary.status() == "colo":
            self.snapshots.append(self.primary.ram.pages.copy())

    def start(self, dirty_rate: int = 3000) -> None:
        self.workload = self.primary.engine.start_workload(
            rate=dirty_rate, pattern="random", seed=3
        )
        self.primary.engine.migrate(f"tcp:127.0.0.1:{self.port}")
        wait_for(lambda: self.primary.status() == "colo", "the primary in colo")
        wait_for(lambda: self.secondary.status() == "colo", "the secondary in colo")

    @property
    def primary_colo(self) -> ColoPrimary:
        colo = self.primary.engine.source.colo if self.primary.engine.source else None
        assert colo is not None
        return colo

    @property
    def secondary_colo(self) -> ColoSecondary:
        incoming = self.secondary.engine.incoming
        assert incoming is not None and incoming.colo is not None
        return incoming.colo

    def wait_checkpoints(self, count: int) -> None:
        wait_for(
            lambda: self.secondary_colo.checkpoints >= count,
            f"{count} checkpoints on the secondary",
        )

    def close(self) -> None:
        self.primary.engine.close()
        self.secondary.engine.close()
        self.primary.ram.close()
        self.secondary.ram.close()
