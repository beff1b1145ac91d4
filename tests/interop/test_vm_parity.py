"""qapigen-vm against real QEMU 7.2: the same scenario code, the same command lines.

Each scenario of `scenarios.SCENARIOS` runs on a pair of qemu-system-x86_64 processes
and on a pair of qapigen-vm processes; the two observations (statuses, events in order
per side, error classes and texts, run states, schema reply members) must be equal.
The deprecated commands QEMU 7.2 dropped are checked separately: CommandNotFound on
QEMU, QEMU 5.2's documented behaviour on qapigen-vm.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from qapigen_migration.types import MigrationInfo
from qapigen_runtime.qmp import QMPCommandError, QMPEvent
from qapigen_testing.peers import PeerKind
from qapigen_testing.scenarios import (
    SCENARIOS,
    Observation,
    Run,
    Scenario,
    idle,
)
from qapigen_testing.scenarios.observation import (
    ErrorSeen,
    PassFacts,
    differences,
    event_sequence,
    member_names,
    pass_facts,
    without_racy,
)
from qapigen_testing.scenarios.parity import qemu_observation, run_scenario

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=SCENARIOS, ids=lambda s: s.name)
def scenario(request: pytest.FixtureRequest) -> Scenario:
    value: Scenario = request.param
    return value


@pytest.mark.qemu
def test_vm_behaves_like_qemu(scenario: Scenario) -> None:
    expected = qemu_observation(scenario)
    actual = run_scenario(PeerKind.VM, scenario)
    # expected: QEMU 7.2; actual: qapigen-vm
    lines = differences(expected, actual)
    assert not lines, "qapigen-vm differs from QEMU 7.2:\n" + "\n".join(lines)
    assert actual == expected  # whatever `differences` does not spell out


# -- the framework itself, checked on QEMU: a scenario that observes nothing, or
# observes a failure where QEMU succeeds, would make the parity test vacuous.

EXPECTED_ON_QEMU: dict[str, dict[str, Any]] = {
    "precopy-tcp": {
        "source final event": "completed",
        "source run state after": ("postmigrate", False),
        "destination run state after": ("running", True),
    },
    "precopy-unix": {"source final event": "completed"},
    "precopy-quiet": {
        "source final status": "completed",
        "destination final status": "completed",
    },
    "precopy-xbzrle": {"source final event": "completed"},
    "precopy-multifd": {"source final event": "completed"},
    "incoming-defer": {"source final event": "completed"},
    "cancel-active": {"source final event": "cancelled", "destination exit": 1},
    "pause-before-switchover": {
        "source paused": "pre-switchover",
        "migrate-continue": "ok",
        "source final event": "completed",
    },
    "postcopy": {
        "source postcopy": "postcopy-active",
        "source final event": "completed",
        "source run state after": ("postmigrate", False),
    },
    "cancel-at-pre-switchover": {
        "source final event": "cancelled",
        "source run state after": ("running", True),
        "destination exit": 1,
    },
    "validate-uuid-match": {"source final event": "completed"},
    "validate-uuid-mismatch": {
        "source final event": "failed",
        "destination exit": 1,
    },
    "bad-uri": {
        "migrate foo:bar": ErrorSeen(
            "GenericError", "Parameter 'uri' expects a valid migration protocol"
        )
    },
    "parameter-errors": {
        "compress-level 99": ErrorSeen(
            "GenericError", "Parameter 'compress_level' expects a value between 0 and 9"
        )
    },
}


@pytest.mark.qemu
@pytest.mark.parametrize("name", sorted(EXPECTED_ON_QEMU))
def test_scenarios_observe_qemu(name: str) -> None:
    (scenario,) = [s for s in SCENARIOS if s.name == name]
    observation = qemu_observation(scenario)
    for label, value in EXPECTED_ON_QEMU[name].items():
        assert observation.steps.get(label) == value, label
    if observation.steps.get("source final event") == "completed":
        assert observation.source_events[0] == "MIGRATION setup"
        assert observation.source_events[-1] == "MIGRATION completed"
        assert observation.source_passes is not None
        assert observation.source_passes.before_active == 1
    if name == "precopy-quiet":  # no events capability: only the run-state events
        assert observation.source_events == ("STOP",)
        assert observation.destination_events == ("RESUME",)


# -- deprecated commands: gone from QEMU 7.2, QEMU 5.2's behaviour on qapigen-vm ------

DEPRECATED_QUERY = "query-migrate-cache-size"


async def deprecated_commands(run: Run) -> None:
    """The four commands, through the typed client (which warns: they are deprecated
    in the schema), with the parameters they set read back."""
    qmp = run.source.qmp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        await run.attempt(
            "set_downtime 0.12345", qmp.migrate_set_downtime(value=0.12345)
        )
        await run.parameters("after set_downtime", run.source)
        await run.attempt("set_downtime -1", qmp.migrate_set_downtime(value=-1))
        await run.attempt("set_downtime 2001", qmp.migrate_set_downtime(value=2001))
        await run.attempt("set_downtime 2000", qmp.migrate_set_downtime(value=2000))
        await run.parameters("after set_downtime 2000", run.source)
        await run.attempt("set_speed 12345", qmp.migrate_set_speed(value=12345))
        await run.parameters("after set_speed", run.source)
        await run.attempt("set_cache_size 4096", qmp.migrate_set_cache_size(value=4096))
        await run.parameters("after set_cache_size", run.source)
        await run.attempt("set_cache_size 1000", qmp.migrate_set_cache_size(value=1000))
        try:
            size = await qmp.query_migrate_cache_size()
        except QMPCommandError as error:
            run.note(DEPRECATED_QUERY, ErrorSeen.of(error, run.replacements))
        else:
            run.note(DEPRECATED_QUERY, size)


def parameter(steps: dict[str, object], label: str, name: str) -> object:
    """Parameter `name` as recorded by `Run.parameters` at step `label`."""
    recorded = steps[label]
    assert isinstance(recorded, dict), f"{label}: {recorded!r}"
    return recorded[name]


DEPRECATED = Scenario("deprecated-commands", idle, deprecated_commands)


@pytest.mark.qemu
def test_deprecated_commands_are_gone_from_qemu_72() -> None:
    steps = run_scenario(PeerKind.QEMU, DEPRECATED).steps
    for label, command in (
        ("set_downtime 0.12345", "migrate_set_downtime"),
        ("set_speed 12345", "migrate_set_speed"),
        ("set_cache_size 4096", "migrate-set-cache-size"),
        (DEPRECATED_QUERY, "query-migrate-cache-size"),
    ):
        assert steps[label] == ErrorSeen(
            "CommandNotFound", f"The command {command} has not been found"
        )
    assert (
        parameter(steps, "after set_speed", "max-bandwidth") == 134217728
    )  # untouched


def test_deprecated_commands_on_vm_follow_qemu_52() -> None:
    steps = run_scenario(PeerKind.VM, DEPRECATED).steps
    out_of_range = ErrorSeen(
        "GenericError",
        "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000 seconds",
    )
    assert steps["set_downtime 0.12345"] == "ok"
    # seconds to milliseconds, truncated: (int64)(0.12345 * 1000) == 123
    assert parameter(steps, "after set_downtime", "downtime-limit") == 123
    assert steps["set_downtime -1"] == out_of_range
    assert steps["set_downtime 2001"] == out_of_range
    assert parameter(steps, "after set_downtime 2000", "downtime-limit") == 2_000_000
    assert parameter(steps, "after set_speed", "max-bandwidth") == 12345
    assert parameter(steps, "after set_cache_size", "xbzrle-cache-size") == 4096
    # the wrapper goes through migrate-set-parameters' check (7.2's text)
    assert steps["set_cache_size 1000"] == ErrorSeen(
        "GenericError",
        "Parameter 'xbzrle_cache_size' expects a power of two no less than the"
        " target page size",
    )
    assert steps[DEPRECATED_QUERY] == 4096


# -- the observation's normalizations, on hand-made inputs ----------------------------


def _event(name: str, **data: object) -> QMPEvent:
    return QMPEvent(name, dict(data))


PRECOPY_EVENTS = [
    _event("MIGRATION", status="setup"),
    _event("MIGRATION_PASS", **{"pass": 1}),
    _event("MIGRATION", status="active"),
    _event("MIGRATION_PASS", **{"pass": 2}),
    _event("STOP"),
    _event("MIGRATION_PASS", **{"pass": 3}),
    _event("MIGRATION", status="completed"),
    _event("SHUTDOWN"),
]


def test_event_sequence_leaves_out_passes_and_unrecorded_events() -> None:
    assert event_sequence(PRECOPY_EVENTS) == (
        "MIGRATION setup",
        "MIGRATION active",
        "STOP",
        "MIGRATION completed",
    )


def test_pass_facts_keep_what_does_not_depend_on_timing() -> None:
    assert pass_facts(PRECOPY_EVENTS) == PassFacts(
        before_active=1, after_stop=True, numbered_from_one=True
    )
    # one iteration pass fewer: same facts (that count is timing-dependent)
    fewer = [e for e in PRECOPY_EVENTS if e.data.get("pass") != 2]
    renumbered = [
        _event("MIGRATION_PASS", **{"pass": 2}) if e.data.get("pass") == 3 else e
        for e in fewer
    ]
    assert pass_facts(renumbered) == pass_facts(PRECOPY_EVENTS)
    # a gap in the numbering, or no final sync, is a difference
    assert not pass_facts(fewer).numbered_from_one
    no_final = [e for e in PRECOPY_EVENTS if e.data.get("pass") != 3]
    assert not pass_facts(no_final).after_stop


COMPLETED_REPLY: dict[str, object] = {
    "status": "completed",
    "total-time": 120,
    "downtime": 8,
    "setup-time": 2,
    "blocked": False,  # QEMU 7.2 adds members the bundled schema lacks
    "ram": {
        "transferred": 1,
        "remaining": 0,
        "total": 2,
        "duplicate": 3,
        "skipped": 0,
        "normal": 4,
        "normal-bytes": 16384,
        "dirty-pages-rate": 0,
        "mbps": 1.5,
        "dirty-sync-count": 3,
        "postcopy-requests": 0,
        "page-size": 4096,
        "multifd-bytes": 0,
        "pages-per-second": 10,
        "precopy-bytes": 1,
    },
}


def test_member_names_are_the_schema_members_nested_and_dotted() -> None:
    info = MigrationInfo.from_wire(COMPLETED_REPLY)
    names = member_names(info)
    assert {"status", "downtime", "ram", "ram.mbps", "ram.page-size"} <= names
    assert "blocked" not in names and "ram.precopy-bytes" not in names
    listening = MigrationInfo.from_wire(
        {"socket-address": [{"type": "inet", "host": "127.0.0.1", "port": "4444"}]}
    )
    assert member_names(listening) == {
        "socket-address",
        "socket-address[].type",
        "socket-address[].host",
        "socket-address[].port",
    }


def test_differences_name_each_differing_step() -> None:
    expected = Observation(steps={"migrate": "ok", "end": "completed"})
    actual = Observation(steps={"migrate": "ok", "end": "failed", "extra": 1})
    lines = differences(expected, actual)
    assert [line.split(":")[0] for line in lines] == ["step 'end'", "step 'extra'"]
    assert differences(expected, expected) == []


def test_racy_events_are_dropped_only_between_their_neighbours() -> None:
    racy = [("MIGRATION pre-switchover", "MIGRATION device", "MIGRATION cancelling")]
    raced = ("MIGRATION pre-switchover", "MIGRATION device", "MIGRATION cancelling")
    assert without_racy(raced, racy) == (
        "MIGRATION pre-switchover",
        "MIGRATION cancelling",
    )
    completed = ("MIGRATION pre-switchover", "MIGRATION device", "MIGRATION completed")
    assert without_racy(completed, racy) == completed
