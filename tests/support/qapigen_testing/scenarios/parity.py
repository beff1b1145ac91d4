"""Running a scenario on a pair of peers, with one QEMU observation per scenario kept
for the test run, so tests that compare with QEMU run each QEMU scenario once, on
whichever worker needs it first."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pickle

from ..peers import PeerKind, require_peers, site, start_pair
from ..run_folder import run_folder
from . import Observation, Scenario, observe


def run_scenario(kind: PeerKind, scenario: Scenario) -> Observation:
    require_peers(kind)
    with site() as where, start_pair(kind, where, scenario.arguments(where)) as pair:
        return asyncio.run(observe(pair, scenario.body))


# One QEMU observation per scenario, shared by the parity test and the sanity test.
_qemu_cache: dict[str, Observation] = {}


def qemu_observation(scenario: Scenario) -> Observation:
    """QEMU's observation of `scenario`, made once per test run: the first worker to
    need it runs it while holding a lock and leaves it in the run's folder; another
    worker that needs it meanwhile waits for it instead of running QEMU again."""
    if scenario.name not in _qemu_cache:
        _qemu_cache[scenario.name] = _shared_qemu_observation(scenario)
    return _qemu_cache[scenario.name]


def _shared_qemu_observation(scenario: Scenario) -> Observation:
    shared = run_folder()
    if shared is None:
        return run_scenario(PeerKind.QEMU, scenario)
    folder = shared / "qemu-observations"
    folder.mkdir(exist_ok=True)
    saved = folder / f"{scenario.name}.pickle"
    with (folder / f"{scenario.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if saved.exists():
            observation: Observation = pickle.loads(saved.read_bytes())
            return observation
        # a skip or a failure leaves nothing behind: the next worker tries again
        observation = run_scenario(PeerKind.QEMU, scenario)
        partial = saved.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(observation))
        os.replace(partial, saved)
        return observation
