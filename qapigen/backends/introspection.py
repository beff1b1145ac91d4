"""The `introspection` module: the answer to `query-qmp-schema`.

Entries follow QEMU's SchemaInfo format, with one deliberate difference: type names are
the schema's real names (QEMU masks non-built-in ones as numbers to keep them from
becoming ABI). A server built on the package can then introspect like QEMU, and a
client can diff a live QEMU's answer against what the bindings were built from by
structure. Like QEMU, only what commands and events can reach is listed. Each entry
keeps its `if` condition, and its members' and values', so `schema_info(defined)`
answers as a server with exactly those symbols would.
"""

from __future__ import annotations

import json

from ..layout import Assign, Group, Node
from ..render import header, py_string, render
from ..schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    Command,
    Entity,
    EnumType,
    Event,
    Feature,
    ObjectType,
    Schema,
    Type,
)
from .literals import json_node
from .view import Module

EMPTY = "q_empty"


def _type_name(typ: Type) -> str:
    if isinstance(typ, ArrayType):
        return f"[{_type_name(typ.element_type)}]"
    return typ.name


def _features(features: list[Feature], entry: dict[str, object]) -> None:
    if features:
        entry["features"] = [f.name for f in features]


class _Collector:
    """Walks from commands and events to every type they use."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.used: set[str] = set()

    def use(self, typ: Type | None) -> None:
        if typ is None or typ.name in self.used:
            return
        self.used.add(typ.name)
        if isinstance(typ, ArrayType):
            self.use(typ.element_type)
        elif isinstance(typ, ObjectType):
            for member in typ.members:
                self.use(member.type)
            for branch in typ.branches:
                self.use(branch.type)
        elif isinstance(typ, AlternateType):
            for alternative in typ.alternatives:
                self.use(alternative.type)


def entry_of(entity: Entity) -> tuple[dict[str, object], dict[str, object]]:
    """The SchemaInfo entry and the conditions of its members (name -> condition)."""
    entry: dict[str, object] = {"name": entity.name}
    conditions: dict[str, object] = {}
    if isinstance(entity, Command):
        entry["name"] = entity.name
        entry["meta-type"] = "command"
        entry["arg-type"] = entity.arg_type.name if entity.arg_type else EMPTY
        entry["ret-type"] = _type_name(entity.ret_type) if entity.ret_type else EMPTY
        if entity.allow_oob:
            entry["allow-oob"] = True
    elif isinstance(entity, Event):
        entry["meta-type"] = "event"
        entry["arg-type"] = entity.arg_type.name if entity.arg_type else EMPTY
    elif isinstance(entity, BuiltinType):
        entry["meta-type"] = "builtin"
        entry["json-type"] = entity.json_type
    elif isinstance(entity, EnumType):
        entry["meta-type"] = "enum"
        entry["values"] = entity.member_names()
        members: list[dict[str, object]] = []
        for value in entity.members:
            item: dict[str, object] = {"name": value.name}
            _features(value.features, item)
            members.append(item)
            if value.ifcond:
                conditions[value.name] = value.ifcond.to_json()
        entry["members"] = members
    elif isinstance(entity, ArrayType):
        entry["name"] = _type_name(entity)
        entry["meta-type"] = "array"
        entry["element-type"] = _type_name(entity.element_type)
    elif isinstance(entity, ObjectType):
        entry["meta-type"] = "object"
        object_members: list[dict[str, object]] = []
        for member in entity.members:
            item = {"name": member.name, "type": _type_name(member.type)}
            if member.optional:
                item["default"] = None
            _features(member.features, item)
            object_members.append(item)
            if member.ifcond:
                conditions[member.name] = member.ifcond.to_json()
        entry["members"] = object_members
        if entity.variants is not None:
            entry["tag"] = entity.variants.tag_member.name
            entry["variants"] = [
                {"case": v.name, "type": _type_name(v.type)} for v in entity.branches
            ]
            for v in entity.branches:
                if v.ifcond:
                    conditions[v.name] = v.ifcond.to_json()
    elif isinstance(entity, AlternateType):
        entry["meta-type"] = "alternate"
        entry["members"] = [{"type": _type_name(a.type)} for a in entity.alternatives]
    _features(entity.features, entry)
    return entry, conditions


def generate_introspection(schema: Schema, schema_name: str) -> Module:
    collector = _Collector(schema)
    entities: list[Entity] = []
    for entity in schema.entities:
        if isinstance(entity, Command):
            entities.append(entity)
            collector.use(entity.arg_type)
            collector.use(entity.ret_type)
            collector.use(schema.lookup_type(EMPTY))
        elif isinstance(entity, Event):
            entities.append(entity)
            collector.use(entity.arg_type)
            collector.use(schema.lookup_type(EMPTY))
    entities += [
        e for e in schema.entities if isinstance(e, Type) and e.name in collector.used
    ]
    items: list[Node] = []
    for entity in entities:
        entry, conditions = entry_of(entity)
        text = json.dumps(entry, separators=(", ", ": "), ensure_ascii=False)
        cond = json_node(entity.ifcond.to_json())
        members = json_node(conditions) if conditions else "None"
        items.append(Group("(", [py_string(text), cond, members], ")", literal=True))
    module = Module(
        "introspection.py",
        f"The query-qmp-schema answer for the QAPI schema {schema_name}.\n\n"
        + header(schema_name),
        [
            "from collections.abc import Collection as _Collection",
            "",
            "from qapigen_runtime.bindings import introspection as _introspection",
            "from qapigen_runtime.bindings.policy import CompatPolicy as _CompatPolicy",
        ],
    )
    entries: Node = "_ENTRIES: list[_introspection.Entry] = []"
    if items:
        entries = Assign(
            "_ENTRIES: list[_introspection.Entry]",
            Group("[", items, "]", literal=True, explode=True),
        )
    module.body = render("introspection.py.j2", module=module, entries=entries)
    return module
