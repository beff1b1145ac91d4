"""The introspection front end on saved answers of real QEMU builds (5.2, 7.2, 10.0).

Each answer becomes a package whose own introspection has exactly the answer's
structure (compared by `qapigen_runtime.schema_compare`, which matches types by
structure, not by name), generation is byte-for-byte repeatable and does not depend
on the order of the answer's entries, derived names that equal a name of the same
release's source schema denote a type of the same shape there, and adding an
unrelated command renames nothing.
"""

from __future__ import annotations

import copy
import importlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen.from_introspection.build import schema_from_entities
from qapigen.from_introspection.names import camel, derive_names
from qapigen.from_introspection.reply import read_entities
from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen.schema import Schema
from qapigen.source import QAPIError
from qapigen_runtime.schema_compare import compare_schemas
from qapigen_testing.generated_packages import imported_package
from qapigen_testing.paths import qemu_release

REPLIES = Path(__file__).parent / "introspection_replies"
# file -> the source release whose schema it is compared with
RELEASES = {
    "qemu-5.2.0.json": "5.2",
    "qemu-7.2.22.json": "7.2",
    "qemu-10.0.2.json": "10.0",
}


def answer(fname: str) -> list[dict[str, Any]]:
    data = json.loads((REPLIES / fname).read_text())
    assert isinstance(data, dict)
    entries = data["return"]
    assert isinstance(entries, list)
    return entries


def schema_info(package: ModuleType) -> list[dict[str, Any]]:
    module = importlib.import_module(package.__name__ + ".introspection")
    return list(module.schema_info())


def package_files(entries: object, fname: str = "reply.json") -> dict[str, str]:
    schema = schema_from_entities(read_entities(entries, fname), fname)
    return generate_package(schema, "introspected", f"introspection saved in {fname}")


@pytest.fixture(scope="module", params=sorted(RELEASES))
def saved(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ModuleType]]:
    fname: str = request.param
    files = package_files(answer(fname), fname)
    root = tmp_path_factory.mktemp("introspected")
    name = "introspected_" + fname.removesuffix(".json").replace("-", "_").replace(
        ".", "_"
    )
    with imported_package(files, root, name) as package:
        yield fname, package


def test_package_introspects_as_the_answer(saved: tuple[str, ModuleType]) -> None:
    fname, package = saved
    entries = answer(fname)
    comparison = compare_schemas(schema_info(package), entries)
    assert comparison.differences == ()
    commands = sum(1 for e in entries if e["meta-type"] == "command")
    events = sum(1 for e in entries if e["meta-type"] == "event")
    assert (comparison.commands_compared, comparison.events_compared) == (
        commands,
        events,
    )


def test_features_are_kept(saved: tuple[str, ModuleType]) -> None:
    fname, package = saved
    entries = answer(fname)
    info = {e["name"]: e for e in schema_info(package)}
    for entry in entries:
        if entry["meta-type"] in ("command", "event") and entry.get("features"):
            assert info[entry["name"]]["features"] == entry["features"]
    deprecated = [e["name"] for e in entries if "deprecated" in e.get("features", [])]
    assert deprecated, "every one of these releases deprecates something"


def test_generation_is_deterministic() -> None:
    entries = answer("qemu-7.2.22.json")
    first = package_files(entries)
    assert package_files(copy.deepcopy(entries)) == first
    shuffled = list(entries)
    random.Random(7).shuffle(shuffled)
    assert package_files(shuffled) == first


def _shape(info: dict[str, dict[str, Any]], name: str) -> object:
    """What a type is, one level deep, with member types as their kind: enough to
    tell two different types apart, while integer widths (masked as `int`) and
    conditional members (a build may lack them) do not count."""
    entry = info[name]
    meta = entry["meta-type"]
    if meta == "enum":
        return ("enum", frozenset(entry["values"]))
    if meta == "object":
        members = entry["members"]
        assert isinstance(members, list)
        return (
            "object",
            entry.get("tag"),
            frozenset(
                (m["name"], "default" in m, _kind(info, m["type"])) for m in members
            ),
        )
    return (meta,)


def _kind(info: dict[str, dict[str, Any]], name: str) -> str:
    entry = info[name]
    if entry["meta-type"] == "builtin":
        return str(entry["json-type"])
    if entry["meta-type"] == "array":
        return "[" + _kind(info, str(entry["element-type"])) + "]"
    return str(entry["meta-type"])


def _source_schema(release: str) -> Schema:
    path = qemu_release(release, "qapi", "qapi-schema.json")
    if path is None:
        pytest.skip(f"QEMU {release}'s schema is absent (scripts/fetch-qemu-sources)")
    return load_schema(str(path))


def _within(ours: object, theirs: object) -> bool:
    """Whether shape `ours` (this build) fits shape `theirs` (the source, with every
    conditional member and value)."""
    if not (isinstance(ours, tuple) and isinstance(theirs, tuple)):
        return False
    if ours[0] != theirs[0] or len(ours) != len(theirs):
        return False
    if ours[0] == "enum":
        return bool(ours[1] <= theirs[1])
    if ours[0] == "object":
        return bool(ours[1] == theirs[1] and ours[2] <= theirs[2])
    return True


@pytest.mark.parametrize("fname", sorted(RELEASES))
def test_derived_names_agree_with_source(fname: str, tmp_path: Path) -> None:
    entries = answer(fname)
    source = _source_schema(RELEASES[fname])
    files = generate_package(source, f"source_{tmp_path.name}", "source")
    with imported_package(files, tmp_path, "source_" + tmp_path.name) as package:
        theirs: dict[str, Any] = {e["name"]: e for e in schema_info(package)}
    schema = schema_from_entities(read_entities(entries, fname), fname)
    ours: dict[str, Any] = {e["name"]: e for e in _introspection_of(schema, tmp_path)}
    masked = derive_names(read_entities(entries, fname))
    derived = {name for key, name in masked.items() if key.isdigit()}
    shared = sorted(derived & {n for n in theirs if n in ours})
    assert len(shared) >= 10, shared  # StatusInfo, VersionInfo, MigrateSetParameters...
    disagree = [
        name for name in shared if not _within(_shape(ours, name), _shape(theirs, name))
    ]
    assert disagree == []


def _introspection_of(schema: Schema, folder: Path) -> list[dict[str, Any]]:
    files = generate_package(schema, "ours_" + folder.name, "ours")
    with imported_package(files, folder / "ours", "ours_" + folder.name) as package:
        return list(schema_info(package))


def test_unrelated_command_renames_nothing() -> None:
    entries = answer("qemu-10.0.2.json")
    before = derive_names(read_entities(entries, "a"))
    grown = copy.deepcopy(entries)
    numbers = [int(str(e["name"])) for e in grown if str(e["name"]).isdigit()]
    fresh = [str(max(numbers) + i) for i in (1, 2, 3)]
    grown += [
        {"name": "x-new-query", "meta-type": "command", "arg-type": fresh[0],
         "ret-type": fresh[1]},
        {"name": fresh[0], "meta-type": "object",
         "members": [{"name": "node", "type": "str"}]},
        {"name": fresh[1], "meta-type": "object",
         "members": [{"name": "mode", "type": fresh[2]}]},
        {"name": fresh[2], "meta-type": "enum", "values": ["a", "b"]},
    ]  # fmt: skip
    random.Random(3).shuffle(grown)
    after = derive_names(read_entities(grown, "b"))
    assert {k: after[k] for k in before} == before
    assert after[fresh[1]] == "XNewQueryResult"
    assert after[fresh[2]] == "XNewQueryResultMode"


def test_names_follow_the_documented_rules() -> None:
    entries = answer("qemu-7.2.22.json")
    names = derive_names(read_entities(entries, "a"))
    by_name = {e["name"]: e for e in entries}

    def named(command: str, key: str) -> str:
        return names[str(by_name[command][key])]

    assert named("query-status", "ret-type") == "StatusInfo"
    assert named("query-version", "ret-type") == "VersionInfo"
    assert named("migrate-set-parameters", "arg-type") == "MigrateSetParameters"
    array = by_name[str(by_name["qom-list-types"]["ret-type"])]
    assert names[str(array["element-type"])] == "QomListTypesResult"
    status = by_name[str(by_name["query-status"]["ret-type"])]
    members = {m["name"]: m["type"] for m in status["members"]}
    assert names[members["status"]] == "StatusInfoStatus"
    assert camel("BLOCK_JOB_READY") == "BlockJobReady"
    assert camel("query-cpus-fast") == "QueryCpusFast"
    assert camel("__org.qemu_x-foo") == "OrgQemuXFoo"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"x": 1}, "reply.json: expected the query-qmp-schema answer"),
        ([1], "reply.json: [0]: expected an object, got a number"),
        ([{"name": "a"}], "reply.json: [0]: meta-type: missing"),
        (
            [{"name": "c", "meta-type": "command", "arg-type": "1", "ret-type": "1"}],
            "reply.json: [0] (command 'c'): arg-type: no entry named '1'",
        ),
        (
            [
                {"name": "e", "meta-type": "event", "arg-type": "1"},
                {"name": "1", "meta-type": "enum", "values": ["a"]},
            ],
            "reply.json: [0] (event 'e'): arg-type: '1' is enum, expected object",
        ),
        (
            [{"name": "1", "meta-type": "object", "members": [{"name": 3}]}],
            "reply.json: [0] (object '1'): members[0].name: expected a string,"
            " got a number",
        ),
        (
            [{"name": "1", "meta-type": "enum", "values": ["a", "a"]}],
            "reply.json: [0] (enum '1'): members[1]: value 'a' appears twice",
        ),
        (
            [
                {"name": "1", "meta-type": "enum", "values": []},
                {"name": "1", "meta-type": "enum", "values": []},
            ],
            "reply.json: [1] (enum '1'): name already used by [0] (enum '1')",
        ),
    ],
)
def test_bad_answers_are_located(entries: object, message: str) -> None:
    with pytest.raises(QAPIError) as raised:
        read_entities(entries, "reply.json")
    assert str(raised.value).startswith(message), str(raised.value)


def _reachable(entries: list[dict[str, Any]], roots: set[str]) -> set[str]:
    """Every type the commands and events `roots` use, directly or not."""
    by_name = {e["name"]: e for e in entries}
    seen: set[str] = set()
    stack = [
        ref
        for e in entries
        if e["name"] in roots
        for ref in (e.get("arg-type"), e.get("ret-type"))
        if ref is not None
    ]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        entry = by_name[name]
        stack += [m["type"] for m in entry.get("members", []) if "type" in m]
        stack += [v["type"] for v in entry.get("variants", [])]
        if "element-type" in entry:
            stack.append(entry["element-type"])
    return seen


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_removing_commands_renames_only_what_they_reach(data: st.DataObject) -> None:
    entries = answer("qemu-10.0.2.json")
    roots = sorted(e["name"] for e in entries if e["meta-type"] in ("command", "event"))
    removed = set(data.draw(st.lists(st.sampled_from(roots), max_size=8, unique=True)))
    before = derive_names(read_entities(entries, "a"))
    kept = [e for e in entries if e["name"] not in removed]
    after = derive_names(read_entities(kept, "b"))
    untouched = set(before) - _reachable(entries, removed)
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
