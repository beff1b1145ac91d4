"""The `types` module: enums, structs, unions and alternates, each with its codec."""

from __future__ import annotations

from .. import naming
from ..layout import Group, Node
from ..render import header, render
from ..schema import AlternateType, EnumType, ObjectMember, ObjectType, Schema
from .common import (
    Imports,
    TypeMapper,
    TypeNames,
    is_deprecated,
    is_generated_object,
    members_of,
)
from .docs import annotate, doc_text
from .literals import dict_literal, json_node, keyed
from .view import (
    Alternate,
    Alternative,
    Branch,
    Dispatch,
    Enum,
    EnumValue,
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
    dispatch = _dispatch(typ, typ, (), [], {}, names, mapper, classes)
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
) -> Dispatch:
    """The dispatch on `level`'s tag, adding a class to `classes` for each leaf.

    `level` is `union` itself or, for a branch whose type is a union, that inner
    union: QEMU puts the inner union's members (its tag included) into the same JSON
    object as the outer ones, so a leaf class carries every member on the way down
    (`outer_members`) and every tag value that selects it (`outer_tags`: tag member
    -> (enum member, whether that value is deprecated))."""
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
            )
            branches.append(Branch(variant.name, fixed, None, nested))
            continue
        steps = (*path, variant.name)
        cls = names.branch_classes[(union.name, *steps)]
        where = f"union '{union.name}' branch '{'/'.join(steps)}'"
        members = members_of(mapper, common + vtype.members, union.doc, where)
        for member in members:
            if member.wire in tags:
                member.fixed_tag, tag_deprecated = tags[member.wire]
                if not tag_deprecated:
                    # building this branch sends its tag value: check only a
                    # deprecated one
                    member.type.deprecated_tables = ()
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


def generate_types(schema: Schema, names: TypeNames, schema_name: str) -> Module:
    imports = Imports()
    mapper = TypeMapper(names, imports, in_types=True, decodes_members=True)
    enums: list[Enum] = []
    structs: list[Struct] = []
    unions: list[Union] = []
    alternates: list[Alternate] = []
    for entity in schema.entities:
        if isinstance(entity, EnumType) and not entity.is_builtin:
            enums.append(enum_view(entity, names))
        elif isinstance(entity, ObjectType) and is_generated_object(entity):
            if entity.variants is None:
                structs.append(struct_view(entity, names, mapper))
            else:
                branch_classes, union = union_views(entity, names, mapper)
                structs.extend(branch_classes)
                unions.append(union)
        elif isinstance(entity, AlternateType):
            alternates.append(alternate_view(entity, names, mapper))
    if enums:
        imports.module("enum")
    if any(s.uses_warnings for s in structs):
        imports.module("warnings")
    if structs:
        imports.module("dataclasses")
        imports.name("typing", "ClassVar")
    if any(m.fixed_tag for s in structs for m in s.members):
        imports.name("typing", "Literal")
    if unions or alternates:
        imports.name("typing", "TypeAlias")
    if enums or structs or unions or alternates:
        imports.name("qapigen_runtime", "codec as _c")
    module = Module(
        "types.py",
        f"Types of the QAPI schema {schema_name}.\n\n{header(schema_name)}",
        imports.lines(),
    )
    member_conditions: list[Node] = []
    for struct in structs:
        conditional = [
            keyed(m.wire, json_node(m.cond_json)) for m in struct.members if m.cond_json
        ]
        if conditional:
            table = Group("{", conditional, "}", literal=True, explode=True)
            member_conditions.append(keyed(struct.name, table))
    value_conditions: list[Node] = []
    for e in enums:
        conditional = [
            keyed(v.wire, json_node(v.cond_json)) for v in e.values if v.cond_json
        ]
        if conditional:
            table = Group("{", conditional, "}", literal=True, explode=True)
            value_conditions.append(keyed(e.name, table))
    module.body = render(
        "types.py.j2",
        member_conditions=dict_literal(
            "MEMBER_CONDITIONS: dict[str, dict[str, object]]", member_conditions
        ),
        value_conditions=dict_literal(
            "ENUM_VALUE_CONDITIONS: dict[str, dict[str, object]]", value_conditions
        ),
        module=module,
        enums=enums,
        structs=structs,
        unions=unions,
        alternates=alternates,
    )
    return module
