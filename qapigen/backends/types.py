"""The `types` module: enums, structs, unions and alternates, each with its codec."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import naming
from ..render import header, render
from ..schema import AlternateType, EnumType, ObjectMember, ObjectType, Schema
from .common import (
    RUNTIME,
    Imports,
    Reference,
    TypeMapper,
    TypeNames,
    is_deprecated,
    is_generated_object,
    members_of,
    special_features,
)
from .docs import annotate, doc_text
from .literals import json_node, keyed, nested_dict_literal
from .modules import ModulePlan
from .view import (
    Alternate,
    Alternative,
    Branch,
    Dispatch,
    Enum,
    EnumValue,
    FacadeExports,
    Member,
    Module,
    Struct,
    Union,
)


def enum_view(typ: EnumType, names: TypeNames) -> Enum:
    scope = naming.NameScope(f"enum '{typ.name}'")
    values = []
    for value in typ.members:
        attr = scope.add(value.name, naming.enum_member_name(value.name), typ.info)
        values.append(
            EnumValue(
                value.name,
                attr,
                cond_json=value.ifcond.to_json(),
                deprecated=is_deprecated(value.features),
                special=special_features(value.features),
            )
        )
    doc = doc_text(
        typ.doc,
        members_heading="Values",
        members=[
            (
                v.attr,
                annotate(
                    _doc_of(typ, v.wire),
                    deprecated=v.deprecated,
                    condition=v.cond_json,
                ),
            )
            for v in values
        ],
        condition=typ.ifcond.to_json(),
        fallback=f"QAPI enum {typ.name}.",
    )
    return Enum(
        names.classes[typ.name],
        typ.name,
        values,
        doc,
        names.enum_tables[typ.name],
        names.deprecated_values.get(typ.name),
    )


def _doc_of(typ: EnumType | ObjectType | AlternateType, name: str) -> str:
    if typ.doc is None:
        return ""
    section = typ.doc.args.get(name)
    return section.text.strip() if section is not None else ""


def struct_view(typ: ObjectType, names: TypeNames, mapper: TypeMapper) -> Struct:
    cls = names.classes[typ.name]
    members = members_of(mapper, typ.members, typ.doc, f"struct '{typ.name}'")
    for member in members:
        mapper.import_deprecated_values(member.type)
    return Struct(cls, typ.name, members, _struct_doc(typ, members))


def _struct_doc(typ: ObjectType, members: list[Member]) -> str:
    return doc_text(
        typ.doc,
        members=[(m.attr, m.doc) for m in members],
        condition=typ.ifcond.to_json(),
        fallback=f"QAPI {typ.kind} {typ.name}.",
    )


def union_views(
    typ: ObjectType, names: TypeNames, mapper: TypeMapper
) -> tuple[list[Struct], Union]:
    """One class per leaf branch (base members, the tags fixed, the branch's members),
    and the union itself."""
    classes: list[Struct] = []
    dispatch = _dispatch(typ, typ, (), [], {}, names, mapper, classes, ({}, None))
    union = Union(
        names.classes[typ.name],
        typ.name,
        dispatch,
        names.decoders[typ.name],
        _struct_doc(typ, []),
    )
    return classes, union


def _dispatch(
    union: ObjectType,
    level: ObjectType,
    path: tuple[str, ...],
    outer_members: list[ObjectMember],
    outer_tags: dict[str, tuple[str, bool]],
    names: TypeNames,
    mapper: TypeMapper,
    classes: list[Struct],
    conditions: tuple[dict[str, object], object],
) -> Dispatch:
    """The dispatch on `level`'s tag, adding a class to `classes` for each leaf.

    `level` is `union` itself or, for a branch whose type is a union, that inner
    union: QEMU puts the inner union's members (its tag included) into the same JSON
    object as the outer ones, so a leaf class carries every member on the way down
    (`outer_members`) and every tag value that selects it (`outer_tags`: tag member
    -> (enum member, whether that value is deprecated)).

    `conditions` holds the `if` conditions of the branches on the way down: by
    member, of each member a conditional branch brings, and the one every branch
    below this level is under. A build without a branch's condition sends its tag
    value with the outer members only, so the members of a conditional branch are
    conditional members of the leaf class (absent is None, see `Member.omissible`).
    """
    member_conds, level_cond = conditions
    assert level.variants is not None
    tag = level.variants.tag_member
    tag_type = mapper.use(tag.type)
    tag_enum = tag.type
    assert isinstance(tag_enum, EnumType)
    values = {
        value.name: (naming.enum_member_name(value.name), is_deprecated(value.features))
        for value in tag_enum.members
    }
    common = outer_members + level.members
    branches: list[Branch] = []
    for variant in level.branches:
        attr, deprecated = values[variant.name]
        fixed = f"{tag_type.annotation}.{attr}"
        tags = {**outer_tags, tag.name: (fixed, deprecated)}
        vtype = variant.type
        assert isinstance(vtype, ObjectType)
        branch_cond = _conjoin(level_cond, variant.ifcond.to_json())
        if branch_cond is None:
            inner_conds = member_conds
        else:
            inner = {m.name: branch_cond for m in vtype.members}
            inner_conds = {**member_conds, **inner}
        if vtype.variants is not None:
            nested = _dispatch(
                union,
                vtype,
                (*path, variant.name),
                common,
                tags,
                names,
                mapper,
                classes,
                (inner_conds, branch_cond),
            )
            branches.append(Branch(variant.name, fixed, None, nested))
            continue
        steps = (*path, variant.name)
        cls = names.branch_classes[(union.name, *steps)]
        where = f"union '{union.name}' branch '{'/'.join(steps)}'"
        members = members_of(mapper, common + vtype.members, union.doc, where)
        for member in members:
            mapper.import_deprecated_values(member.type)
            if member.wire in inner_conds:
                member.cond_json = _conjoin(inner_conds[member.wire], member.cond_json)
            if member.wire in tags:
                member.fixed_tag, tag_deprecated = tags[member.wire]
                if not tag_deprecated:
                    # building this branch sends its tag value: check only a
                    # deprecated one
                    member.type.deprecated_tables = ()
                    member.type.deprecated_refs = ()
        fallback = (
            f"Branch '{'/'.join(steps)}' of union {union.name}."
            if path
            else f"Branch '{variant.name}' of union {union.name}."
        )
        if any(tag_deprecated for _, tag_deprecated in tags.values()):
            fallback += " Its tag value is deprecated: building it warns."
        doc = doc_text(
            None,
            members=[(m.attr, m.doc) for m in members],
            fallback=fallback,
        )
        qapi_name = ".".join((union.name, *steps))
        classes.append(Struct(cls, qapi_name, members, doc))
        branches.append(Branch(variant.name, fixed, cls))
    return Dispatch(tag.name, tag_type, branches)


def _conjoin(first: object, second: object) -> object:
    """Both conditions (JSON form; None is unconditional)."""
    if first is None:
        return second
    if second is None:
        return first
    return {"all": [first, second]}


def alternate_view(
    typ: AlternateType, names: TypeNames, mapper: TypeMapper
) -> Alternate:
    alternatives = [Alternative(mapper.use(alt.type)) for alt in typ.alternatives]
    doc = doc_text(
        typ.doc,
        members_heading="Alternatives",
        members=[(alt.name, _doc_of(typ, alt.name)) for alt in typ.alternatives],
        condition=typ.ifcond.to_json(),
        fallback=f"QAPI alternate {typ.name}.",
    )
    return Alternate(
        names.classes[typ.name],
        typ.name,
        alternatives,
        names.decoders[typ.name],
        names.encoders[typ.name],
        doc,
    )


@dataclass
class _TypesFile:
    """What one module of the types package holds, with the imports its code uses."""

    name: str
    imports: Imports
    enums: list[Enum] = field(default_factory=list)
    structs: list[Struct] = field(default_factory=list)
    unions: list[Union] = field(default_factory=list)
    alternates: list[Alternate] = field(default_factory=list)

    def imported_modules(self) -> set[str]:
        """The other modules of the package this one imports from."""
        return {
            module[1:] for module in self.imports.from_modules() if module[:1] == "."
        }


def _collect(schema: Schema, names: TypeNames, plan: ModulePlan) -> list[_TypesFile]:
    files: dict[str, _TypesFile] = {}
    mappers: dict[str, TypeMapper] = {}
    for name in plan.modules():
        files[name] = _TypesFile(name, Imports())
        reference = Reference(plan, files[name].imports, home=name)
        mappers[name] = TypeMapper(names, reference, decodes_members=True)
    for entity in schema.entities:
        if isinstance(entity, EnumType) and not entity.is_builtin:
            target = files[plan.module_of(entity.name)]
            target.enums.append(enum_view(entity, names))
        elif isinstance(entity, ObjectType) and is_generated_object(entity):
            target = files[plan.module_of(entity.name)]
            mapper = mappers[target.name]
            if entity.variants is None:
                target.structs.append(struct_view(entity, names, mapper))
            else:
                branch_classes, union = union_views(entity, names, mapper)
                target.structs.extend(branch_classes)
                target.unions.append(union)
        elif isinstance(entity, AlternateType):
            target = files[plan.module_of(entity.name)]
            mapper = mappers[target.name]
            target.alternates.append(alternate_view(entity, names, mapper))
    return list(files.values())


def _render_module(content: _TypesFile, schema_name: str) -> Module:
    imports = content.imports
    if content.enums:
        imports.module("enum as _enum")
    if any(s.uses_warnings for s in content.structs):
        imports.module("warnings as _warnings")
    if content.structs or content.unions or content.alternates:
        imports.module("typing as _typing")
    if content.structs:
        imports.name(f"{RUNTIME}.bindings.struct", "Struct as _Struct")
    if content.enums or content.structs or content.unions or content.alternates:
        imports.name(RUNTIME, "codec as _c")
    module = Module(
        f"types/{content.name}.py",
        f"Types of {schema_name}'s module {content.name}.\n\n{header(schema_name)}",
        imports.lines(),
    )
    module.body = render(
        "types_module.py.j2",
        module=module,
        enums=content.enums,
        structs=content.structs,
        unions=content.unions,
        alternates=content.alternates,
    )
    return module


def generate_types(
    schema: Schema, names: TypeNames, plan: ModulePlan, schema_name: str
) -> list[Module]:
    """The types package: a module per schema module (cycles between schema modules
    merged, see `ModulePlan`), and the facade `types/__init__.py` naming them all."""
    contents = _collect(schema, names, plan)
    while plan.merge_cycles({c.name: c.imported_modules() for c in contents}):
        contents = _collect(schema, names, plan)
    contents = [c for c in contents if c.enums or c.structs or c.alternates]
    modules = [_render_module(content, schema_name) for content in contents]
    member_conditions = nested_dict_literal(
        "MEMBER_CONDITIONS: dict[str, dict[str, object]]",
        [
            (
                s.name,
                [
                    keyed(m.wire, json_node(m.cond_json))
                    for m in s.members
                    if m.cond_json
                ],
            )
            for c in contents
            for s in c.structs
        ],
    )
    value_conditions = nested_dict_literal(
        "ENUM_VALUE_CONDITIONS: dict[str, dict[str, object]]",
        [
            (
                e.name,
                [
                    keyed(v.wire, json_node(v.cond_json))
                    for v in e.values
                    if v.cond_json
                ],
            )
            for c in contents
            for e in c.enums
        ],
    )
    member_features = nested_dict_literal(
        "MEMBER_FEATURES: dict[str, dict[str, list[str]]]",
        [
            (
                s.name,
                [keyed(m.wire, json_node(m.special)) for m in s.members if m.special],
            )
            for c in contents
            for s in c.structs
        ],
    )
    value_features = nested_dict_literal(
        "ENUM_VALUE_FEATURES: dict[str, dict[str, list[str]]]",
        [
            (
                e.name,
                [keyed(v.wire, json_node(v.special)) for v in e.values if v.special],
            )
            for c in contents
            for e in c.enums
        ],
    )
    facade = Module(
        "types/__init__.py",
        f"Types of the QAPI schema {schema_name}: enums, structs, unions and\n"
        "alternates, each with its codec.\n\n"
        "Every type is importable from here; its code lives in the module named after\n"
        "the schema file that defines it, imported when the type is first used.\n\n"
        + header(schema_name),
        [
            "import typing as _typing",
            "",
            f"from {RUNTIME}.bindings import lazy as _lazy",
        ],
    )
    facade.body = render(
        "facade.py.j2",
        module=facade,
        exports=facade_exports(names.owner, plan),
        extra_tables=[
            (
                member_conditions,
                "The `if` condition of each conditional member, by class (JSON form).",
            ),
            (
                value_conditions,
                "The `if` condition of each conditional enum value, by enum class"
                " (JSON form).",
            ),
            (
                member_features,
                "The features of members that a server's `-compat` policy acts on"
                " ('deprecated',\n'unstable'), by class.",
            ),
            (
                value_features,
                "The features of enum values that a server's `-compat` policy acts on,"
                " by enum\nclass.",
            ),
        ],
    )
    return [facade, *modules]


def facade_exports(owner: dict[str, str], plan: ModulePlan) -> FacadeExports:
    """Each name of a facade with the module defining it (`owner`: name -> entity)."""
    locations = {name: plan.module_of(entity) for name, entity in owner.items()}
    return FacadeExports(locations, plan.modules())
