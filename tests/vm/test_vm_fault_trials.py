"""Seeded fault trials for the two modes whose own test files have fixed-seed fault
tests only: plain precopy and TLS. xbzrle, compress, multifd and postcopy have theirs
next to their other tests; all of them take QAPIGEN_VM_FAULT_TRIALS.

A trial cuts the connection, flips a byte (a cut, a corruption or a killed
destination process for plain; see `fault_trial`) at a seeded point of a migration of
a dirtying guest: the source must end failed with its guest running, the destination
must never complete. Under TLS a flipped byte breaks a record's integrity check, so
the destination must refuse it rather than load a wrong page.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from qapigen_testing.fault_trials import fault_trial, fault_trial_seeds
from qapigen_testing.pki import Pki
from qapigen_testing.vm_engine import (
    MIB,
    Factory,
    Mode,
    Vm,
    busy_source,
    migrate_and_check,
)
from qapigen_vm.tls import TlsCredsX509

pytestmark = pytest.mark.timeout(120)

FAULTS_PER_CYCLE = 3
"""`fault_trial` picks its fault by ``seed % 3``: cut, corrupt, kill."""
KILL = 2


@pytest.mark.parametrize("seed", fault_trial_seeds())
def test_plain_fault_trials(vms: Factory, seed: int) -> None:
    fault_trial(vms, seed, Mode())


@dataclasses.dataclass(frozen=True)
class TlsMode(Mode):
    """TLS credentials "tls0" from `directory`: a client on a source, a server on
    a destination (which still waits for its incoming stream when applied)."""

    directory: str = ""

    def apply(self, vm: Vm) -> None:
        waiting = vm.engine.query_status()["status"] == "inmigrate"
        endpoint: Literal["client", "server"] = "server" if waiting else "client"
        vm.engine.objects["tls0"] = TlsCredsX509("tls0", self.directory, endpoint)
        vm.engine.migrate_set_parameters({"tls-creds": "tls0"})
        super().apply(vm)


def tls_seeds() -> list[int]:
    """As many seeds as `fault_trial_seeds`, without those that pick the killed
    destination: it runs in a process of its own, which has no TLS credentials."""
    count = len(fault_trial_seeds())
    every = range(count * FAULTS_PER_CYCLE)
    return [seed for seed in every if seed % FAULTS_PER_CYCLE != KILL][:count]


@pytest.mark.parametrize("seed", tls_seeds())
def test_tls_fault_trials(vms: Factory, pki: Pki, seed: int) -> None:
    fault_trial(vms, seed, TlsMode(directory=pki.dir("good")))


def test_tls_mode_migrates_without_a_fault(vms: Factory, pki: Pki) -> None:
    """Without this, a TlsMode that could never connect would pass every trial."""
    mode = TlsMode(directory=pki.dir("good"))
    src = busy_source(vms, 8 * MIB, mode)
    dst = vms.destination(8 * MIB, uri="defer")
    mode.apply(dst)
    dst.engine.migrate_incoming("tcp:127.0.0.1:0")
    migrate_and_check(src, dst)
    assert src.engine.query_migrate_parameters().tls_creds == "tls0"
