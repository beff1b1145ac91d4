"""The VM's schema states QEMU 7.2's migration parameters and capabilities, and the
commands QEMU 7.0 removed as QEMU 5.2 had them: checked here against QEMU's own
schemas (``../shared/qemu/{5.2,7.2}``, skipped when absent), entity by entity.

The VM leaves out what it does not have: QEMU 7.2's block-bitmap-mapping parameter and
the capabilities after validate-uuid (background-snapshot, zero-copy-send,
postcopy-preempt). Its MigrationParameters members are not optional: it always reports
all of them.
"""

from __future__ import annotations

import dataclasses
import functools

from qapigen.frontend import load_schema
from qapigen.schema import Command, EnumType, ObjectMember, ObjectType, Schema
from qapigen_testing.paths import REPO, shared_path
from qapigen_vm.params import CAPABILITY_NAMES
from qapigen_vm_qmp.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationParameters,
)

NOT_IN_THE_VM = "block-bitmap-mapping"
LAST_VM_CAPABILITY = "validate-uuid"


@functools.cache
def vm_schema() -> Schema:
    return load_schema(str(REPO / "schema" / "qapigen-vm.json"))


@functools.cache
def qemu_schema(release: str) -> Schema:
    return load_schema(str(shared_path("qemu", release, "qapi", "qapi-schema.json")))


def _object(schema: Schema, name: str) -> ObjectType:
    entity = schema.lookup_type(name)
    assert isinstance(entity, ObjectType), name
    return entity


def _enum(schema: Schema, name: str) -> EnumType:
    entity = schema.lookup_type(name)
    assert isinstance(entity, EnumType), name
    return entity


def _command(schema: Schema, name: str) -> Command:
    entity = schema.lookup_entity(name)
    assert isinstance(entity, Command), name
    return entity


def _facts(member: ObjectMember) -> tuple[str, str, tuple[str, ...]]:
    """A member's name, type and features (optional or not aside)."""
    return (member.name, member.type_name, tuple(f.name for f in member.features))


def _parameter_members(schema: Schema, name: str) -> list[ObjectMember]:
    return [m for m in _object(schema, name).members if m.name != NOT_IN_THE_VM]


def test_set_parameters_are_qemu_72s_types_and_order() -> None:
    ours = _parameter_members(vm_schema(), "MigrateSetParameters")
    theirs = _parameter_members(qemu_schema("7.2"), "MigrateSetParameters")
    assert [_facts(m) for m in ours] == [_facts(m) for m in theirs]
    assert all(m.optional for m in ours)


def test_query_parameters_are_qemu_72s_all_reported() -> None:
    ours = _parameter_members(vm_schema(), "MigrationParameters")
    theirs = _parameter_members(qemu_schema("7.2"), "MigrationParameters")
    assert [_facts(m) for m in ours] == [_facts(m) for m in theirs]
    assert not any(m.optional for m in ours)


def test_capabilities_are_qemu_72s_up_to_validate_uuid() -> None:
    def facts(enum: EnumType) -> list[tuple[str, tuple[str, ...]]]:
        return [(v.name, tuple(f.name for f in v.features)) for v in enum.members]

    ours = facts(_enum(vm_schema(), "MigrationCapability"))
    theirs = facts(_enum(qemu_schema("7.2"), "MigrationCapability"))
    last = [name for name, _ in theirs].index(LAST_VM_CAPABILITY)
    assert ours == theirs[: last + 1]


def test_multifd_compression_is_qemu_72s() -> None:
    def facts(schema: Schema) -> list[tuple[str, str]]:
        enum = _enum(schema, "MultiFDCompression")
        return [(v.name, str(v.ifcond)) for v in enum.members]

    assert facts(vm_schema()) == facts(qemu_schema("7.2"))


def test_removed_commands_are_qemu_52s() -> None:
    for name in (
        "migrate_set_downtime",
        "migrate_set_speed",
        "migrate-set-cache-size",
        "query-migrate-cache-size",
    ):
        ours, theirs = _command(vm_schema(), name), _command(qemu_schema("5.2"), name)
        assert qemu_schema("7.2").lookup_entity(name) is None
        assert [f.name for f in ours.features] == ["deprecated"]
        assert [f.name for f in theirs.features] == ["deprecated"]
        assert _arguments(ours) == _arguments(theirs)
        assert ours.ret_type_name == theirs.ret_type_name


def _arguments(command: Command) -> list[tuple[str, str, tuple[str, ...]]]:
    arguments = command.arg_type
    return [] if arguments is None else [_facts(m) for m in arguments.members]


def test_generated_types_follow_the_schema() -> None:
    """The package is generated from this schema: the VM's tables come from it."""
    in_schema = _enum(vm_schema(), "MigrationCapability").members
    assert tuple(v.name for v in in_schema) == CAPABILITY_NAMES
    assert tuple(c.value for c in MigrationCapability) == CAPABILITY_NAMES
    wire = [
        m.name.replace("-", "_")
        for m in _object(vm_schema(), "MigrationParameters").members
    ]
    fields = [f.name for f in dataclasses.fields(MigrationParameters)]
    assert fields == [*wire, "extra"]
    # every member a request sets is one the VM reports, under the same name
    set_fields = [f.name for f in dataclasses.fields(MigrateSetParameters)]
    assert set_fields == fields
