"""QAPI names become valid, readable Python names; clashes are located errors."""

from __future__ import annotations

import keyword
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen import naming
from qapigen.backends import modules
from qapigen.frontend import load_schema, schema_from_parsed
from qapigen.generate import generate_package
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.schema import EnumType, ObjectType
from qapigen.source import QAPIError, SourceInfo
from qapigen_testing.paths import shared_path


@pytest.mark.parametrize(
    ("qapi", "python"),
    [
        ("max-bandwidth", "max_bandwidth"),
        ("if", "if_"),
        ("in", "in_"),
        ("type", "type_"),
        ("str", "str_"),
        ("extra", "extra_"),
        ("x-checkpoint-delay", "x_checkpoint_delay"),
        ("__org.qemu_x-member", "org_qemu_x_member"),
        ("1st", "_1st"),
        ("a.b", "a_b"),
    ],
)
def test_attribute_names(qapi: str, python: str) -> None:
    assert naming.attribute_name(qapi) == python
    assert python.isidentifier() and not keyword.iskeyword(python)


@pytest.mark.parametrize(
    ("qapi", "python"),
    [
        ("postcopy-active", "POSTCOPY_ACTIVE"),
        ("none", "NONE"),
        ("1", "_1"),
        ("__org.qemu_x-value", "ORG_QEMU_X_VALUE"),
    ],
)
def test_enum_member_names(qapi: str, python: str) -> None:
    assert naming.enum_member_name(qapi) == python


@pytest.mark.parametrize(
    ("qapi", "python"),
    [
        ("MigrationInfo", "MigrationInfo"),
        ("__org.qemu_x-Struct", "Org_qemu_x_Struct"),
        ("q_obj_migrate-arg", "Q_obj_migrate_arg"),
    ],
)
def test_class_names(qapi: str, python: str) -> None:
    assert naming.class_name(qapi) == python


def test_event_and_function_names() -> None:
    assert naming.event_class_name("MIGRATION_PASS") == "MigrationPassEvent"
    assert naming.event_class_name("__0day.org_FOO") == "Q0dayOrgFooEvent"
    assert naming.snake_case("MigrationInfo") == "migration_info"
    assert naming.snake_case("COLOStatus") == "colo_status"


def test_scope_is_reversible_and_refuses_clashes() -> None:
    scope = naming.NameScope("struct 'Foo'")
    info = SourceInfo("foo.json", 3, 5)
    assert scope.add("foo-bar", naming.attribute_name("foo-bar"), info) == "foo_bar"
    assert scope.qapi("foo_bar") == "foo-bar"
    assert scope.python("foo-bar") == "foo_bar"
    with pytest.raises(QAPIError) as raised:
        scope.add("foo_bar", naming.attribute_name("foo_bar"), info)
    assert str(raised.value) == (
        "foo.json:3:5: 'foo_bar' and 'foo-bar' both become the Python name "
        "'foo_bar' in struct 'Foo'"
    )


def _all_names(fname: Path) -> None:
    schema = load_schema(str(fname))
    for entity in schema.entities:
        if isinstance(entity, EnumType):
            scope = naming.NameScope(entity.name)
            for value in entity.members:
                python = naming.enum_member_name(value.name)
                assert python.isidentifier()
                scope.add(value.name, python, entity.info)
        elif isinstance(entity, ObjectType):
            scope = naming.NameScope(entity.name)
            for member in entity.members:
                python = naming.attribute_name(member.name)
                assert python.isidentifier() and not keyword.iskeyword(python)
                scope.add(member.name, python, entity.info)


@pytest.mark.parametrize("release", ["5.2", "7.2"])
def test_qemu_schemas_map_without_clashes(release: str) -> None:
    _all_names(shared_path("qemu", release, "qapi", "qapi-schema.json"))


@pytest.mark.parametrize(
    ("qapi", "python"),
    [
        ("timestamp", "timestamp_"),  # the event class's own attribute holds the stamp
        ("status", "status"),
        ("NAME", "NAME_"),
        ("if", "if_"),
        ("time-stamp", "time_stamp"),
    ],
)
def test_event_member_names(qapi: str, python: str) -> None:
    assert naming.event_member_name(qapi) == python
    # outside event classes, the name is free
    assert naming.attribute_name("timestamp") == "timestamp"


def test_event_members_renamed_onto_each_other_are_a_located_error() -> None:
    text = "{ 'event': 'TICK', 'data': { 'timestamp': 'int', 'timestamp_': 'int' } }\n"
    parsed = parse_text(text, "tick.json", Level.PERMISSIVE)
    schema = schema_from_parsed(parsed, "tick.json", Level.PERMISSIVE)
    with pytest.raises(QAPIError) as raised:
        generate_package(schema, "tick", "tick.json")
    assert str(raised.value) == (
        "tick.json: In event 'TICK':\n"
        "tick.json:1: 'timestamp_' and 'timestamp' both become the Python name "
        "'timestamp_' in the data of event 'TICK'"
    )


# Any name the front end accepts (expr.py's rule): definitions, members, branches...
front_end_names = st.from_regex(
    r"(__[a-zA-Z0-9.-]+_)?([xX]-)?[a-zA-Z][a-zA-Z0-9_-]*", fullmatch=True
)
# ...and enum values (so union branches), which may also start with a digit (QKeyCode's
# '1').
digit_first = st.from_regex(r"[0-9][a-zA-Z0-9_-]*", fullmatch=True)
enum_values = st.one_of(front_end_names, digit_first)


@settings(max_examples=400, deadline=None)
@given(front_end_names, enum_values)
def test_every_name_is_an_identifier_python_accepts(name: str, value: str) -> None:
    """generate relies on this instead of compiling what it writes (generate.py): a
    name never makes code that does not compile."""
    spelled = [
        naming.attribute_name(name),
        naming.event_member_name(name),
        naming.class_name(name),
        naming.event_class_name(name),
        "decode_" + naming.snake_case(name),  # how backends derive function names
        naming.enum_member_name(value),
        naming.branch_class_name(name, value),
    ]
    for python in spelled:
        assert python.isidentifier(), (name, value, python)
        assert not keyword.iskeyword(python), (name, value, python)
        assert python != "__debug__", (name, value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_every_schema_file_gives_a_module_name_python_accepts(file_name: str) -> None:
    """A schema file (any name an include may give) becomes a module of the package
    that other modules import by name (`from .block_core import ...`)."""
    python = modules._python_module_name(f"qapi/{file_name}.json")
    assert python.isidentifier() and python.isascii(), (file_name, python)
    assert not keyword.iskeyword(python), (file_name, python)
    assert python not in ("types", "events", "__init__"), (file_name, python)
