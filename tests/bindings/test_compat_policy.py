"""QEMU's `-compat` policies on a server built on a generated package.

The texts and what each policy touches are QEMU 7.2's, observed live by
tests/interop/test_qemu_compat_policies.py (which also runs the same calls against
the complete 7.2 package's dispatcher); here a small schema of our own has one of
each: a deprecated and an unstable command, argument, nested member and enum value.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_runtime.bindings.policy import CompatPolicy, PolicyOptionError
from qapigen_runtime.qmp.errors import CommandNotFound, GenericError
from qapigen_testing.generated_packages import imported_package

SCHEMA = """
{ 'enum': 'Mode',
  'data': [ 'plain', { 'name': 'old', 'features': [ 'deprecated' ] },
            { 'name': 'x-new', 'features': [ 'unstable' ] } ] }
{ 'struct': 'Inner',
  'data': { 'name': 'str',
            '*loaded': { 'type': 'bool', 'features': [ 'deprecated' ] },
            '*x-perf': { 'type': 'int', 'features': [ 'unstable' ] } } }
{ 'struct': 'Report',
  'data': { 'size': 'int',
            'section-size': { 'type': 'int', 'features': [ 'deprecated' ] },
            '*x-delay': { 'type': 'int', 'features': [ 'unstable' ] },
            'inner': 'Inner', 'mode': 'Mode' } }
{ 'command': 'query-report', 'returns': 'Report' }
{ 'command': 'set-thing',
  'data': { '*device': { 'type': 'str', 'features': [ 'deprecated' ] },
            '*x-fast': { 'type': 'bool', 'features': [ 'unstable' ] },
            '*inner': 'Inner', '*mode': 'Mode' } }
{ 'command': 'old-command', 'features': [ 'deprecated' ] }
{ 'command': 'x-debug', 'features': [ 'unstable' ] }
{ 'event': 'OLD_EVENT', 'features': [ 'deprecated' ] }
"""

REPORT = {
    "size": 1,
    "section-size": 2,
    "x-delay": 3,
    "inner": {"name": "n", "loaded": True, "x-perf": 4},
    "mode": "old",
}


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("compat_policy")
    schema_file = root / "compat.json"
    schema_file.write_text(SCHEMA)
    files = generate_package(load_schema(str(schema_file)), "compat_pkg", "c.json")
    with imported_package(files, root, "compat_pkg") as package:
        yield SimpleNamespace(
            root=root,
            types=importlib.import_module(f"{package.__name__}.types"),
            commands=importlib.import_module(f"{package.__name__}.commands"),
            introspection=importlib.import_module(f"{package.__name__}.introspection"),
        )


class _Handler:
    def __init__(self, pkg: SimpleNamespace) -> None:
        self.pkg = pkg
        self.calls: list[str] = []

    async def query_report(self) -> Any:
        return self.pkg.types.Report.from_wire(REPORT)

    async def set_thing(self, **arguments: object) -> None:
        self.calls.append("set-thing")

    async def old_command(self) -> None:
        self.calls.append("old-command")

    async def x_debug(self) -> None:
        self.calls.append("x-debug")


def _dispatcher(pkg: SimpleNamespace, policy: CompatPolicy | None) -> Any:
    handler_type = type("Handler", (_Handler, pkg.commands.CommandHandlerBase), {})
    return pkg.commands.CommandDispatcher(handler_type(pkg), policy=policy)


def _run(
    pkg: SimpleNamespace,
    policy: CompatPolicy | None,
    name: str,
    arguments: Mapping[str, object] | None = None,
) -> object:
    sent = dict(arguments or {})
    return asyncio.run(_dispatcher(pkg, policy).dispatch(name, sent))


def _refusal(
    pkg: SimpleNamespace,
    policy: CompatPolicy,
    name: str,
    arguments: Mapping[str, object] | None = None,
) -> tuple[str, str]:
    with pytest.raises((CommandNotFound, GenericError)) as refused:
        _run(pkg, policy, name, arguments)
    return type(refused.value).__name__, refused.value.desc


REJECT_DEPRECATED = CompatPolicy(deprecated_input="reject")
REJECT_UNSTABLE = CompatPolicy(unstable_input="reject")


def test_accept_is_the_default(pkg: SimpleNamespace) -> None:
    for policy in (None, CompatPolicy()):
        assert _run(pkg, policy, "query-report") == REPORT
        _run(pkg, policy, "old-command")
        _run(pkg, policy, "set-thing", {"device": "d", "mode": "old"})


def test_reject_deprecated_commands_arguments_members_values(
    pkg: SimpleNamespace,
) -> None:
    policy = REJECT_DEPRECATED
    assert _refusal(pkg, policy, "old-command") == (
        "CommandNotFound",
        "Deprecated command old-command disabled by policy",
    )
    assert _refusal(pkg, policy, "set-thing", {"device": "d"}) == (
        "GenericError",
        "Deprecated parameter device disabled by policy",
    )
    nested = {"inner": {"name": "n", "loaded": False}}
    assert _refusal(pkg, policy, "set-thing", nested) == (
        "GenericError",
        "Deprecated parameter loaded disabled by policy",
    )
    assert _refusal(pkg, policy, "set-thing", {"mode": "old"}) == (
        "GenericError",
        "Deprecated value old disabled by policy",
    )
    # what is not deprecated (unstable included) is served
    _run(pkg, policy, "x-debug")
    _run(pkg, policy, "set-thing", {"x-fast": True, "mode": "x-new"})
    _run(pkg, policy, "set-thing", {"inner": {"name": "n", "x-perf": 1}})


def test_reject_unstable(pkg: SimpleNamespace) -> None:
    policy = REJECT_UNSTABLE
    assert _refusal(pkg, policy, "x-debug") == (
        "CommandNotFound",
        "Unstable command x-debug disabled by policy",
    )
    assert _refusal(pkg, policy, "set-thing", {"x-fast": True})[1] == (
        "Unstable parameter x-fast disabled by policy"
    )
    assert _refusal(pkg, policy, "set-thing", {"mode": "x-new"})[1] == (
        "Unstable value x-new disabled by policy"
    )
    nested = {"inner": {"name": "n", "x-perf": 1}}
    assert _refusal(pkg, policy, "set-thing", nested)[1] == (
        "Unstable parameter x-perf disabled by policy"
    )
    _run(pkg, policy, "old-command")


@pytest.mark.parametrize(
    ("policy", "arguments", "reported"),
    [
        # a refused member before an ill-typed one: refused, the later one unread
        (
            REJECT_DEPRECATED,
            {"inner": {"x-perf": "many", "loaded": True, "name": "n"}},
            "Deprecated parameter loaded disabled by policy",
        ),
        # an ill-typed member before a refused one: its type error
        (
            REJECT_DEPRECATED,
            {"inner": {"loaded": True, "name": 5}},
            "Invalid parameter type for 'inner.name', expected: string",
        ),
        (
            REJECT_UNSTABLE,
            {"inner": {"x-perf": 1, "loaded": "yes", "name": "n"}},
            "Invalid parameter type for 'inner.loaded', expected: boolean",
        ),
        # members the schema lacks are refused after every member it has
        (
            REJECT_DEPRECATED,
            {"inner": {"bogus": 1, "name": "n", "loaded": True}},
            "Deprecated parameter loaded disabled by policy",
        ),
        # the command's own arguments, in the same order
        (
            REJECT_DEPRECATED,
            {"inner": "not an object", "device": "d"},
            "Deprecated parameter device disabled by policy",
        ),
        (
            REJECT_UNSTABLE,
            {"x-fast": True, "device": 5},
            "Invalid parameter type for 'device', expected: string",
        ),
        (
            REJECT_UNSTABLE,
            {"x-fast": True, "inner": 5},
            "Unstable parameter x-fast disabled by policy",
        ),
    ],
)
def test_refusals_come_in_schema_order(
    pkg: SimpleNamespace,
    policy: CompatPolicy,
    arguments: dict[str, object],
    reported: str,
) -> None:
    """QEMU's input visitor asks the policy at each member, before decoding it, in
    the schema's order (the request's order does not matter)."""
    assert _refusal(pkg, policy, "set-thing", arguments) == ("GenericError", reported)


def test_other_faults_read_as_before(pkg: SimpleNamespace) -> None:
    with pytest.raises(CommandNotFound, match="The command nope has not been found"):
        _run(pkg, REJECT_DEPRECATED, "nope")
    with pytest.raises(GenericError, match="Parameter 'bogus' is unexpected"):
        _run(pkg, REJECT_DEPRECATED, "set-thing", {"bogus": 1})


def test_hide_deprecated_output(pkg: SimpleNamespace) -> None:
    reply = _run(pkg, CompatPolicy(deprecated_output="hide"), "query-report")
    expected = {k: v for k, v in REPORT.items() if k != "section-size"}
    expected["inner"] = {"name": "n", "x-perf": 4}
    # enum values are never hidden
    assert reply == expected


def test_hide_unstable_output(pkg: SimpleNamespace) -> None:
    reply = _run(pkg, CompatPolicy(unstable_output="hide"), "query-report")
    expected = {k: v for k, v in REPORT.items() if k != "x-delay"}
    expected["inner"] = {"name": "n", "loaded": True}
    assert reply == expected


def test_hiding_is_only_while_serving(pkg: SimpleNamespace) -> None:
    _run(pkg, CompatPolicy(deprecated_output="hide"), "query-report")
    assert pkg.types.Report.from_wire(REPORT).to_wire() == REPORT


def _entries(answer: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in answer}


def test_schema_info_under_deprecated_output_hide(pkg: SimpleNamespace) -> None:
    full = _entries(pkg.introspection.schema_info())
    hidden = _entries(
        pkg.introspection.schema_info(policy=CompatPolicy(deprecated_output="hide"))
    )
    assert {"old-command", "OLD_EVENT"} <= set(full)
    assert set(full) - set(hidden) == {"old-command", "OLD_EVENT"}

    def member_names(entries: dict[str, dict[str, Any]], name: str) -> list[str]:
        return [m["name"] for m in entries[name]["members"]]

    assert member_names(hidden, "Report") == ["size", "x-delay", "inner", "mode"]
    assert member_names(hidden, "Inner") == ["name", "x-perf"]
    arguments = full["set-thing"]["arg-type"]
    assert "device" in member_names(full, arguments)
    assert "device" not in member_names(hidden, arguments)
    # deprecated enum values stay listed; `values` goes (QEMU 7.2's SchemaInfoEnum
    # deprecates it)
    assert hidden["Mode"]["members"] == full["Mode"]["members"]
    assert "old" in [value["name"] for value in hidden["Mode"]["members"]]
    assert "values" in full["Mode"] and "values" not in hidden["Mode"]
    # unstable-output=hide leaves the answer as it is (QEMU 7.2)
    unstable = pkg.introspection.schema_info(
        policy=CompatPolicy(unstable_output="hide")
    )
    assert _entries(unstable) == full


def test_policy_from_settings_says_what_qemu_says() -> None:
    assert CompatPolicy.from_settings(
        [("deprecated-input", "reject"), ("deprecated-output", "hide")]
    ) == CompatPolicy(deprecated_input="reject", deprecated_output="hide")
    # a later setting wins, as with QEMU's -compat
    assert (
        CompatPolicy.from_settings(
            [("unstable-input", "crash"), ("unstable-input", "accept")]
        )
        == CompatPolicy()
    )
    cases = {
        ("deprecated-input", "bogus"): (
            "Parameter 'deprecated-input' does not accept value 'bogus'"
        ),
        ("deprecated-output", "reject"): (
            "Parameter 'deprecated-output' does not accept value 'reject'"
        ),
        ("bogus", "1"): "Parameter 'bogus' is unexpected",
    }
    for setting, message in cases.items():
        with pytest.raises(PolicyOptionError) as refused:
            CompatPolicy.from_settings([setting])
        assert str(refused.value) == message


def test_crash_aborts_the_server_process(pkg: SimpleNamespace) -> None:
    """As QEMU: what `reject` would refuse aborts the process (SIGABRT); what it
    accepts is served first."""
    program = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(pkg.root)!r})
        from qapigen_runtime.bindings.policy import CompatPolicy
        from compat_pkg import commands

        class Handler(commands.CommandHandlerBase):
            async def set_thing(self, **arguments):
                print("served", flush=True)

        policy = CompatPolicy(deprecated_input="crash")
        dispatcher = commands.CommandDispatcher(Handler(), policy=policy)
        asyncio.run(dispatcher.dispatch("set-thing", {{"mode": "plain"}}))
        asyncio.run(dispatcher.dispatch("set-thing", {{"mode": "old"}}))
        print("survived", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "served\n"
    assert done.returncode == -6  # SIGABRT
