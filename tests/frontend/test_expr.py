"""Expression checks and desugaring (qapigen.expr), per language level."""

from __future__ import annotations

import pytest

from qapigen.expr import (
    AlternateDef,
    CheckedExpr,
    CommandDef,
    Definition,
    EnumDef,
    EventDef,
    IncludeDef,
    StructDef,
    TypeRef,
    UnionDef,
    check_exprs,
)
from qapigen.ifcond import IfAll, IfAny, IfName, IfNot
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.source import QAPIError

MODERN = [Level.V7_2, Level.V10_0]
ALL = list(Level)


def check(text: str, level: Level = Level.PERMISSIVE) -> list[CheckedExpr]:
    return check_exprs(parse_text(text, "t.json", level).exprs, level)


def error(text: str, level: Level = Level.PERMISSIVE) -> QAPIError:
    with pytest.raises(QAPIError) as exc:
        check(text, level)
    return exc.value


def definitions(text: str, level: Level = Level.PERMISSIVE) -> list[Definition]:
    checked = check(text, level)
    result: list[Definition] = [d for d in checked if isinstance(d, Definition)]
    assert len(result) == len(checked)
    return result


def one(text: str, level: Level = Level.PERMISSIVE) -> Definition:
    (expr,) = definitions(text, level)
    return expr


# ---------------------------------------------------------------- desugaring


def test_struct_members_are_desugared() -> None:
    struct = one(
        "{ 'struct': 'Foo', 'base': 'Bar',\n"
        "  'data': { 'a': 'int', '*b': ['str'],\n"
        "            'c': { 'type': 'Baz', 'if': 'CONFIG_C',"
        " 'features': [ 'deprecated' ] } } }"
    )
    assert isinstance(struct, StructDef)
    assert struct.base == "Bar"
    a, b, c = struct.members
    assert (a.name, a.type, a.optional) == ("a", TypeRef("int"), False)
    assert (b.name, b.type, b.optional) == ("b", TypeRef("str", True), True)
    assert str(b.type) == "['str']"
    assert c.ifcond.expr == IfName("CONFIG_C")
    assert [f.name for f in c.features] == ["deprecated"]


def test_enum_values_and_features_are_desugared() -> None:
    enum = one(
        "{ 'enum': 'Colour', 'prefix': 'COL',\n"
        "  'data': [ 'red', { 'name': 'green', 'if': 'CONFIG_G',"
        " 'features': [ 'unstable' ] }, '1st' ],\n"
        "  'features': [ 'f1', { 'name': 'f2', 'if': { 'not': 'X' } } ] }",
        Level.V7_2,
    )
    assert isinstance(enum, EnumDef)
    assert enum.prefix == "COL"
    assert [v.name for v in enum.values] == ["red", "green", "1st"]
    assert enum.values[1].ifcond.expr == IfName("CONFIG_G")
    assert [f.name for f in enum.values[1].features] == ["unstable"]
    assert [f.name for f in enum.features] == ["f1", "f2"]
    assert enum.features[1].ifcond.expr == IfNot(IfName("X"))


def test_command_defaults_and_flags() -> None:
    plain = one("{ 'command': 'do-it' }")
    assert isinstance(plain, CommandDef)
    assert (plain.data, plain.returns, plain.boxed) == (None, None, False)
    assert (plain.gen, plain.success_response) == (True, True)
    assert (plain.allow_oob, plain.allow_preconfig, plain.coroutine) == (
        False,
        False,
        False,
    )
    flagged = one(
        "{ 'command': 'x', 'data': 'Args', 'boxed': true, 'returns': ['R'],"
        " 'gen': false, 'success-response': false, 'allow-oob': true,"
        " 'allow-preconfig': true }"
    )
    assert isinstance(flagged, CommandDef)
    assert flagged.data == "Args" and flagged.boxed
    assert flagged.returns == TypeRef("R", True)
    assert not flagged.gen and not flagged.success_response
    assert flagged.allow_oob and flagged.allow_preconfig


def test_event_inline_data() -> None:
    event = one("{ 'event': 'SHUTDOWN', 'data': { 'guest': 'bool' } }")
    assert isinstance(event, EventDef)
    assert isinstance(event.data, list) and event.data[0].name == "guest"


def test_include_directive_carries_the_resolved_path(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inc.json").write_text("{ 'enum': 'Enum', 'data': [] }\n")
    main = tmp_path / "main.json"
    main.write_text("{ 'include': 'sub/inc.json' }\n")
    from qapigen.parser import parse_schema

    exprs = check_exprs(parse_schema(str(main)).exprs, Level.PERMISSIVE)
    assert isinstance(exprs[0], IncludeDef)
    assert exprs[0].fname == str(tmp_path / "sub" / "inc.json")
    assert isinstance(exprs[1], EnumDef)


# ---------------------------------------------------------------- conditions


def test_modern_condition_tree() -> None:
    struct = one(
        "{ 'struct': 'Struct', 'data': {},"
        " 'if': { 'all': [ 'A', { 'any': [ 'B', { 'not': 'C' } ] } ] } }",
        Level.V7_2,
    )
    assert struct.ifcond.expr == IfAll(
        (IfName("A"), IfAny((IfName("B"), IfNot(IfName("C")))))
    )
    assert struct.ifcond.dump_text() == "{'all': ['A', {'any': ['B', {'not': 'C'}]}]}"


def test_legacy_condition_is_parsed_into_the_same_tree() -> None:
    struct = one(
        "{ 'struct': 'Struct', 'data': {},"
        " 'if': 'defined(A) && (defined(B) || !defined(C))' }",
        Level.V5_2,
    )
    assert struct.ifcond.expr == IfAll(
        (IfName("A"), IfAny((IfName("B"), IfNot(IfName("C")))))
    )
    # QEMU 5.2 normalises a single condition to a list, and prints it so
    assert struct.ifcond.raw == ["defined(A) && (defined(B) || !defined(C))"]
    assert struct.ifcond.evaluate({"A", "B"})
    assert not struct.ifcond.evaluate({"A", "C"})


def test_permissive_accepts_both_condition_forms() -> None:
    legacy, modern, listed = definitions(
        "{ 'enum': 'Aa', 'data': [], 'if': 'defined(CONFIG_X)' }\n"
        "{ 'enum': 'Bb', 'data': [], 'if': { 'any': [ 'CONFIG_X', 'CONFIG_Y' ] } }\n"
        "{ 'enum': 'Cc', 'data': [], 'if': [ 'defined(X)', 'defined(Y)' ] }\n"
    )
    assert legacy.ifcond.expr == IfName("CONFIG_X")
    assert legacy.ifcond.dump_text() == "defined(CONFIG_X)"
    assert modern.ifcond.expr == IfAny((IfName("CONFIG_X"), IfName("CONFIG_Y")))
    assert listed.ifcond.expr == IfAll((IfName("X"), IfName("Y")))


@pytest.mark.parametrize(
    ("cond", "level"),
    [
        ("'defined(CONFIG_X)'", Level.V7_2),
        ("'lower'", Level.V10_0),
        ("[ 'A' ]", Level.V7_2),
        ("{ 'all': [] }", Level.V7_2),
        ("{ 'all': 'A' }", Level.V10_0),
        ("{ 'all': ['A'], 'any': ['B'] }", Level.V7_2),
        ("{ 'nand': ['A'] }", Level.V7_2),
        ("{ 'all': ['A'] }", Level.V5_2),
        ("' '", Level.V5_2),
        ("[]", Level.V5_2),
        ("' '", Level.PERMISSIVE),
        ("[ true ]", Level.PERMISSIVE),
    ],
)
def test_bad_conditions_are_rejected_at_the_definition(cond: str, level: Level) -> None:
    exc = error(f"\n{{ 'struct': 'Struct', 'data': {{}}, 'if': {cond} }}", level)
    assert exc.info is not None and exc.info.line == 2
    assert "'if'" in exc.message or "condition" in exc.message


# ---------------------------------------------------------------- keys and shapes


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{ 'struct': 'Struct' }", "'data'"),
        ("{ 'struct': 'Struct', 'data': {}, 'colour': 'red' }", "Valid keys"),
        ("{ 'struct': 'Struct', 'enum': 'Enum', 'data': {} }", "exactly one"),
        ("{ 'frobnicate': 'S' }", "exactly one"),
        ("{ 'struct': true, 'data': {} }", "string name"),
        ("{ 'struct': 'Struct', 'data': [ 'a' ] }", "array"),
        ("{ 'struct': 'Struct', 'data': { 'a': { 'if': 'X' } } }", "'type'"),
        ("{ 'struct': 'Struct', 'data': { 'a': [ 'int', 'str' ] } }", "one type name"),
        (
            "{ 'struct': 'Struct', 'data': { 'a': { 'type': { 'b': 'int' } } } }",
            "type name",
        ),
        ("{ 'enum': 'Enum', 'data': {} }", "array"),
        ("{ 'enum': 'Enum', 'data': [], 'prefix': [] }", "'prefix'"),
        ("{ 'enum': 'Enum', 'data': [ { 'if': 'X' } ] }", "'name'"),
        ("{ 'alternate': 'Alt', 'data': {} }", "empty"),
        ("{ 'alternate': 'Alt', 'data': [ 'x' ] }", "object"),
        ("{ 'command': 'c', 'boxed': true }", "'boxed'"),
        ("{ 'command': 'c', 'data': { 'a': 'int' }, 'boxed': true }", "type name"),
        ("{ 'command': 'c', 'data': [ 'int' ] }", "array"),
        ("{ 'command': 'c', 'gen': true }", "'gen'"),
        ("{ 'command': 'c', 'allow-oob': false }", "'allow-oob'"),
        ("{ 'command': 'c', 'allow-oob': true, 'coroutine': true }", "coroutine"),
        ("{ 'command': 'c', 'returns': { 'a': 'int' } }", "type name"),
        ("{ 'event': 'E', 'boxed': 'yes', 'data': 'T' }", "'boxed'"),
        ("{ 'struct': 'Struct', 'data': {}, 'features': 'f' }", "array"),
        ("{ 'struct': 'Struct', 'data': {}, 'features': [ { 'if': 'X' } ] }", "'name'"),
        ("{ 'struct': 'Struct', 'data': {}, 'features': [ [] ] }", "string name"),
    ],
)
def test_malformed_expressions(text: str, words: str) -> None:
    exc = error("# leading comment\n" + text)
    assert exc.info is not None and exc.info.line == 2
    assert words in exc.message


def test_errors_name_the_definition() -> None:
    exc = error("{ 'struct': 'Foo', 'data': { 'a': {} } }")
    assert str(exc).startswith("t.json: In struct 'Foo':\nt.json:1: ")


# ---------------------------------------------------------------- naming rules


@pytest.mark.parametrize("level", ALL)
@pytest.mark.parametrize(
    "text",
    [
        "{ 'struct': 'Struct', 'data': { 'u': 'int' } }",
        "{ 'struct': 'Struct', 'data': { '*has-x': 'int' } }",
        "{ 'struct': 'Struct', 'data': { 'q-x': 'int' } }",
        "{ 'struct': 'Struct', 'data': { '_x': 'int' } }",
        "{ 'struct': 'StructList', 'data': {} }",
        "{ 'command': 'q_cmd' }",
        "{ 'enum': 'Enum', 'data': [ 'not\\\\ok' ] }",
        "{ 'enum': 'Enum', 'data': [ 'a-b', 'Upper' ] }",
        "{ 'struct': 'Struct', 'data': { 'Upper': 'int' } }",
    ],
)
def test_reserved_and_invalid_names_at_every_level(text: str, level: Level) -> None:
    error(text, level)


@pytest.mark.parametrize("level", ALL)
def test_downstream_names_are_valid(level: Level) -> None:
    checked = check(
        "{ 'enum': '__org.qemu_x-Enum', 'data': [ '__org.qemu_x-value' ] }\n"
        "{ 'struct': '__org.qemu_x-Struct',"
        " 'data': { '__org.qemu_x-member': '__org.qemu_x-Enum' } }\n"
        "{ 'command': '__org.qemu_x-command' }\n"
        "{ 'event': '__ORG.QEMU_X-EVENT' }\n",
        level,
    )
    assert [d.name for d in checked if not isinstance(d, IncludeDef)] == [
        "__org.qemu_x-Enum",
        "__org.qemu_x-Struct",
        "__org.qemu_x-command",
        "__ORG.QEMU_X-EVENT",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "{ 'struct': 'lower', 'data': {} }",
        "{ 'event': 'lower_event' }",
        "{ 'event': 'UPPER-DASH' }",
        "{ 'command': 'with_underscore' }",
        "{ 'struct': 'Struct', 'data': { 'a_b': 'int' } }",
        "{ 'enum': 'Enum', 'data': [ 'a_b' ] }",
    ],
)
def test_modern_case_rules(text: str) -> None:
    for level in MODERN:
        error(text, level)
    check(text, Level.V5_2)
    check(text, Level.PERMISSIVE)


def test_pragma_exceptions_lift_the_case_rules() -> None:
    text = (
        "{ 'pragma': { 'command-name-exceptions': [ 'old_cmd' ],"
        " 'member-name-exceptions': [ 'Old', 'OldEnum' ] } }\n"
        "{ 'command': 'old_cmd' }\n"
        "{ 'struct': 'Old', 'data': { 'Mixed_Case': 'int' } }\n"
        "{ 'enum': 'OldEnum', 'data': [ 'A_B' ] }\n"
    )
    assert len(check(text, Level.V7_2)) == 3
    legacy = (
        "{ 'pragma': { 'name-case-whitelist': [ 'Old' ] } }\n"
        "{ 'struct': 'Old', 'data': { 'Mixed': 'int' } }\n"
    )
    assert len(check(legacy, Level.V5_2)) == 1


def test_kind_suffix_is_reserved_only_with_simple_unions() -> None:
    text = "{ 'enum': 'FooKind', 'data': [] }"
    error(text, Level.V5_2)
    check(text, Level.V7_2)


# ---------------------------------------------------------------- unions, alternates


def test_simple_union_exists_before_qemu_6() -> None:
    text = "{ 'union': 'Union', 'data': { 'a': 'int', 'b': ['str'] } }"
    for level in (Level.V5_2, Level.PERMISSIVE):
        union = one(text, level)
        assert isinstance(union, UnionDef)
        assert union.discriminator is None and union.base is None
        assert [b.type for b in union.branches] == [
            TypeRef("int"),
            TypeRef("str", True),
        ]
    for level in MODERN:
        assert "'base'" in error(text, level).message


def test_flat_union_with_inline_base() -> None:
    union = one(
        "{ 'union': 'Union', 'base': { 'kind': 'K' }, 'discriminator': 'kind',"
        " 'data': { 'a': 'A', 'b': { 'type': 'B', 'if': 'X' } } }",
        Level.V7_2,
    )
    assert isinstance(union, UnionDef)
    assert isinstance(union.base, list) and union.base[0].name == "kind"
    assert union.discriminator == "kind"
    assert union.branches[1].ifcond.expr == IfName("X")


def test_flat_union_branches_cannot_be_arrays() -> None:
    error(
        "{ 'union': 'Union', 'base': 'B', 'discriminator': 'k', 'data': { 'a': ['A'] } }",
        Level.V7_2,
    )


def test_alternate_array_branches_arrive_with_qemu_7() -> None:
    text = "{ 'alternate': 'Alt', 'data': { 'l': ['int'], 's': 'str' } }"
    assert "array" in error(text, Level.V5_2).message
    alt = one(text, Level.V7_2)
    assert isinstance(alt, AlternateDef)
    assert alt.branches[0].type == TypeRef("int", True)


def test_enum_value_features_arrive_with_qemu_6() -> None:
    text = (
        "{ 'enum': 'Enum', 'data': [ { 'name': 'a', 'features': [ 'deprecated' ] } ] }"
    )
    error(text, Level.V5_2)
    check(text, Level.V7_2)


def test_doc_symbol_must_match_the_definition() -> None:
    text = "##\n# @Other:\n##\n{ 'enum': 'Enum', 'data': [] }\n"
    exc = error(text, Level.V7_2)
    assert exc.info is not None and exc.info.line == 4
    assert "Other" in exc.message


def test_doc_required_pragma() -> None:
    text = "{ 'pragma': { 'doc-required': true } }\n{ 'enum': 'Enum', 'data': [] }\n"
    exc = error(text, Level.V7_2)
    assert exc.info is not None and exc.info.line == 2
