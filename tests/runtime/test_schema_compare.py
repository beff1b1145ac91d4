"""Comparing a live QEMU's query-qmp-schema with what a package was built from.

Three layers: small hand-made SchemaInfo lists, one per kind of difference (with type
names masked the way QEMU masks them); the bundled 5.0-era package against a package
generated from QEMU 7.2's complete schema, where the expected differences are facts
read from the two schema files; and a real QEMU 7.2 (marker ``qemu``), through the
function and through the command-line entry.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_migration import introspection as bundled_introspection
from qapigen_runtime.qmp import SyncQMPClient
from qapigen_runtime.qmp.address import Address
from qapigen_runtime.schema_compare import (
    Difference,
    DifferenceKind,
    SchemaComparison,
    SchemaFormatError,
    compare_schemas,
)
from qapigen_runtime.schema_compare import cli as tool
from qapigen_testing.generated_packages import imported_package
from qapigen_testing.qemu_fixtures import (
    QemuLauncher,
    accepts_connections,
    qemu_version,
)

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
QEMU72_QAPI = SHARED / "qemu" / "7.2" / "qapi"
BUNDLED_SCHEMA = REPO / "schema" / "migration.json"

Entry = dict[str, object]
Builder = Callable[..., list[Entry]]
"""Builds a schema around a type: `arg_of_type` or `reply_of_type`."""

# ---------------------------------------------------------------- building schemas

BUILTINS: list[Entry] = [
    {"name": "str", "meta-type": "builtin", "json-type": "string"},
    {"name": "int", "meta-type": "builtin", "json-type": "int"},
    {"name": "uint8", "meta-type": "builtin", "json-type": "int"},
    {"name": "size", "meta-type": "builtin", "json-type": "int"},
    {"name": "number", "meta-type": "builtin", "json-type": "number"},
    {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
    {"name": "null", "meta-type": "builtin", "json-type": "null"},
    {"name": "any", "meta-type": "builtin", "json-type": "value"},
]
EMPTY: Entry = {"name": "q_empty", "meta-type": "object", "members": []}


def schema(*entries: Entry) -> list[Entry]:
    return [*BUILTINS, EMPTY, *entries]


def command(
    name: str, arg: str = "q_empty", ret: str = "q_empty", **extra: object
) -> Entry:
    entry: Entry = {"name": name, "meta-type": "command", "arg-type": arg}
    entry["ret-type"] = ret
    entry.update({key.replace("_", "-"): value for key, value in extra.items()})
    return entry


def event(name: str, arg: str = "q_empty", **extra: object) -> Entry:
    return {"name": name, "meta-type": "event", "arg-type": arg, **extra}


def member(
    name: str, typ: str, optional: bool = False, features: Sequence[str] = ()
) -> Entry:
    entry: Entry = {"name": name, "type": typ}
    if optional:
        entry["default"] = None
    if features:
        entry["features"] = list(features)
    return entry


def struct(
    name: str,
    *members: Entry,
    tag: str | None = None,
    variants: Mapping[str, str] | None = None,
) -> Entry:
    entry: Entry = {"name": name, "meta-type": "object", "members": list(members)}
    if tag is not None:
        entry["tag"] = tag
        entry["variants"] = [
            {"case": case, "type": typ} for case, typ in (variants or {}).items()
        ]
    return entry


def enum(name: str, *values: str) -> Entry:
    return {
        "name": name,
        "meta-type": "enum",
        "values": list(values),
        "members": [{"name": value} for value in values],
    }


def array(element: str) -> Entry:
    return {"name": f"[{element}]", "meta-type": "array", "element-type": element}


def alternate(name: str, *types: str) -> Entry:
    return {
        "name": name,
        "meta-type": "alternate",
        "members": [{"type": typ} for typ in types],
    }


def mask(entries: Sequence[Mapping[str, object]]) -> list[Entry]:
    """What QEMU would answer for `entries`: non-built-in type names replaced by
    numbers, integer types folded into "int", and the entries in another order."""
    numbers: dict[str, str] = {}
    for entry in entries:
        name = str(entry["name"])
        if entry["meta-type"] in ("enum", "object", "alternate"):
            numbers[name] = str(100 + len(numbers))

    def rename(name: str) -> str:
        if name.startswith("["):
            return f"[{rename(name[1:-1])}]"
        if name in numbers:
            return numbers[name]
        return "int" if name in ("uint8", "size") else name

    masked: list[Entry] = []
    for entry in entries:
        copy: Entry = json.loads(json.dumps(entry))
        if copy["meta-type"] not in ("command", "event"):
            if copy["name"] in ("uint8", "size"):
                continue  # QEMU lists only "int"
            copy["name"] = rename(str(copy["name"]))
        for key in ("arg-type", "ret-type", "element-type"):
            if key in copy:
                copy[key] = rename(str(copy[key]))
        for key in ("members", "variants"):
            items = copy.get(key)
            if isinstance(items, list):
                for item in items:
                    if "type" in item:
                        item["type"] = rename(item["type"])
        masked.append(copy)
    masked.reverse()
    return masked


def only(comparison: SchemaComparison) -> Difference:
    assert len(comparison.differences) == 1, comparison.report()
    return comparison.differences[0]


# A schema with every kind of type, a union, an alternate and a cycle.
RICH = schema(
    enum("Mode", "fast", "slow"),
    enum("Kind", "a", "b"),
    alternate("StrOrNull", "str", "null"),
    struct("Node", member("name", "str"), member("children", "[Node]", True)),
    array("Node"),
    struct("BranchA", member("x", "int")),
    struct("BranchB", member("y", "Mode", True)),
    struct(
        "Choice",
        member("kind", "Kind"),
        member("size", "size", True),
        tag="kind",
        variants={"a": "BranchA", "b": "BranchB"},
    ),
    struct(
        "q_obj_set-arg",
        member("mode", "Mode"),
        member("label", "StrOrNull", True),
        member("choice", "Choice", True),
        member("level", "uint8", True, features=["unstable"]),
    ),
    array("str"),
    command("set", "q_obj_set-arg", features=["deprecated"]),
    command("tree", ret="Node", allow_oob=True),
    command("names", ret="[str]"),
    event("CHANGED", "Choice"),
)


# ---------------------------------------------------------------- no differences


def test_identical_schemas_have_no_difference() -> None:
    comparison = compare_schemas(RICH, RICH)
    assert comparison.differences == ()
    assert comparison.is_compatible
    assert (comparison.commands_compared, comparison.events_compared) == (3, 1)
    assert "No differences." in comparison.report()


def test_masked_names_compare_by_structure() -> None:
    assert compare_schemas(RICH, mask(RICH)).differences == ()
    # the bundled package, as a QEMU with exactly its schema would answer
    built = bundled_introspection.schema_info()
    comparison = compare_schemas(built, mask(built))
    assert comparison.differences == (), comparison.report()
    assert comparison.commands_compared == sum(
        1 for entry in built if entry["meta-type"] == "command"
    )


# ---------------------------------------------------------------- commands, events


def test_commands_missing_and_added() -> None:
    comparison = compare_schemas(
        schema(command("old"), command("both")), schema(command("both"), command("new"))
    )
    assert comparison.missing_commands == ("old",)
    assert comparison.added_commands == ("new",)
    assert not comparison.is_compatible
    assert [str(d) for d in comparison.breaking] == [
        "command old: not on the live QEMU"
    ]
    assert comparison.unsafe_commands == ("old",)
    report = comparison.report()
    assert "NOT compatible: 1 breaking difference; commands affected: old." in report
    assert "Commands only on the live QEMU (1):\n  new\n" in report


def test_events_missing_and_added_do_not_break() -> None:
    comparison = compare_schemas(
        schema(event("GONE"), event("KEPT")), schema(event("KEPT"), event("NEW"))
    )
    assert comparison.missing_events == ("GONE",)
    assert comparison.added_events == ("NEW",)
    assert comparison.is_compatible


def test_allow_oob_and_features_are_reported_not_breaking() -> None:
    built = schema(command("pause", allow_oob=True), command("old"))
    live = schema(command("pause"), command("old", features=["deprecated"]))
    comparison = compare_schemas(built, live)
    assert [(d.kind, str(d), d.breaking) for d in comparison.differences] == [
        (
            DifferenceKind.FEATURES,
            "command old: feature 'deprecated' only on the live QEMU",
            False,
        ),
        (
            DifferenceKind.ALLOW_OOB,
            "command pause: allow-oob is false on the live QEMU, true in the package",
            False,
        ),
    ]


def test_member_and_enum_value_features() -> None:
    built = schema(
        enum("E", "a", "b"), struct("A", member("e", "E")), command("c", "A")
    )
    live = schema(
        {
            **enum("E", "a", "b"),
            "members": [{"name": "a"}, {"name": "b", "features": ["unstable"]}],
        },
        struct("A", member("e", "E", features=["deprecated"])),
        command("c", "A"),
    )
    assert [str(d) for d in compare_schemas(built, mask(live)).differences] == [
        "command c: argument 'e': feature 'deprecated' only on the live QEMU",
        "command c: argument 'e': value 'b' of enum E: feature 'unstable' only on "
        "the live QEMU",
    ]


# ---------------------------------------------------------------- hidden by policy

# A package with a deprecated command, event, argument and reply member, and a
# QEMU that hides them as -compat deprecated-output=hide does.
DEPRECATING = schema(
    struct(
        "q_obj_set-arg",
        member("mode", "str"),
        member("old-mode", "str", True, features=["deprecated"]),
    ),
    struct(
        "Info",
        member("name", "str"),
        member("legacy", "int", features=["deprecated"]),
    ),
    command("set", "q_obj_set-arg"),
    command("info", ret="Info"),
    command("old-set", "q_obj_set-arg", features=["deprecated"]),
    event("OLD_EVENT", features=["deprecated"]),
)
HIDING = schema(
    struct("q_obj_set-arg", member("mode", "str")),
    struct("Info", member("name", "str")),
    command("set", "q_obj_set-arg"),
    command("info", ret="Info"),
)


def test_deprecated_items_hidden_by_policy_do_not_break() -> None:
    comparison = compare_schemas(DEPRECATING, mask(HIDING))
    assert comparison.deprecated_hidden
    assert comparison.is_compatible, comparison.report()
    assert {d.kind for d in comparison.differences} == {DifferenceKind.HIDDEN_BY_POLICY}
    assert sorted(str(d) for d in comparison.hidden_by_policy) == [
        "command info: return member 'legacy': hidden by policy (deprecated member: "
        "QEMU leaves it out of its replies too)",
        "command old-set: hidden by policy (deprecated command: QEMU still runs it "
        "unless deprecated-input=reject)",
        "command set: argument 'old-mode': hidden by policy (deprecated argument: "
        "QEMU still takes it unless deprecated-input=reject)",
        "event OLD_EVENT: hidden by policy (deprecated event: QEMU does not send it)",
    ]
    report = comparison.report()
    assert "The live QEMU hides deprecated commands, events and members" in report
    assert "Hidden by policy (4):\n" in report
    assert comparison.missing_commands == ()


def test_a_qemu_that_shows_deprecated_items_has_removed_what_it_lacks() -> None:
    """The same package against a QEMU that lists a deprecated command of its own:
    it does not hide them, so what it lacks is gone (as in QEMU 7.0, which removed
    the deprecated migrate_set_speed)."""
    live = HIDING + [command("other", features=["deprecated"])]
    comparison = compare_schemas(DEPRECATING, mask(live))
    assert not comparison.deprecated_hidden
    assert comparison.hidden_by_policy == ()
    assert {str(d) for d in comparison.breaking} == {
        "command old-set: not on the live QEMU",
        "command set: argument 'old-mode': optional in the package, not on the live "
        "QEMU",
    }
    # listed, but not breaking: the package's decoders take the absence of a
    # deprecated member, required or not (its attribute is then None)
    legacy = [d for d in comparison.differences if "'legacy'" in str(d)]
    assert [str(d) for d in legacy] == [
        "command info: return member 'legacy': required in the package, not on the "
        "live QEMU"
    ]
    assert not legacy[0].breaking


def test_a_qemu_that_still_has_a_deprecated_item_does_not_hide_them() -> None:
    """It lists the package's deprecated command (without the feature: an older
    QEMU): a missing deprecated member there is a real difference."""
    live = HIDING + [command("old-set", "q_obj_set-arg")]
    comparison = compare_schemas(DEPRECATING, mask(live))
    assert not comparison.deprecated_hidden
    # (listed where the walk meets it first: command old-set comes before set)
    assert (
        "command old-set: argument 'old-mode': optional in the package, not on the "
        "live QEMU"
    ) in {str(d) for d in comparison.breaking}


def test_the_policy_can_be_stated_instead_of_guessed() -> None:
    live = mask(HIDING + [command("other", features=["deprecated"])])
    stated = compare_schemas(DEPRECATING, live, deprecated_hidden=True)
    assert stated.deprecated_hidden and stated.is_compatible
    assert len(stated.hidden_by_policy) == 4
    denied = compare_schemas(DEPRECATING, mask(HIDING), deprecated_hidden=False)
    assert not denied.deprecated_hidden and not denied.is_compatible
    # a package without deprecated items: nothing to hide, nothing guessed
    plain = compare_schemas(HIDING, mask(HIDING))
    assert not plain.deprecated_hidden and plain.differences == ()


def test_tool_takes_the_policy_from_the_command_line() -> None:
    bundled = bundled_introspection.schema_info()
    kept = [e for e in bundled if "deprecated" not in str(e.get("features", []))]
    live: list[Mapping[str, object]] = []
    live.extend(mask(kept + [command("other", features=["deprecated"])]))

    def fetch(address: Address, timeout: float) -> list[Mapping[str, object]]:
        return live

    def run(*extra: str) -> tuple[int, str]:
        out = io.StringIO()
        status = tool.main(
            ["qapigen_migration", "/q", *extra],
            stdout=out,
            stderr=io.StringIO(),
            fetch_live=fetch,
        )
        return status, out.getvalue()

    # the bundled package's four deprecated commands are not on this QEMU
    status, out = run()
    assert status == 1 and "hidden by policy" not in out
    status, out = run("--deprecated-output", "hide")
    assert status == 0
    assert "  command migrate_set_speed: hidden by policy (deprecated command" in out


# ---------------------------------------------------------------- members


def args_schema(*members: Entry) -> list[Entry]:
    """A command `c` taking `members`."""
    return schema(struct("q_obj_c-arg", *members), command("c", "q_obj_c-arg"))


def reply_schema(*members: Entry) -> list[Entry]:
    """A command `c` returning an object of `members`."""
    return schema(struct("Reply", *members), command("c", ret="Reply"))


def test_argument_missing_live_breaks() -> None:
    difference = only(
        compare_schemas(
            args_schema(member("a", "str"), member("b", "int", True)),
            mask(args_schema(member("a", "str"))),
        )
    )
    assert difference.kind is DifferenceKind.MEMBER_MISSING
    assert str(difference) == (
        "command c: argument 'b': optional in the package, not on the live QEMU"
    )
    assert difference.breaking  # the package can send it; QEMU would refuse it
    assert difference.used_by == ("command c",)


@pytest.mark.parametrize("optional, breaking", [(True, False), (False, True)])
def test_argument_added_live_breaks_only_when_required(
    optional: bool, breaking: bool
) -> None:
    difference = only(
        compare_schemas(
            args_schema(member("a", "str")),
            mask(args_schema(member("a", "str"), member("new", "str", optional))),
        )
    )
    assert difference.kind is DifferenceKind.MEMBER_ADDED
    assert difference.where == "command c: argument 'new'"
    assert difference.breaking is breaking


@pytest.mark.parametrize("optional, breaking", [(True, False), (False, True)])
def test_reply_member_missing_live_breaks_only_when_the_package_requires_it(
    optional: bool, breaking: bool
) -> None:
    difference = only(
        compare_schemas(
            reply_schema(member("a", "str"), member("gone", "int", optional)),
            mask(reply_schema(member("a", "str"))),
        )
    )
    assert difference.kind is DifferenceKind.MEMBER_MISSING
    assert difference.where == "command c: return member 'gone'"
    assert difference.breaking is breaking


def test_reply_member_added_live_is_kept_by_the_decoders() -> None:
    difference = only(
        compare_schemas(
            reply_schema(member("a", "str")),
            mask(reply_schema(member("a", "str"), member("new", "int"))),
        )
    )
    assert difference.kind is DifferenceKind.MEMBER_ADDED
    assert not difference.breaking


@pytest.mark.parametrize(
    "direction, built_optional, live_optional, breaking",
    [
        # the package may leave out what QEMU requires
        ("argument", True, False, True),
        ("argument", False, True, False),
        # QEMU may leave out what the package's decoder requires
        ("return member", False, True, True),
        ("return member", True, False, False),
    ],
)
def test_optional_versus_required(
    direction: str, built_optional: bool, live_optional: bool, breaking: bool
) -> None:
    build = args_schema if direction == "argument" else reply_schema
    difference = only(
        compare_schemas(
            build(member("m", "str", built_optional)),
            mask(build(member("m", "str", live_optional))),
        )
    )
    assert difference.kind is DifferenceKind.OPTIONALITY
    live_word = "optional" if live_optional else "required"
    built_word = "optional" if built_optional else "required"
    assert str(difference) == (
        f"command c: {direction} 'm': {live_word} on the live QEMU, "
        f"{built_word} in the package"
    )
    assert difference.breaking is breaking


# ---------------------------------------------------------------- types


def arg_of_type(typ: str, *types: Entry) -> list[Entry]:
    return schema(
        *types, struct("q_obj_c-arg", member("v", typ)), command("c", "q_obj_c-arg")
    )


def reply_of_type(typ: str, *types: Entry) -> list[Entry]:
    return schema(*types, struct("Reply", member("v", typ)), command("c", ret="Reply"))


STR_OR_NULL = alternate("StrOrNull", "str", "null")
MODE = enum("Mode", "fast", "slow")
WRAP = struct("Wrap", member("inner", "str"))


@pytest.mark.parametrize(
    "built, live, detail, breaking",
    [
        (
            arg_of_type("str"),
            arg_of_type("int"),
            "type int on the live QEMU, str in the package",
            True,
        ),
        (
            arg_of_type("StrOrNull", STR_OR_NULL),
            arg_of_type("str"),
            "type str on the live QEMU, alternate StrOrNull in the package",
            True,  # the package may send null
        ),
        (
            arg_of_type("str"),
            arg_of_type("StrOrNull", STR_OR_NULL),
            "type an alternate (string|null) on the live QEMU, str in the package",
            False,
        ),
        (
            arg_of_type("Mode", MODE),
            arg_of_type("str"),
            "type str on the live QEMU, enum Mode in the package",
            False,  # any enum value is a string QEMU takes
        ),
        (
            arg_of_type("str"),
            arg_of_type("Mode", MODE),
            "type an enum on the live QEMU, str in the package",
            True,
        ),
        (
            reply_of_type("str"),
            reply_of_type("Mode", MODE),
            "type an enum on the live QEMU, str in the package",
            False,  # the package decodes any string
        ),
        (
            arg_of_type("[str]", array("str")),
            arg_of_type("str"),
            "type str on the live QEMU, array of str in the package",
            True,
        ),
        (
            arg_of_type("Wrap", WRAP),
            arg_of_type("str"),
            "type str on the live QEMU, object Wrap in the package",
            True,
        ),
        (
            arg_of_type("int"),
            arg_of_type("number"),
            "type number on the live QEMU, int in the package",
            False,  # every int is a number
        ),
        (
            arg_of_type("number"),
            arg_of_type("int"),
            "type int on the live QEMU, number in the package",
            True,
        ),
        (
            reply_of_type("number"),
            reply_of_type("int"),
            "type int on the live QEMU, number in the package",
            False,
        ),
        (
            arg_of_type("str"),
            arg_of_type("any"),
            "type any on the live QEMU, str in the package",
            False,
        ),
    ],
)
def test_type_changes(
    built: list[Entry], live: list[Entry], detail: str, breaking: bool
) -> None:
    difference = only(compare_schemas(built, mask(live)))
    assert difference.kind is DifferenceKind.TYPE_CHANGED
    assert difference.where.split(": ", 1)[1] in ("argument 'v'", "return member 'v'")
    assert difference.detail == detail
    assert difference.breaking is breaking


def test_integer_types_are_the_same_on_the_wire() -> None:
    assert compare_schemas(arg_of_type("uint8"), arg_of_type("size")).differences == ()


def test_object_shape_is_compared_member_by_member() -> None:
    built = arg_of_type("Wrap", WRAP)
    live = arg_of_type("Wrap", struct("Wrap", member("inner", "int")))
    assert str(only(compare_schemas(built, mask(live)))) == (
        "command c: argument 'v.inner': type int on the live QEMU, str in the package"
    )


# ---------------------------------------- enums, unions, alternates


@pytest.mark.parametrize(
    "build, missing_breaks",
    [(arg_of_type, True), (reply_of_type, False)],
)
def test_enum_values(build: Builder, missing_breaks: bool) -> None:
    built = build("Mode", enum("Mode", "fast", "slow"))
    live = build("Mode", enum("Mode", "fast", "turbo"))
    comparison = compare_schemas(built, mask(live))
    assert [(d.kind, d.detail, d.breaking) for d in comparison.differences] == [
        (
            DifferenceKind.ENUM_VALUE_MISSING,
            "value 'slow' of enum Mode is not on the live QEMU",
            missing_breaks,  # the package may send it
        ),
        (
            DifferenceKind.ENUM_VALUE_ADDED,
            "value 'turbo' of enum Mode is only on the live QEMU",
            False,  # never sent by the package; kept by its open enums
        ),
    ]


def union_schema(build: Builder, cases: Sequence[str]) -> list[Entry]:
    """A union on 'kind' with branches `cases` (each with one member) as argument
    or reply type, depending on `build`."""
    branches = [
        struct(f"Branch{case}", member(f"{case}-data", "str")) for case in cases
    ]
    union = struct(
        "U",
        member("kind", "Kind"),
        tag="kind",
        variants={case: f"Branch{case}" for case in cases},
    )
    return build("U", enum("Kind", *cases), union, *branches)


@pytest.mark.parametrize(
    "build, where, missing_breaks, added_breaks",
    [
        (arg_of_type, "argument", True, False),
        (reply_of_type, "return member", False, True),
    ],
)
def test_union_branches(
    build: Builder, where: str, missing_breaks: bool, added_breaks: bool
) -> None:
    built = union_schema(build, ["a", "b"])
    live = union_schema(build, ["a", "c"])
    comparison = compare_schemas(built, mask(live))
    variants = [
        (d.kind, str(d), d.breaking)
        for d in comparison.differences
        if d.kind in (DifferenceKind.VARIANT_MISSING, DifferenceKind.VARIANT_ADDED)
    ]
    assert variants == [
        (
            DifferenceKind.VARIANT_MISSING,
            f"command c: {where} 'v(kind=b)': union branch 'b' is not on the live QEMU",
            missing_breaks,
        ),
        (
            DifferenceKind.VARIANT_ADDED,
            f"command c: {where} 'v(kind=c)': "
            "union branch 'c' is only on the live QEMU",
            added_breaks,  # a reply in branch c has no class in the package
        ),
    ]
    # the tag's enum values differ too
    kinds = {d.kind for d in comparison.differences}
    assert {DifferenceKind.ENUM_VALUE_MISSING, DifferenceKind.ENUM_VALUE_ADDED} <= kinds


def test_union_branch_members_are_compared() -> None:
    built = union_schema(arg_of_type, ["a"])
    live = arg_of_type(
        "U",
        enum("Kind", "a"),
        struct("U", member("kind", "Kind"), tag="kind", variants={"a": "Ba"}),
        struct("Ba", member("a-data", "str"), member("extra", "int")),
    )
    difference = only(compare_schemas(built, mask(live)))
    assert str(difference) == (
        "command c: argument 'v(kind=a).extra': required on the live QEMU, "
        "not in the package"
    )
    assert difference.breaking


def test_union_tag_change_breaks() -> None:
    built = union_schema(arg_of_type, ["a"])
    live = arg_of_type(
        "U",
        enum("Kind", "a"),
        struct("U", member("type", "Kind"), tag="type", variants={"a": "Ba"}),
        struct("Ba", member("a-data", "str")),
    )
    comparison = compare_schemas(built, mask(live))
    tags = [d for d in comparison.differences if d.kind is DifferenceKind.TAG_CHANGED]
    assert [(t.detail, t.breaking) for t in tags] == [
        ("a union on 'type' on the live QEMU, a union on 'kind' in the package", True)
    ]


def test_alternate_branches() -> None:
    built = arg_of_type("Alt", alternate("Alt", "str", "null"))
    live = arg_of_type("Alt", alternate("Alt", "str", "bool"))
    comparison = compare_schemas(built, mask(live))
    assert [(d.kind, d.detail, d.breaking) for d in comparison.differences] == [
        (
            DifferenceKind.ALTERNATIVE_MISSING,
            "alternate Alt accepts null in the package, not on the live QEMU",
            True,
        ),
        (
            DifferenceKind.ALTERNATIVE_ADDED,
            "alternate Alt accepts boolean only on the live QEMU",
            False,
        ),
    ]


def test_alternate_branches_are_followed() -> None:
    built = arg_of_type("Alt", alternate("Alt", "str", "Wrap"), WRAP)
    live = arg_of_type(
        "Alt", alternate("Alt", "str", "Wrap"), struct("Wrap", member("inner", "bool"))
    )
    assert str(only(compare_schemas(built, mask(live)))) == (
        "command c: argument 'v(object).inner': type bool on the live QEMU, "
        "str in the package"
    )


# ---------------------------------------------------------------- cycles, sharing


def test_cycles_terminate_and_report_once() -> None:
    def tree(*extra: Entry) -> list[Entry]:
        return schema(
            struct(
                "Node",
                member("children", "[Node]", True),
                member("up", "Leaf", True),
                *extra,
            ),
            struct("Leaf", member("node", "Node", True)),  # Node -> Leaf -> Node
            array("Node"),
            command("tree", ret="Node"),
        )

    comparison = compare_schemas(tree(), mask(tree(member("x", "int", True))))
    difference = only(comparison)
    assert str(difference) == (
        "command tree: return member 'x': optional on the live QEMU, not in the package"
    )


def test_shared_type_is_reported_once_for_every_user() -> None:
    def two_users(*values: str) -> list[Entry]:
        return schema(
            enum("Mode", *values),
            struct("q_obj_a-arg", member("mode", "Mode")),
            struct("q_obj_b-arg", member("modes", "[Mode]")),
            array("Mode"),
            command("a", "q_obj_a-arg"),
            command("b", "q_obj_b-arg"),
            command("unrelated"),
        )

    comparison = compare_schemas(two_users("x", "y"), mask(two_users("x")))
    difference = only(comparison)
    assert str(difference) == (
        "command a: argument 'mode': value 'y' of enum Mode is not on the live QEMU"
    )
    assert difference.used_by == ("command a", "command b")
    assert comparison.unsafe_commands == ("a", "b")
    assert comparison.affecting("b") == (difference,)
    assert comparison.affecting("unrelated") == ()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "live, message",
    [
        (
            {"name": "x"},
            "the live QEMU's schema: expected a list of SchemaInfo objects",
        ),
        (
            [*schema(), 5],
            "the live QEMU's schema, entry #9: expected an object, got int",
        ),
        ([*schema(), {"name": "c"}], "entry #9 ('c'): 'meta-type' is missing"),
        ([*schema(), {"meta-type": "command"}], "entry #9: 'name' is missing"),
        (
            [*schema(), {**EMPTY}],
            "entry #9: 'q_empty' is defined twice (first as entry #8)",
        ),
        (
            [*schema(), {"name": "c", "meta-type": "gadget"}],
            "unknown meta-type 'gadget'",
        ),
        (
            schema(command("c", "q_obj_c-arg")),
            "the live QEMU's schema: type 'q_obj_c-arg', used at command c: arguments, "
            "is not defined",
        ),
        (
            schema(struct("q_obj_c-arg", {"name": "v"}), command("c", "q_obj_c-arg")),
            "entry #9 ('q_obj_c-arg'): members[0] has no string 'type'",
        ),
        (
            schema(command("c", 7)),  # type: ignore[arg-type]
            "entry #9 ('c'): 'arg-type' is missing or not a string",
        ),
        (
            schema(command("c", allow_oob="yes")),
            "entry #9 ('c'): 'allow-oob' is not a boolean",
        ),
    ],
)
def test_malformed_input_is_located(live: object, message: str) -> None:
    built = schema(
        struct("q_obj_c-arg", member("v", "str")), command("c", "q_obj_c-arg")
    )
    with pytest.raises(SchemaFormatError) as caught:
        compare_schemas(built, live)  # type: ignore[arg-type]
    assert message in str(caught.value)


# ---------------------------------------- the bundled package vs QEMU 7.2


def qemu72_schema_text() -> str:
    if not QEMU72_QAPI.is_dir():
        pytest.skip(
            f"{QEMU72_QAPI.relative_to(REPO.parent)} is absent: QEMU 7.2's schema"
        )
    return "\n".join(path.read_text() for path in sorted(QEMU72_QAPI.glob("*.json")))


@pytest.fixture(scope="module")
def qemu72_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The introspection module of a package generated from QEMU 7.2's schema."""
    schema_file = QEMU72_QAPI / "qapi-schema.json"
    if not schema_file.exists():
        pytest.skip(
            f"{schema_file.relative_to(REPO.parent)} is absent: QEMU 7.2's schema"
        )
    package = "qapigen_qemu72_compare"
    files = generate_package(
        load_schema(str(schema_file)),
        package=package,
        schema_name="qapi-schema.json",
    )
    root = tmp_path_factory.mktemp("qemu72")
    with imported_package(files, root, package):
        yield importlib.import_module(f"{package}.introspection")


def names_of(entries: Sequence[Mapping[str, object]], meta: str) -> set[str]:
    return {str(e["name"]) for e in entries if e["meta-type"] == meta}


def schema_info_of(module: ModuleType) -> list[Entry]:
    answer: list[Entry] = module.schema_info()
    return answer


# Facts read in the two schema files (checked again by the test itself):
# QEMU 7.0 removed these deprecated commands; MigrateSetParameters and
# MigrationParameters gained these optional members; MigrationCapability these values.
REMOVED_COMMANDS = {
    "migrate_set_downtime",
    "migrate_set_speed",
    "migrate-set-cache-size",
    "query-migrate-cache-size",
}
NEW_PARAMETERS = ("block-bitmap-mapping", "cpu-throttle-tailslow")
NEW_CAPABILITIES = ("background-snapshot", "postcopy-preempt", "zero-copy-send")


def test_facts_hold_in_the_schema_files() -> None:
    new = qemu72_schema_text()
    old = BUNDLED_SCHEMA.read_text()
    for name in REMOVED_COMMANDS:
        assert f"'command': '{name}'" in old and f"'{name}'" not in new
    for name in NEW_PARAMETERS:
        assert f"'*{name}'" in new and name not in old
    for name in NEW_CAPABILITIES:
        assert f"'{name}'" in new and name not in old


def test_bundled_package_against_qemu72(qemu72_package: ModuleType) -> None:
    built = bundled_introspection.schema_info()
    live = schema_info_of(qemu72_package)
    comparison = compare_schemas(built, live)

    # commands and events: what the names say on each side
    assert set(comparison.missing_commands) == names_of(built, "command") - names_of(
        live, "command"
    )
    assert set(comparison.missing_commands) == REMOVED_COMMANDS
    assert set(comparison.added_commands) == names_of(live, "command") - names_of(
        built, "command"
    )
    assert set(comparison.missing_events) == names_of(built, "event") - names_of(
        live, "event"
    )
    # the removed commands are all that breaks: everything else was added compatibly
    assert not comparison.is_compatible
    assert set(comparison.unsafe_commands) == REMOVED_COMMANDS
    assert {d.kind for d in comparison.breaking} == {DifferenceKind.COMMAND_MISSING}

    found = {str(d): d for d in comparison.differences}
    for name in NEW_PARAMETERS:
        added = found[
            f"command migrate-set-parameters: argument '{name}': "
            "optional on the live QEMU, not in the package"
        ]
        assert added.kind is DifferenceKind.MEMBER_ADDED and not added.breaking
        assert (
            f"command query-migrate-parameters: return member '{name}': "
            "optional on the live QEMU, not in the package"
        ) in found
    for value in NEW_CAPABILITIES:
        assert (
            "command migrate-set-capabilities: argument 'capabilities[].capability': "
            f"value '{value}' of enum MigrationCapability is only on the live QEMU"
        ) in found
    # 7.2 narrowed many parameters from int to uint8/uint64: the same on the wire
    assert not any(
        d.kind is DifferenceKind.TYPE_CHANGED for d in comparison.differences
    )


def test_old_package_direction_is_reversed(qemu72_package: ModuleType) -> None:
    """A 7.2 package driving the 5.0-era QEMU: the new optional arguments break (the
    old QEMU refuses them), the new reply members it does not send are fine."""
    comparison = compare_schemas(
        schema_info_of(qemu72_package), bundled_introspection.schema_info()
    )
    found = {str(d): d for d in comparison.differences}
    sent = found[
        "command migrate-set-parameters: argument 'block-bitmap-mapping': "
        "optional in the package, not on the live QEMU"
    ]
    assert sent.breaking
    received = found[
        "command query-migrate-parameters: return member 'block-bitmap-mapping': "
        "optional in the package, not on the live QEMU"
    ]
    assert not received.breaking
    assert set(comparison.added_commands) == REMOVED_COMMANDS


# ---------------------------------------------------------------- the command line


def run_tool(argv: list[str], live: object = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def fetch(address: Address, timeout: float) -> list[Mapping[str, object]]:
        assert isinstance(live, list)
        return live

    status = tool.main(argv, stdout=out, stderr=err, fetch_live=fetch)
    return status, out.getvalue(), err.getvalue()


def test_tool_exits_0_when_compatible() -> None:
    live = mask(bundled_introspection.schema_info())
    status, out, err = run_tool(["qapigen_migration", "/run/qemu.qmp"], live)
    assert (status, err) == (0, "")
    assert out.startswith(
        "Package qapigen_migration against the QEMU at unix:/run/qemu.qmp\n"
    )
    assert "Compatible: the live QEMU accepts everything the package sends" in out


def test_tool_exits_1_when_not_compatible() -> None:
    live = [
        e
        for e in mask(bundled_introspection.schema_info())
        if e["name"] != "migrate_set_speed"
    ]
    status, out, _ = run_tool(["qapigen_migration", "localhost:4444"], live)
    assert status == 1
    assert "against the QEMU at tcp:localhost:4444" in out
    assert "  command migrate_set_speed: not on the live QEMU\n" in out


@pytest.mark.parametrize(
    "text, address",
    [
        ("/run/q.sock", "/run/q.sock"),
        ("unix:q.sock", "q.sock"),
        ("localhost:4444", ("localhost", 4444)),
        ("tcp:127.0.0.1:4444", ("127.0.0.1", 4444)),
        ("[::1]:4444", ("::1", 4444)),
        ("q.sock", "q.sock"),
    ],
)
def test_addresses(text: str, address: Address) -> None:
    assert tool.parse_address(text) == address


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["no_such_package_xyz", "/q"],
            "cannot import no_such_package_xyz.introspection",
        ),
        (["json", "/q"], "cannot import json.introspection"),
        (["qapigen_migration", "tcp:localhost"], "expected tcp:HOST:PORT"),
        (["qapigen_migration", "localhost:99999"], "port 99999 is out of range"),
        (
            ["qapigen_migration", "/q", "--timeout", "0"],
            "--timeout must be a positive number",
        ),
        (
            ["qapigen_migration", "/q", "--timeout", "inf"],
            "--timeout must be a positive number",
        ),
    ],
)
def test_tool_usage_errors_exit_2(argv: list[str], message: str) -> None:
    status, out, err = run_tool(argv, [])
    assert (status, out) == (2, "")
    assert message in err


def test_tool_connection_error_exits_2(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    missing = tmp_path / "nobody.sock"
    status = tool.main(["qapigen_migration", str(missing)], stdout=out, stderr=err)
    assert status == 2
    assert f"error: cannot connect to unix:{missing}: " in err.getvalue()


def test_tool_malformed_answer_exits_2() -> None:
    status, _, err = run_tool(["qapigen_migration", "/q"], [{"name": "x"}])
    assert status == 2
    assert "the live QEMU's schema, entry #0 ('x'): 'meta-type' is missing" in err


def test_tool_messages_name_the_command_that_was_run(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "qapigen-compare"
    for command, name in (
        ([str(script)], "qapigen-compare"),
        (
            [sys.executable, "-m", "qapigen_runtime.schema_compare.cli"],
            "python -m qapigen_runtime.schema_compare.cli",
        ),
    ):
        result = subprocess.run(
            [*command, "no_such_package_xyz", "/q"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode == 2
        assert result.stderr.startswith(f"{name}: error: cannot import ")


@pytest.fixture
def qmp_server_of_schema(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(schema file, QMP address) of a running qapigen-vm and the schema it serves."""
    socket_path = tmp_path / "vm.qmp"
    process = subprocess.Popen(
        [sys.executable, "-m", "qapigen_vm.main", "-m", "16M"]
        + ["-qmp", f"unix:{socket_path},server=on,wait=off"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not accepts_connections(socket_path):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "qapigen-vm did not start"
            time.sleep(0.05)
        yield str(REPO / "schema" / "qapigen-vm.json"), str(socket_path)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_tool_finds_a_package_generated_in_the_current_directory(
    tmp_path: Path, qmp_server_of_schema: tuple[str, str]
) -> None:
    """As `python -m` would: no PYTHONPATH, the package is in the working directory
    (and the console script's own sys.path does not have it)."""
    schema_file, address = qmp_server_of_schema
    generated = subprocess.run(
        [str(Path(sys.executable).parent / "qapigen"), "generate", schema_file]
        + ["-o", str(tmp_path / "fresh_pkg")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stderr
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "qapigen-compare"), "fresh_pkg", address],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Compatible: the live QEMU accepts everything the package sends" in (
        result.stdout
    )


def test_tool_process_never_shows_a_traceback(tmp_path: Path) -> None:
    for argv in (["qapigen_migration"], ["qapigen_migration", str(tmp_path / "no")]):
        result = subprocess.run(
            [sys.executable, "-m", "qapigen_runtime.schema_compare.cli", *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr and result.stderr


# ---------------------------------------------------------------- a real QEMU 7.2


@pytest.fixture
def live_qemu72(qemu_launcher: QemuLauncher) -> Iterator[str]:
    """The QMP socket of a running QEMU 7.2."""
    version = qemu_version()
    if version != (7, 2):
        pytest.skip(
            f"these expectations are QEMU 7.2's; the installed QEMU is {version}"
        )
    yield qemu_launcher.start("compare").qmp_address


@pytest.mark.qemu
@pytest.mark.timeout(120)
def test_real_qemu72(live_qemu72: str, qemu72_package: ModuleType) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qapigen_runtime.schema_compare.cli",
            "qapigen_migration",
            live_qemu72,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    for name in sorted(REMOVED_COMMANDS):
        assert f"  command {name}: not on the live QEMU\n" in result.stdout

    with SyncQMPClient() as client:
        client.connect(live_qemu72)
        answer = client.execute("query-qmp-schema")
    assert isinstance(answer, list)
    # QEMU masks its type names: the comparison cannot lean on them
    assert "MigrationParameters" not in {e["name"] for e in answer}

    comparison = compare_schemas(bundled_introspection.schema_info(), answer)
    assert set(comparison.unsafe_commands) == REMOVED_COMMANDS
    assert (
        "command migrate-set-parameters: argument 'block-bitmap-mapping': "
        "optional on the live QEMU, not in the package"
    ) in {str(d) for d in comparison.differences}

    # The package generated from 7.2's own schema matches the real 7.2 wherever
    # the bundled package's commands and events lead (the rest may depend on how
    # this QEMU was configured).
    ours = {
        f"command {n}" for n in names_of(bundled_introspection.schema_info(), "command")
    }
    ours |= {
        f"event {n}" for n in names_of(bundled_introspection.schema_info(), "event")
    }
    same = compare_schemas(schema_info_of(qemu72_package), answer)
    near = [d for d in same.differences if ours.intersection(d.used_by)]
    assert near == [], "\n".join(map(str, near))
    # Elsewhere this QEMU is the full 7.2 schema minus what its build left out
    # (io_uring, macOS's vmnet and cocoa, s390 and ARM commands...): nothing is
    # added, retyped or made optional.
    subset = {
        DifferenceKind.COMMAND_MISSING,
        DifferenceKind.EVENT_MISSING,
        DifferenceKind.MEMBER_MISSING,
        DifferenceKind.ENUM_VALUE_MISSING,
        DifferenceKind.VARIANT_MISSING,
        DifferenceKind.ALTERNATIVE_MISSING,
    }
    assert {d.kind for d in same.differences} <= subset, same.report()


def test_tool_leaves_out_conditional_parts_with_defined() -> None:
    """The bundled package's replication commands are conditional on
    CONFIG_REPLICATION: a QEMU built without it lacks them, which --defined says."""
    built_all = bundled_introspection.schema_info()
    built_none = bundled_introspection.schema_info(defined=())
    conditional = names_of(built_all, "command") - names_of(built_none, "command")
    assert conditional  # the bundled schema has some
    live = mask(built_none)
    status, out, _ = run_tool(["qapigen_migration", "/q"], live)
    assert status == 1
    for name in sorted(conditional):
        assert f"  command {name}: not on the live QEMU\n" in out
    status, out, _ = run_tool(["qapigen_migration", "/q", "--defined", ""], live)
    assert status == 0, out


def query_qmp_schema(address: str) -> list[Mapping[str, object]]:
    with SyncQMPClient() as client:
        client.connect(address)
        answer = client.execute("query-qmp-schema")
    assert isinstance(answer, list)
    return answer


@pytest.mark.qemu
@pytest.mark.timeout(180)
def test_real_qemu72_hiding_deprecated_items(
    qemu_launcher: QemuLauncher, qemu72_package: ModuleType
) -> None:
    """QEMU 7.2 run with -compat deprecated-output=hide leaves deprecated commands,
    events and members out of query-qmp-schema: against the complete 7.2 package they
    are hidden by policy, and nothing breaks that does not break against the same
    QEMU showing them."""
    if qemu_version() != (7, 2):
        pytest.skip(f"these expectations are QEMU 7.2's, not {qemu_version()}'s")
    showing = qemu_launcher.start("showing").qmp_address
    hiding = qemu_launcher.start(
        "hiding", extra_args=["-compat", "deprecated-output=hide"]
    ).qmp_address
    built = schema_info_of(qemu72_package)
    normal = compare_schemas(built, query_qmp_schema(showing))
    hidden = compare_schemas(built, query_qmp_schema(hiding))
    assert not normal.deprecated_hidden and normal.hidden_by_policy == ()
    assert hidden.deprecated_hidden
    # what only breaks against the hiding QEMU (before: 18 false alarms): nothing
    assert {str(d) for d in hidden.breaking} == {str(d) for d in normal.breaking}
    roots = {d.where for d in hidden.hidden_by_policy if ":" not in d.where}
    # the deprecated commands and event of QEMU 7.2's schema (observed hidden)
    assert roots == {
        "command drive-backup",
        "command nbd-server-add",
        "command nbd-server-remove",
        "event MEM_UNPLUG_ERROR",
    }
    members = [d for d in hidden.hidden_by_policy if ":" in d.where]
    assert members and all("deprecated" in d.detail for d in members)
    # 7.2's deprecated members, e.g. query-qmp-schema's own enum 'values'
    assert any(
        d.where.startswith("command query-qmp-schema: return member")
        and d.where.endswith(".values'")
        for d in members
    ), "\n".join(map(str, members))

    # The command, run where the package was generated: no PYTHONPATH needed.
    folder = Path(str(qemu72_package.__file__)).parent
    result = subprocess.run(
        [str(Path(sys.executable).parent / "qapigen-compare"), folder.name, hiding],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder.parent,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == (1 if normal.breaking else 0), result.stderr
    assert "The live QEMU hides deprecated commands, events and members" in (
        result.stdout
    )
    assert f"Hidden by policy ({len(hidden.hidden_by_policy)}):\n" in result.stdout
    assert "  command drive-backup: hidden by policy (deprecated command" in (
        result.stdout
    )
