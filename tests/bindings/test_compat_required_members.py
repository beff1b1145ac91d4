"""A required member or argument with a special feature under an input policy that
refuses it: QEMU's generated visitor asks the policy before it looks for a required
member (for an optional one only once it found it), so QEMU refuses such a request
even when the member is absent, unless its build lacks the member altogether.

QEMU 7.2's and 10.0's schemas have no required deprecated or unstable input member to
observe this live; the order of QEMU's checks is a fact of its QAPI generator's output
(the policy check of a member with special features precedes the visit of a required
member, and sits inside the presence test of an optional one).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Collection, Iterator
from types import ModuleType

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_runtime.qmp.errors import GenericError
from qapigen_testing.generated_packages import imported_package

SCHEMA = """
{ 'struct': 'Cfg',
  'data': { 'name': 'str',
            'level': { 'type': 'int', 'features': [ 'deprecated' ] },
            'gone': { 'type': 'int', 'features': [ 'deprecated' ],
                      'if': 'CONFIG_GONE' } } }
{ 'command': 'configure', 'data': { 'cfg': 'Cfg' } }
{ 'command': 'tune',
  'data': { 'speed': { 'type': 'int', 'features': [ 'unstable' ] }, 'rate': 'int' } }
"""

REJECT = CompatPolicy(deprecated_input="reject", unstable_input="reject")


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("required_special")
    schema_file = root / "required.json"
    schema_file.write_text(SCHEMA)
    files = generate_package(load_schema(str(schema_file)), "required_pkg", "r.json")
    with imported_package(files, root, "required_pkg") as package:
        yield importlib.import_module(f"{package.__name__}.commands")


class Handler:
    async def configure(self, *, cfg: object) -> None:
        return None

    async def tune(self, *, speed: int, rate: int) -> None:
        return None


def refusal(
    commands: ModuleType,
    name: str,
    arguments: dict[str, object],
    policy: CompatPolicy,
    defined: Collection[str] | None = None,
) -> str | None:
    dispatcher = commands.CommandDispatcher(Handler(), defined, policy)
    try:
        asyncio.run(dispatcher.dispatch(name, arguments))
    except GenericError as error:
        return error.desc
    return None


def test_an_absent_required_member_is_refused_by_the_policy(
    commands: ModuleType,
) -> None:
    cfg = {"name": "n"}
    assert (
        refusal(commands, "configure", {"cfg": cfg}, REJECT, set())
        == "Deprecated parameter level disabled by policy"
    )
    assert (
        refusal(commands, "tune", {"rate": 1}, REJECT)
        == "Unstable parameter speed disabled by policy"
    )


def test_before_the_members_after_it(commands: ModuleType) -> None:
    # 'rate' comes after 'speed': its type error is never reached
    assert (
        refusal(commands, "tune", {"rate": "fast"}, REJECT)
        == "Unstable parameter speed disabled by policy"
    )


def test_accepting_policies_report_it_missing(commands: ModuleType) -> None:
    assert (
        refusal(commands, "configure", {"cfg": {"name": "n"}}, CompatPolicy(), set())
        == "Parameter 'cfg.level' is missing"
    )
    assert (
        refusal(commands, "tune", {"rate": 1}, CompatPolicy())
        == "Parameter 'speed' is missing"
    )


def test_a_member_the_build_lacks_is_not_asked_about(commands: ModuleType) -> None:
    # 'gone' is required under CONFIG_GONE: a build without it has no such member,
    # so only 'level' is refused, and only when present does accept let it through
    cfg = {"name": "n", "level": 1}
    assert (
        refusal(commands, "configure", {"cfg": cfg}, REJECT, {"CONFIG_GONE"})
        == "Deprecated parameter level disabled by policy"
    )
    reject_unstable_only = CompatPolicy(unstable_input="reject")
    assert (
        refusal(commands, "configure", {"cfg": cfg}, reject_unstable_only, set())
        is None
    )
    assert (
        refusal(
            commands, "configure", {"cfg": cfg}, reject_unstable_only, {"CONFIG_GONE"}
        )
        == "Parameter 'cfg.gone' is missing"
    )
