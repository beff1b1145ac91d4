"""Running a scenario on a pair of peers, with one QEMU observation per scenario kept
for the process, so tests that compare with QEMU run each QEMU scenario once."""

from __future__ import annotations

import asyncio

import pytest

from ..peers import PeerKind, environment_problem, site, start_pair
from . import Observation, Scenario, observe


def run_scenario(kind: PeerKind, scenario: Scenario) -> Observation:
    problem = environment_problem(kind)
    if problem is not None:
        pytest.skip(problem)
    with site() as where, start_pair(kind, where, scenario.arguments(where)) as pair:
        return asyncio.run(observe(pair, scenario.body))


# One QEMU observation per scenario, shared by the parity test and the sanity test.
_qemu_cache: dict[str, Observation] = {}


def qemu_observation(scenario: Scenario) -> Observation:
    if scenario.name not in _qemu_cache:
        _qemu_cache[scenario.name] = run_scenario(PeerKind.QEMU, scenario)
    return _qemu_cache[scenario.name]
