"""The introspection front end on qapigen-vm's schema masked as QEMU masks it, and on
that answer damaged at random: a masked answer gives a package with the answer's
exact structure, and a damaged one a package or a located QAPIError, nothing else."""

from __future__ import annotations

import copy
import importlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen.from_introspection.build import schema_from_entities
from qapigen.from_introspection.reply import read_entities
from qapigen.generate import generate_package
from qapigen.source import QAPIError
from qapigen_runtime.schema_compare import compare_schemas
from qapigen_testing.generated_packages import imported_package


def vm_answer() -> list[dict[str, Any]]:
    module = importlib.import_module("qapigen_vm_qmp.introspection")
    return [dict(entry) for entry in module.schema_info()]


def masked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`entries` with every type name but the built-ins' replaced by a number, in
    order of definition, as QEMU's introspection does (arrays become `[N]`)."""
    numbers: dict[str, str] = {}
    for entry in entries:
        if entry["meta-type"] not in ("builtin", "array", "command", "event"):
            numbers[entry["name"]] = str(len(numbers))

    def rename(name: str) -> str:
        if name.startswith("["):
            return "[" + rename(name[1:-1]) + "]"
        return numbers.get(name, name)

    result = []
    for entry in copy.deepcopy(entries):
        if entry["meta-type"] not in ("command", "event"):
            entry["name"] = rename(entry["name"])
        for key in ("arg-type", "ret-type", "element-type"):
            if key in entry:
                entry[key] = rename(entry[key])
        for member in entry.get("members", []):
            if "type" in member:
                member["type"] = rename(member["type"])
        for variant in entry.get("variants", []):
            variant["type"] = rename(variant["type"])
        result.append(entry)
    return result


def test_masked_answer_gives_the_same_structure(tmp_path: Any) -> None:
    answer = masked(vm_answer())
    assert any(e["name"].isdigit() for e in answer)
    schema = schema_from_entities(read_entities(answer, "vm.json"), "vm.json")
    files = generate_package(schema, "masked_vm", "introspection of qapigen-vm")
    with imported_package(files, tmp_path, "masked_vm") as package:
        module = importlib.import_module(package.__name__ + ".introspection")
        comparison = compare_schemas(list(module.schema_info()), answer)
    assert comparison.differences == ()
    assert comparison.commands_compared == sum(
        1 for e in answer if e["meta-type"] == "command"
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(
    ["name", "meta-type", "members", "type", "tag", "variants", "case", "values",
     "element-type", "arg-type", "ret-type", "allow-oob", "features", "default",
     "json-type"]
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_damaged_answers_are_refused_with_a_location(data: st.DataObject) -> None:
    answer = masked(vm_answer())
    for _ in range(data.draw(st.integers(1, 3))):
        entry = data.draw(st.sampled_from(answer))
        target = entry
        members = entry.get("members")
        nested = (
            [m for m in members if isinstance(m, dict)]
            if isinstance(members, list)
            else []
        )
        if data.draw(st.booleans()) and nested:
            target = data.draw(st.sampled_from(nested))
        key = data.draw(KEYS)
        if data.draw(st.booleans()) and key in target:
            del target[key]
        else:
            names = [str(e.get("name")) for e in answer]
            target[key] = data.draw(JSON | st.sampled_from(names))
    try:
        schema = schema_from_entities(read_entities(answer, "vm.json"), "vm.json")
    except QAPIError as error:
        assert str(error).startswith("vm.json")
        return
    generate_package(schema, "damaged", "damaged")
