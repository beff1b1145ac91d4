"""The schema IR (qapigen.schema), its visitor and dumps, and the front end as a whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qapigen.dump import dump_json, dump_qemu_test
from qapigen.expr import check_exprs
from qapigen.frontend import load_schema
from qapigen.ifcond import IfAll, IfName
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    Command,
    EnumType,
    Event,
    Include,
    Module,
    ObjectType,
    Schema,
    SchemaVisitor,
)
from qapigen.source import QAPIError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def build(text: str, level: Level = Level.PERMISSIVE) -> Schema:
    parsed = parse_text(text, "t.json", level)
    return Schema.build(
        check_exprs(parsed.exprs, level),
        level,
        main_fname="t.json",
        docs=parsed.docs,
        warnings=parsed.warnings,
    )


def error(text: str, level: Level = Level.PERMISSIVE) -> QAPIError:
    with pytest.raises(QAPIError) as exc:
        build(text, level)
    return exc.value


def obj(schema: Schema, name: str) -> ObjectType:
    typ = schema.lookup_type(name)
    assert isinstance(typ, ObjectType)
    return typ


# ---------------------------------------------------------------- real schemas


def _shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: QEMU's schemas live in ../shared")
    return path


@pytest.mark.parametrize(
    ("release", "level"),
    [
        ("5.2", Level.V5_2),
        ("5.2", Level.PERMISSIVE),
        ("7.2", Level.V7_2),
        ("7.2", Level.PERMISSIVE),
    ],
)
def test_complete_qemu_schema_loads(release: str, level: Level) -> None:
    path = _shared("qemu", release, "qapi", "qapi-schema.json")
    schema = load_schema(str(path), level)
    names = {e.name for e in schema.entities}
    assert {"query-status", "migrate", "MIGRATION", "MigrationInfo"} <= names
    query_migrate = schema.lookup_entity("query-migrate")
    assert isinstance(query_migrate, Command)
    assert query_migrate.ret_type is not None
    assert query_migrate.ret_type.name == "MigrationInfo"
    # every module but the built-in one is a file of the schema
    assert [m.name for m in schema.modules][:2] == ["./builtin", "qapi-schema.json"]
    if level is not Level.PERMISSIVE:
        assert schema.warnings == []


def test_bundled_migration_schema_loads() -> None:
    schema = load_schema(str(REPO / "schema" / "migration.json"), Level.PERMISSIVE)
    migrate = schema.lookup_entity("migrate")
    assert isinstance(migrate, Command)
    assert migrate.arg_type is not None and migrate.arg_type.is_implicit
    assert "uri" in [m.name for m in migrate.arg_type.members]
    capability = schema.lookup_type("MigrationCapability")
    assert isinstance(capability, EnumType)
    assert "xbzrle" in capability.member_names()
    # 5.0-era legacy conditions are parsed into evaluable trees
    zstd = [m for m in schema.types() if isinstance(m, EnumType)]
    conds = [v.ifcond for t in zstd for v in t.members if v.ifcond]
    assert any("CONFIG_ZSTD" in c.names() for c in conds)


# ---------------------------------------------------------------- entities


def test_struct_members_include_the_base_first() -> None:
    schema = build(
        "{ 'struct': 'Base', 'data': { 'a': 'int' } }\n"
        "{ 'struct': 'Sub', 'base': 'Base', 'data': { '*b': ['str'] } }\n"
    )
    sub = obj(schema, "Sub")
    assert sub.base is obj(schema, "Base")
    assert [m.name for m in sub.members] == ["a", "b"]
    assert [m.name for m in sub.local_members] == ["b"]
    b = sub.local_members[0]
    assert b.optional and isinstance(b.type, ArrayType)
    assert b.type.element_type.name == "str"
    assert sub.kind == "struct" and not sub.is_implicit and sub.variants is None


def test_union_with_inline_base_and_uncovered_values() -> None:
    schema = build(
        "{ 'enum': 'Kind', 'data': [ 'a', 'b', { 'name': 'c', 'if': 'HAVE_C' } ] }\n"
        "{ 'struct': 'Abc', 'data': { 'x': 'int' } }\n"
        "{ 'union': 'Union', 'base': { 'kind': 'Kind', '*common': 'str' },"
        " 'discriminator': 'kind', 'data': { 'a': 'Abc' } }\n",
        Level.V7_2,
    )
    union = obj(schema, "Union")
    assert union.kind == "union"
    assert union.base is not None and union.base.name == "q_obj_Union-base"
    assert union.base.is_implicit
    assert union.variants is not None
    assert union.variants.tag_member.name == "kind"
    assert [(v.name, v.type.name) for v in union.branches] == [
        ("a", "Abc"),
        ("b", "q_empty"),
        ("c", "q_empty"),
    ]
    assert union.branches[2].ifcond.expr == IfName("HAVE_C")


def test_simple_union_desugars_like_qemu_5() -> None:
    schema = build(
        "{ 'struct': 'Thing', 'data': { 'x': 'int' }, 'if': 'defined(CONFIG_T)' }\n"
        "{ 'union': 'Simple', 'data': { 'thing': 'Thing', 'list': ['int'] } }\n",
        Level.V5_2,
    )
    kind = schema.lookup_type("SimpleKind")
    assert isinstance(kind, EnumType) and kind.is_implicit
    assert kind.member_names() == ["thing", "list"]
    union = obj(schema, "Simple")
    assert [m.name for m in union.local_members] == ["type"]
    assert [v.type.name for v in union.branches] == [
        "q_obj_Thing-wrapper",
        "q_obj_intList-wrapper",
    ]
    wrapper = obj(schema, "q_obj_Thing-wrapper")
    # a wrapper is only there when the wrapped type is
    assert wrapper.ifcond.raw == ["defined(CONFIG_T)"]
    assert [m.name for m in wrapper.members] == ["data"]


def test_alternate() -> None:
    schema = build(
        "{ 'alternate': 'Alt', 'data': { 'n': 'int', 'b': 'bool', 'l': ['int'] } }",
        Level.V7_2,
    )
    alt = schema.lookup_type("Alt")
    assert isinstance(alt, AlternateType)
    assert alt.variants.tag_member.type.name == "QType"
    assert [(v.name, v.type.json_kind()) for v in alt.alternatives] == [
        ("n", "number"),
        ("b", "boolean"),
        ("l", "array"),
    ]


def test_command_and_event_arguments() -> None:
    schema = build(
        "{ 'struct': 'Reply', 'data': { 'ok': 'bool' } }\n"
        "{ 'command': 'do-it', 'data': { 'x': 'int' }, 'returns': ['Reply'],"
        " 'allow-preconfig': true, 'features': [ 'deprecated' ] }\n"
        "{ 'command': 'boxed-cmd', 'data': 'Reply', 'boxed': true }\n"
        "{ 'event': 'DONE', 'data': { 'why': 'str' } }\n",
        Level.V7_2,
    )
    cmd = schema.lookup_entity("do-it")
    assert isinstance(cmd, Command)
    assert cmd.arg_type is not None and cmd.arg_type.name == "q_obj_do-it-arg"
    assert cmd.arg_type.is_implicit
    assert isinstance(cmd.ret_type, ArrayType) and cmd.ret_type.name == "ReplyList"
    assert cmd.allow_preconfig and not cmd.allow_oob and cmd.gen
    assert [(f.name, f.is_special) for f in cmd.features] == [("deprecated", True)]
    boxed = schema.lookup_entity("boxed-cmd")
    assert isinstance(boxed, Command) and boxed.boxed
    assert boxed.arg_type is obj(schema, "Reply")
    event = schema.lookup_entity("DONE")
    assert isinstance(event, Event) and not event.boxed
    assert event.arg_type is not None and event.arg_type.name == "q_obj_DONE-arg"
    assert [c.name for c in schema.commands()] == ["do-it", "boxed-cmd"]
    assert [e.name for e in schema.events()] == ["DONE"]


def test_unstable_is_special_from_qemu_6() -> None:
    text = "{ 'command': 'cmd', 'features': [ 'unstable' ] }"
    for level, special in [(Level.V5_2, False), (Level.V7_2, True)]:
        cmd = build(text, level).lookup_entity("cmd")
        assert cmd is not None and cmd.features[0].is_special is special


def test_builtins_and_predefined() -> None:
    schema = build("")
    int_type = schema.lookup_type("int")
    assert isinstance(int_type, BuiltinType) and int_type.json_type == "int"
    assert int_type.is_builtin and int_type.module is not None
    assert int_type.module.is_builtin
    assert isinstance(schema.lookup_type("intList"), ArrayType)
    qtype = schema.lookup_type("QType")
    # QEMU 9.1+ define QType without an explicit prefix
    assert isinstance(qtype, EnumType) and qtype.prefix is None
    old_qtype = build("", Level.V7_2).lookup_type("QType")
    assert isinstance(old_qtype, EnumType) and old_qtype.prefix == "QTYPE"
    assert obj(schema, "q_empty").is_empty()


# ---------------------------------------------------------------- conditions


def test_conditions_evaluate_against_defined_symbols() -> None:
    schema = build(
        "{ 'struct': 'Guarded', 'data': { 'a': 'int',"
        " 'b': { 'type': 'int', 'if': { 'not': 'NO_B' } } },"
        " 'if': { 'all': [ 'CONFIG_A', 'CONFIG_B' ] } }\n"
        "{ 'command': 'cmd', 'data': { 'g': 'Guarded' },"
        " 'if': { 'all': [ 'CONFIG_A', 'CONFIG_B' ] } }\n",
        Level.V7_2,
    )
    guarded = obj(schema, "Guarded")
    assert guarded.ifcond.expr == IfAll((IfName("CONFIG_A"), IfName("CONFIG_B")))
    assert guarded.ifcond.evaluate({"CONFIG_A", "CONFIG_B"})
    assert not guarded.ifcond.evaluate({"CONFIG_A"})
    b = guarded.local_members[1]
    assert b.ifcond.evaluate(set()) and not b.ifcond.evaluate({"NO_B"})
    # the implicit argument type carries its command's condition
    assert obj(schema, "q_obj_cmd-arg").ifcond == guarded.ifcond
    # an array type is as conditional as its element type
    assert build(
        "{ 'enum': 'En', 'data': [], 'if': 'X' }\n"
        "{ 'struct': 'St', 'data': { 'l': ['En'] } }",
        Level.V7_2,
    ).lookup_type(
        "EnList"
    ).ifcond.names() == {  # type: ignore[union-attr]
        "X"
    }


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("{ 'struct': 'Sx', 'data': { 'a': 'Nope' } }", 1, "unknown type 'Nope'"),
        ("{ 'struct': 'Sx', 'data': { 'a': ['Nope'] } }", 1, "unknown type 'Nope'"),
        ("{ 'command': 'c', 'returns': 'Nope' }", 1, "unknown type"),
        ("{ 'struct': 'Sx', 'data': {} }\n{ 'enum': 'Sx', 'data': [] }", 2, "t.json:1"),
        ("{ 'command': 'int' }", 1, "predefined"),
        (
            "{ 'struct': 'Ax', 'base': 'Bx', 'data': {} }\n"
            "{ 'struct': 'Bx', 'base': 'Ax', 'data': {} }",
            1,
            "contains itself",
        ),
        (
            "{ 'struct': 'Bx', 'data': { 'a-b': 'int' } }\n"
            "{ 'struct': 'Sx', 'base': 'Bx', 'data': { 'a_b': 'int' } }",
            2,
            "collides",
        ),
        ("{ 'struct': 'Sx', 'data': {}, 'features': [ 'f', 'f' ] }", 1, "collides"),
        ("{ 'enum': 'En', 'data': [ 'a-b', 'a_b' ] }", 1, "collides"),
        ("{ 'struct': 'Sx', 'data': {}, 'features': [ 'deprecated' ] }", 1, "types"),
        ("{ 'struct': 'Sx', 'base': 'int', 'data': {} }", 1, "struct type"),
        ("{ 'alternate': 'Alt', 'data': { 'a': 'str', 'b': 'int' } }", 1, "apart"),
        ("{ 'alternate': 'Alt', 'data': { 'a': 'any' } }", 1, "'any'"),
        ("{ 'alternate': 'Alt', 'data': { 'a': 'int', 'b': 'number' } }", 1, "apart"),
        ("{ 'command': 'c', 'data': 'int' }", 1, "object type"),
        (
            "{ 'struct': 'Sx', 'data': {} }\n{ 'event': 'EV', 'data': 'Sx',"
            " 'boxed': true }\n{ 'command': 'c', 'returns': 'str' }",
            3,
            "returns",
        ),
    ],
)
def test_schema_errors(text: str, line: int, words: str) -> None:
    # 5.2 naming rules let '-' and '_' spellings meet, for the clash checks
    exc = error(text, Level.V5_2 if "a_b" in text else Level.V7_2)
    assert exc.info is not None and exc.info.line == line, str(exc)
    assert words in str(exc)


UNION_PRELUDE = (
    "{ 'enum': 'Kind', 'data': [ 'a', 'b' ] }\n"
    "{ 'struct': 'Br', 'data': { 'x': 'int' } }\n"
)


@pytest.mark.parametrize(
    ("union", "words"),
    [
        (
            "'base': { 'kind': 'Kind' }, 'discriminator': 'nope', 'data': {}",
            "not a member",
        ),
        (
            "'base': { '*kind': 'Kind' }, 'discriminator': 'kind', 'data': {}",
            "optional",
        ),
        ("'base': { 'kind': 'str' }, 'discriminator': 'kind', 'data': {}", "enum type"),
        (
            "'base': { 'kind': { 'type': 'Kind', 'if': 'X' } },"
            " 'discriminator': 'kind', 'data': {}",
            "conditional",
        ),
        (
            "'base': { 'kind': 'Kind' }, 'discriminator': 'kind',"
            " 'data': { 'z': 'Br' }",
            "not a value",
        ),
        (
            "'base': { 'kind': 'Kind', 'x': 'int' }, 'discriminator': 'kind',"
            " 'data': { 'a': 'Br' }",
            "collides",
        ),
        (
            "'base': { 'kind': 'Kind' }, 'discriminator': 'kind',"
            " 'data': { 'a': 'int' }",
            "struct type",
        ),
    ],
)
def test_union_errors(union: str, words: str) -> None:
    exc = error(UNION_PRELUDE + "{ 'union': 'Union', " + union + " }", Level.V7_2)
    assert exc.info is not None and exc.info.line == 3, str(exc)
    assert words in exc.message


def test_return_type_rule_is_a_warning_only_when_permissive() -> None:
    text = "{ 'command': 'get-int', 'returns': 'int' }"
    error(text, Level.V7_2)
    schema = build(text)
    assert any("returns" in w.message for w in schema.warnings)
    excepted = "{ 'pragma': { 'command-returns-exceptions': [ 'get-int' ] } }\n" + text
    assert build(excepted, Level.V7_2).warnings == []


def test_conditional_unboxed_arguments_rejected_from_qemu_8() -> None:
    text = "{ 'command': 'cmd', 'data': { 'a': { 'type': 'int', 'if': 'X' } } }"
    build(text, Level.V7_2)
    assert "boxed" in error(text, Level.V10_0).message


# ---------------------------------------------------------------- visitor and dumps


class _Recorder(SchemaVisitor):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def visit_module(self, module: Module) -> None:
        self.seen.append(f"module {module.name}")

    def visit_include(self, include: Include) -> None:
        self.seen.append(f"include {include.name}")

    def visit_needed(self, entity: object) -> bool:
        return not isinstance(entity, BuiltinType)

    def visit_enum_type(self, typ: EnumType) -> None:
        self.seen.append(f"enum {typ.name}")

    def visit_array_type(self, typ: ArrayType) -> None:
        if not typ.is_builtin:
            self.seen.append(f"array {typ.name}")

    def visit_object_type(self, typ: ObjectType) -> None:
        self.seen.append(f"object {typ.name}")

    def visit_alternate_type(self, typ: AlternateType) -> None:
        self.seen.append(f"alternate {typ.name}")

    def visit_command(self, command: Command) -> None:
        self.seen.append(f"command {command.name}")

    def visit_event(self, event: Event) -> None:
        self.seen.append(f"event {event.name}")


def test_visitor_walks_modules_in_order(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "sub.json").write_text(
        "{ 'enum': 'Colour', 'data': [ 'red' ] }\n"
    )
    (tmp_path / "main.json").write_text(
        "{ 'struct': 'Paint', 'data': { 'colours': ['Colour'] } }\n"
        "{ 'include': 'inc/sub.json' }\n"
        "{ 'command': 'paint', 'data': { 'p': 'Paint' } }\n"
        "{ 'event': 'PAINTED' }\n"
        "{ 'alternate': 'Either', 'data': { 'c': 'Colour', 'p': 'Paint' } }\n"
    )
    schema = load_schema(str(tmp_path / "main.json"), Level.V7_2)
    recorder = _Recorder()
    schema.visit(recorder)
    assert recorder.seen == [
        "module ./builtin",
        "object q_empty",
        "enum QType",
        "module main.json",
        "object Paint",
        "include inc/sub.json",
        "object q_obj_paint-arg",
        "command paint",
        "event PAINTED",
        "alternate Either",
        "module inc/sub.json",
        # an array type lives in its element type's module
        "array ColourList",
        "enum Colour",
    ]


def test_qemu_test_dump_prints_by_level() -> None:
    text = "{ 'struct': 'Sx', 'data': {}, 'if': 'defined(CONFIG_X)' }"
    legacy = dump_qemu_test(build(text, Level.V5_2), Level.V5_2)
    assert legacy.startswith("module None\n")
    assert "    if ['defined(CONFIG_X)']\n" in legacy
    modern = dump_qemu_test(build(text), Level.PERMISSIVE)
    assert modern.startswith("module ./builtin\n")
    assert "    if defined(CONFIG_X)\n" in modern


def test_json_dump_is_stable_and_complete() -> None:
    schema = build(
        "{ 'enum': 'En', 'data': [ 'a' ], 'if': { 'not': 'X' } }\n"
        "{ 'command': 'cmd', 'data': { 'e': 'En' }, 'returns': 'Rx' }\n"
        "{ 'struct': 'Rx', 'data': { '*l': ['En'] }, 'features': [ 'f' ] }\n",
        Level.V7_2,
    )
    text = dump_json(schema)
    assert text == dump_json(schema)
    data = json.loads(text)
    assert data["version"] == 1 and data["level"] == "7.2"
    module = data["modules"][1]
    assert module["name"] == "t.json"
    by_name = {e["name"]: e for e in module["entities"]}
    assert by_name["En"]["if"] == {"not": "X"}
    assert by_name["cmd"]["arg-type"] == "q_obj_cmd-arg"
    assert by_name["cmd"]["ret-type"] == "Rx"
    assert by_name["Rx"]["members"] == [
        {"name": "l", "type": "EnList", "optional": True, "if": None, "features": []}
    ]
    assert by_name["Rx"]["features"] == [{"name": "f", "if": None}]
    assert by_name["EnList"]["element-type"] == "En"


def test_doc_sections_are_labelled_by_release() -> None:
    text = (
        "##\n# @cmd:\n#\n# Do it.\n#\n# @arg: the argument\n#\n"
        "# Returns: nothing much\n#\n# TODO: frobnicate\n#\n# Since: 1.0\n##\n"
        "{ 'command': 'cmd', 'data': { 'arg': 'int' }, 'returns': 'Reply' }\n"
        "{ 'struct': 'Reply', 'data': {} }\n"
    )
    old = dump_qemu_test(build(text, Level.V7_2), Level.V7_2)
    assert "doc symbol=cmd\n" in old
    assert "    arg=arg\nthe argument\n" in old
    assert "    section=Returns\nnothing much\n    section=TODO\nfrobnicate\n" in old
    # QEMU 9.1+ print the section kind in title case
    new = dump_qemu_test(build(text, Level.V10_0), Level.V10_0)
    assert "    section=Returns\nnothing much\n    section=Todo\nfrobnicate\n" in new


NESTED_UNION = (
    "{ 'enum': 'Outer', 'data': [ 'a', 'b' ] }\n"
    "{ 'enum': 'Inner', 'data': [ 'x' ] }\n"
    "{ 'struct': 'Leaf', 'data': { 'leaf': 'int' } }\n"
    "{ 'union': 'InnerUnion', 'base': { 'inner': 'Inner' },"
    " 'discriminator': 'inner', 'data': { 'x': 'Leaf' } }\n"
    "{ 'union': 'OuterUnion', 'base': { 'outer': 'Outer' },"
    " 'discriminator': 'outer', 'data': { 'a': 'InnerUnion' } }\n"
)


def test_union_branches_may_be_unions_from_qemu_8_1() -> None:
    schema = build(NESTED_UNION, Level.V10_0)
    outer = obj(schema, "OuterUnion")
    assert [v.type.name for v in outer.branches] == ["InnerUnion", "q_empty"]
    exc = error(NESTED_UNION, Level.V7_2)
    assert exc.info is not None and exc.info.line == 5


def test_nested_union_members_clash_with_the_outer_base() -> None:
    clash = NESTED_UNION.replace("'leaf': 'int'", "'outer': 'int'")
    assert "collides" in error(clash, Level.V10_0).message


def test_at_most_64_feature_names_from_qemu_10() -> None:
    lines = [
        f"{{ 'struct': 'Struct{i}', 'data': {{}}, 'features': [ 'feat-{i}' ] }}"
        for i in range(63)
    ]
    build("\n".join(lines[:62]), Level.V10_0)  # 2 special + 62 = 64: fine
    schema = build("\n".join(lines), Level.V7_2)
    assert len(schema.feature_names) == 65
    exc = error("\n".join(lines), Level.V10_0)
    assert exc.info is not None and exc.info.line == 63
