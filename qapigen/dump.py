"""IR dumps: QEMU's test-harness text (`--format qemu-test`) and stable JSON.

qemu-test
    Exactly what QEMU's `tests/qapi-schema/test-qapi.py` prints for a valid schema,
    so the IR can be compared line by line with the `.out` files of QEMU's corpus:
    modules in order, each with its entities (built-in types and built-in arrays are
    not printed), then every doc comment. QEMU 5.2 prints the built-in module as
    `None` and conditions as lists; 7.2 and later print `./builtin` and conditions as
    written. PERMISSIVE and 10.0 use the newest form, which also labels doc sections
    by kind ("section=Plain", "section=Returns") where 5.2/7.2 print the tag.

json
    The IR as JSON, for tools. Stable: keys are fixed and documented here, lists keep
    schema order, the output ends with a newline.

    {"version": 1, "level": "any"|"5.2"|"7.2"|"10.0",
     "modules": [{"name": str, "entities": [ENTITY | {"include": str}]}],
     "docs": [{"symbol": str|null, "body": str, "args": {name: text},
               "features": {name: text}, "sections": [{"name": str|null, "text": str}]}]}

    ENTITY has "meta" ("builtin", "enum", "array", "object", "alternate", "command",
    "event"), "name", "implicit", "module", "if" (null or the condition in modern
    form), "features" ([{"name", "if"}]), "location" ("file:line" or null), plus:
    builtin: "json-type"; enum: "prefix", "values" [{"name", "if", "features"}];
    array: "element-type"; object: "kind" (struct/union/object), "base",
    "members" [MEMBER] (local members), "tag", "branches" [{"name", "type", "if"}];
    alternate: "branches"; command: "arg-type", "ret-type", "boxed", "gen",
    "success-response", "allow-oob", "allow-preconfig", "coroutine";
    event: "arg-type", "boxed".
    MEMBER is {"name", "type", "optional", "if", "features"}.
"""

from __future__ import annotations

import json

from .doc import DocSection
from .ifcond import IfCond
from .level import Level
from .schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    Command,
    Entity,
    EnumType,
    Event,
    Feature,
    Include,
    Module,
    ObjectType,
    Schema,
    SchemaVisitor,
    Variants,
)


class _QemuTestPrinter(SchemaVisitor):
    def __init__(self, legacy: bool) -> None:
        self.legacy = legacy
        self.lines: list[str] = []

    def out(self, text: str) -> None:
        self.lines.append(text)

    def print_if(self, ifcond: IfCond, indent: int = 4) -> None:
        if ifcond.is_present():
            self.out(f"{' ' * indent}if {ifcond.dump_text()}")

    def print_features(self, features: list[Feature], indent: int = 4) -> None:
        for feature in features:
            self.out(f"{' ' * indent}feature {feature.name}")
            self.print_if(feature.ifcond, indent + 4)

    def print_variants(self, variants: Variants) -> None:
        self.out(f"    tag {variants.tag_member.name}")
        for variant in variants.variants:
            self.out(f"    case {variant.name}: {variant.type.name}")
            self.print_if(variant.ifcond, 8)

    def visit_module(self, module: Module) -> None:
        name = "None" if module.is_builtin and self.legacy else module.name
        self.out(f"module {name}")

    def visit_include(self, include: Include) -> None:
        self.out(f"include {include.name}")

    def visit_needed(self, entity: Entity) -> bool:
        # QEMU's harness does not print built-in types nor their arrays
        return not isinstance(entity, BuiltinType) and not (
            isinstance(entity, ArrayType) and entity.info is None
        )

    def visit_enum_type(self, typ: EnumType) -> None:
        self.out(f"enum {typ.name}")
        if typ.prefix:
            self.out(f"    prefix {typ.prefix}")
        for member in typ.members:
            self.out(f"    member {member.name}")
            self.print_if(member.ifcond, 8)
            self.print_features(member.features, 8)
        self.print_if(typ.ifcond)
        self.print_features(typ.features)

    def visit_array_type(self, typ: ArrayType) -> None:
        self.out(f"array {typ.name} {typ.element_type.name}")
        self.print_if(typ.ifcond)

    def visit_object_type(self, typ: ObjectType) -> None:
        self.out(f"object {typ.name}")
        if typ.base is not None:
            self.out(f"    base {typ.base.name}")
        for member in typ.local_members:
            self.out(
                f"    member {member.name}: {member.type.name}"
                f" optional={member.optional}"
            )
            self.print_if(member.ifcond, 8)
            self.print_features(member.features, 8)
        if typ.variants is not None:
            self.print_variants(typ.variants)
        self.print_if(typ.ifcond)
        self.print_features(typ.features)

    def visit_alternate_type(self, typ: AlternateType) -> None:
        self.out(f"alternate {typ.name}")
        self.print_variants(typ.variants)
        self.print_if(typ.ifcond)
        self.print_features(typ.features)

    def visit_command(self, command: Command) -> None:
        arg = command.arg_type.name if command.arg_type else None
        ret = command.ret_type.name if command.ret_type else None
        self.out(f"command {command.name} {arg} -> {ret}")
        coroutine = " coroutine=True" if command.coroutine else ""
        self.out(
            f"    gen={command.gen} success_response={command.success_response}"
            f" boxed={command.boxed} oob={command.allow_oob}"
            f" preconfig={command.allow_preconfig}{coroutine}"
        )
        self.print_if(command.ifcond)
        self.print_features(command.features)

    def visit_event(self, event: Event) -> None:
        arg = event.arg_type.name if event.arg_type else None
        self.out(f"event {event.name} {arg}")
        self.out(f"    boxed={event.boxed}")
        self.print_if(event.ifcond)
        self.print_features(event.features)


def dump_qemu_test(schema: Schema, level: Level | None = None) -> str:
    """The text QEMU's schema test harness prints for `schema`."""
    level = schema.level if level is None else level
    printer = _QemuTestPrinter(legacy=level is Level.V5_2)
    schema.visit(printer)
    out = printer.out
    for doc in schema.docs:
        out(f"doc symbol={doc.symbol}" if doc.symbol else "doc freeform")
        out(f"    body=\n{doc.body.text}")
        for name, section in doc.args.items():
            out(f"    arg={name}\n{section.text}")
        for name, section in doc.features.items():
            out(f"    feature={name}\n{section.text}")
        for section in doc.sections:
            out(f"    section={_section_label(section, level)}\n{section.text}")
    return "".join(line + "\n" for line in printer.lines)


def _section_label(section: DocSection, level: Level) -> str:
    """5.2 and 7.2 print the tag (None for an untagged section); QEMU 9.1+ print
    the section kind in title case ("Plain", "Returns", "Todo")."""
    if level in (Level.V5_2, Level.V7_2):
        return str(section.name)
    if section.kind == "tagged" and section.name is not None:
        return section.name.title()
    return "Plain"


# ---------------------------------------------------------------- JSON


def _if(ifcond: IfCond) -> object:
    return ifcond.to_json()


def _features(features: list[Feature]) -> list[dict[str, object]]:
    return [{"name": f.name, "if": _if(f.ifcond)} for f in features]


def _variants(variants: Variants) -> list[dict[str, object]]:
    return [
        {"name": v.name, "type": v.type.name, "if": _if(v.ifcond)}
        for v in variants.variants
    ]


def entity_to_json(entity: Entity) -> dict[str, object]:
    data: dict[str, object] = {
        "meta": entity.meta,
        "name": entity.name,
        "implicit": entity.is_implicit,
        "module": entity.module.name if entity.module else None,
        "if": _if(entity.ifcond),
        "features": _features(entity.features),
        "location": entity.info.location() if entity.info else None,
    }
    if isinstance(entity, BuiltinType):
        data["meta"] = "builtin"
        data["json-type"] = entity.json_type
    elif isinstance(entity, EnumType):
        data["prefix"] = entity.prefix
        data["values"] = [
            {"name": m.name, "if": _if(m.ifcond), "features": _features(m.features)}
            for m in entity.members
        ]
    elif isinstance(entity, ArrayType):
        data["element-type"] = entity.element_type.name
    elif isinstance(entity, ObjectType):
        data["kind"] = entity.kind
        data["base"] = entity.base.name if entity.base else None
        data["members"] = [
            {
                "name": m.name,
                "type": m.type.name,
                "optional": m.optional,
                "if": _if(m.ifcond),
                "features": _features(m.features),
            }
            for m in entity.local_members
        ]
        variants = entity.variants
        data["tag"] = variants.tag_member.name if variants else None
        data["branches"] = _variants(variants) if variants else []
    elif isinstance(entity, AlternateType):
        data["branches"] = _variants(entity.variants)
    elif isinstance(entity, Command):
        data["arg-type"] = entity.arg_type.name if entity.arg_type else None
        data["ret-type"] = entity.ret_type.name if entity.ret_type else None
        data["boxed"] = entity.boxed
        data["gen"] = entity.gen
        data["success-response"] = entity.success_response
        data["allow-oob"] = entity.allow_oob
        data["allow-preconfig"] = entity.allow_preconfig
        data["coroutine"] = entity.coroutine
    elif isinstance(entity, Event):
        data["arg-type"] = entity.arg_type.name if entity.arg_type else None
        data["boxed"] = entity.boxed
    return data


def schema_to_json(schema: Schema) -> dict[str, object]:
    modules: list[dict[str, object]] = []
    for module in schema.modules:
        entities: list[dict[str, object]] = []
        for entity in module.entities:
            if isinstance(entity, Include):
                entities.append({"include": entity.name})
            else:
                entities.append(entity_to_json(entity))
        modules.append({"name": module.name, "entities": entities})
    docs = [
        {
            "symbol": doc.symbol,
            "body": doc.body.text,
            "args": {name: s.text for name, s in doc.args.items()},
            "features": {name: s.text for name, s in doc.features.items()},
            "sections": [{"name": s.name, "text": s.text} for s in doc.sections],
        }
        for doc in schema.docs
    ]
    return {
        "version": 1,
        "level": schema.level.value,
        "modules": modules,
        "docs": docs,
    }


def dump_json(schema: Schema) -> str:
    return json.dumps(schema_to_json(schema), indent=2) + "\n"
