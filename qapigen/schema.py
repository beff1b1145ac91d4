"""The schema IR: typed entities, resolved and checked, walked by one visitor.

Public surface (names are stable; backends such as the bindings generator use them):

``Schema``
    ``entities`` (every entity in definition order, built-ins and implicit types
    included), ``modules`` (``Module`` per file, built-in module first),
    ``lookup_entity(name)``, ``lookup_type(name)``, ``visit(visitor)``, ``docs``
    (every doc comment, in source order), ``warnings``, ``level``,
    ``commands()``, ``events()``, ``types()``, ``feature_names`` (every feature
    name in use, special ones first).
``Entity``
    ``name``, ``info`` (None for built-ins), ``doc``, ``ifcond`` (``IfCond``),
    ``features`` (list of ``Feature``), ``module``, ``is_implicit``,
    ``is_builtin``, ``meta``, ``describe()``.
``BuiltinType(Type)``
    ``json_type``: 'string', 'number', 'int', 'boolean', 'null' or 'value'.
``EnumType(Type)``
    ``members`` (``EnumMember``: name, ifcond, features), ``prefix``.
``ArrayType(Type)``
    ``element_type``; its ``ifcond`` is the element type's.
``ObjectType(Type)``
    ``base``, ``local_members``, ``members`` (base members first, after check),
    ``variants`` (``Variants`` or None: a union's ``tag_member`` and ``variants``),
    ``branches`` (the list of ``Variant``, empty for a struct; from QEMU 8.1 on, so
    at level 10.0 and the permissive default, a branch may itself be a union),
    ``kind`` ('struct', 'union' or 'object' for implicit types).
``ObjectMember``
    ``name``, ``type``, ``optional``, ``ifcond``, ``features``, ``defined_in``.
``AlternateType(Type)``
    ``variants`` (tag member of type QType) and ``alternatives`` (the list of
    ``Variant``).
``Command``
    ``arg_type`` (ObjectType or None), ``ret_type`` (Type or None), ``boxed``,
    ``gen``, ``success_response``, ``allow_oob``, ``allow_preconfig``,
    ``coroutine``.
``Event``
    ``arg_type``, ``boxed``.
``Feature``
    ``name``, ``ifcond``, ``is_special`` (deprecated / unstable).
``Include``
    an include directive inside a module (``module`` is the included file).
``SchemaVisitor``
    one method per entity kind, each receiving the entity itself.

Implicit types follow QEMU's naming so dumps compare with QEMU's: ``q_empty``,
``q_obj_<command>-arg`` / ``q_obj_<event>-arg`` (inline arguments),
``q_obj_<union>-base`` (inline union base), ``<T>List`` (arrays), and for QEMU 5.x
simple unions ``<Union>Kind`` (the tag enum) and ``q_obj_<T>-wrapper``.

`Schema.check()` resolves every name and checks what needs more than one definition:
unknown types, base cycles, member/branch/value clashes (after C-name mangling, as the
C and Python bindings see them), discriminators, what alternates can tell apart,
command argument and return types, special features; it connects doc comments to
members and features and lets `QAPIDoc.check()` find stale descriptions.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from typing import ClassVar

from . import rules
from .doc import QAPIDoc
from .expr import (
    AlternateDef,
    BranchDef,
    CheckedExpr,
    CommandDef,
    EnumDef,
    EnumValueDef,
    EventDef,
    FeatureDef,
    IncludeDef,
    MemberDef,
    StructDef,
    TypeRef,
    UnionDef,
    c_name,
)
from .ifcond import ALWAYS, IfCond
from .level import Level
from .source import Note, QAPIError, QAPIWarning, SourceInfo, excerpt

__all__ = [
    "ALWAYS",
    "BUILTIN_MODULE",
    "AlternateType",
    "ArrayType",
    "BuiltinType",
    "Command",
    "Entity",
    "EnumMember",
    "EnumType",
    "Event",
    "Feature",
    "IfCond",
    "Include",
    "Member",
    "Module",
    "ObjectMember",
    "ObjectType",
    "Schema",
    "SchemaVisitor",
    "Type",
    "Variant",
    "Variants",
]

BUILTIN_MODULE = "./builtin"

# name -> JSON type as introspection reports it, in QEMU's definition order
BUILTIN_TYPES: dict[str, str] = {
    "str": "string",
    "number": "number",
    "int": "int",
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "int",
    "uint8": "int",
    "uint16": "int",
    "uint32": "int",
    "uint64": "int",
    "size": "int",
    "bool": "boolean",
    "any": "value",
    "null": "null",
}
QTYPE_VALUES = ["none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool"]


# ---------------------------------------------------------------- members


class Member:
    """Something named inside a definition: a member, branch, enum value or feature.

    `defined_in` is the name of the entity it belongs to; `role` is how messages
    call it ("member", "value", "branch", "feature")."""

    role: ClassVar[str] = "member"

    def __init__(self, name: str, info: SourceInfo | None, ifcond: IfCond = ALWAYS):
        self.name = name
        self.info = info
        self.ifcond = ifcond
        self.defined_in = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def describe(self, info: SourceInfo | None) -> str:
        """How an error message at `info` should name this member."""
        role = self.role
        owner = self.defined_in
        if owner.startswith("q_obj_"):
            # implicit types: say what the schema author wrote
            if owner.endswith("-arg"):
                role = "argument"
            elif owner.endswith("-base"):
                role = "base " + role
            elif owner.endswith("-wrapper"):
                role = "branch data " + role
            return f"{role} '{self.name}'"
        if (
            owner.endswith("Kind")
            and self.role == "value"
            and owner[:-4] == (info.defn_name if info else None)
        ):
            return f"branch '{self.name}'"
        if info is None or owner != info.defn_name:
            return f"{role} '{self.name}' of type '{owner}'"
        return f"{role} '{self.name}'"

    def check_clash(self, info: SourceInfo | None, seen: dict[str, Member]) -> None:
        key = c_name(self.name)
        other = seen.get(key)
        if other is not None:
            raise QAPIError(
                info,
                f"{self.describe(info)} collides with {other.describe(info)}"
                " (same name in generated code)",
            )
        seen[key] = self


class Feature(Member):
    role: ClassVar[str] = "feature"
    SPECIAL: ClassVar[frozenset[str]] = frozenset({"deprecated", "unstable"})

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        ifcond: IfCond = ALWAYS,
        special_names: frozenset[str] = SPECIAL,
    ):
        super().__init__(name, info, ifcond)
        self._special_names = special_names

    @property
    def is_special(self) -> bool:
        """'deprecated' and (from QEMU 6.2) 'unstable' mean something to QEMU."""
        return self.name in self._special_names


class EnumMember(Member):
    role: ClassVar[str] = "value"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        ifcond: IfCond = ALWAYS,
        features: list[Feature] | None = None,
    ):
        super().__init__(name, info, ifcond)
        self.features: list[Feature] = features or []


class ObjectMember(Member):
    """A member of an object type (or a command's / event's argument)."""

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        type_name: str,
        optional: bool,
        ifcond: IfCond = ALWAYS,
        features: list[Feature] | None = None,
    ):
        super().__init__(name, info, ifcond)
        self.type_name = type_name
        self.optional = optional
        self.features: list[Feature] = features or []
        self._type: Type | None = None

    @property
    def type(self) -> Type:
        """The member's type (available after `Schema.check()`)."""
        assert self._type is not None, f"member {self.name} not resolved"
        return self._type

    def resolve(self, schema: Schema) -> None:
        if self._type is None:
            self._type = schema.resolve_type(
                self.type_name, self.info, lambda: self.describe(self.info)
            )


class Variant(Member):
    """A union branch or an alternative of an alternate: a name and a type."""

    role: ClassVar[str] = "branch"

    def __init__(
        self, name: str, info: SourceInfo | None, type_name: str, ifcond: IfCond
    ):
        super().__init__(name, info, ifcond)
        self.type_name = type_name
        self._type: Type | None = None

    @property
    def type(self) -> Type:
        assert self._type is not None, f"branch {self.name} not resolved"
        return self._type

    def resolve(self, schema: Schema) -> None:
        if self._type is None:
            self._type = schema.resolve_type(
                self.type_name, self.info, lambda: self.describe(self.info)
            )


class Variants:
    """The branches of a union (tag = the discriminator member) or of an alternate
    (tag = an implicit 'type' member of enum QType)."""

    def __init__(
        self,
        tag_name: str | None,
        info: SourceInfo | None,
        tag_member: ObjectMember | None,
        variants: list[Variant],
    ):
        self.tag_name = tag_name
        self.info = info
        self._tag_member = tag_member
        self.variants = variants

    @property
    def tag_member(self) -> ObjectMember:
        assert self._tag_member is not None
        return self._tag_member

    def set_defined_in(self, name: str) -> None:
        for variant in self.variants:
            variant.defined_in = name


# ---------------------------------------------------------------- entities


class Module:
    """One schema file (or the built-in module), with its entities in order."""

    def __init__(self, name: str):
        self.name = name
        self.entities: list[Entity | Include] = []

    def __repr__(self) -> str:
        return f"<Module {self.name}>"

    @property
    def is_builtin(self) -> bool:
        return self.name == BUILTIN_MODULE

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_module(self)
        for entity in self.entities:
            if isinstance(entity, Include):
                visitor.visit_include(entity)
            elif visitor.visit_needed(entity):
                entity.visit(visitor)


class Include:
    """An include directive: `module` is the included file's module."""

    def __init__(self, module: Module, info: SourceInfo):
        self.module = module
        self.info = info

    @property
    def name(self) -> str:
        return self.module.name


class Entity:
    """A named definition: a type, a command or an event."""

    meta: ClassVar[str] = "entity"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        doc: QAPIDoc | None = None,
        ifcond: IfCond = ALWAYS,
        features: list[Feature] | None = None,
        implicit: bool = False,
    ):
        self.name = name
        self.info = info
        self.doc = doc
        self._ifcond = ifcond
        self.features: list[Feature] = features or []
        self.module: Module | None = None
        self._implicit = implicit
        self._checked = False
        for feature in self.features:
            feature.defined_in = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def ifcond(self) -> IfCond:
        return self._ifcond

    @property
    def is_implicit(self) -> bool:
        """True for what the generator made up: built-ins, arrays, `q_*`, 5.x
        simple-union `Kind` enums."""
        return self._implicit or self.info is None

    @property
    def is_builtin(self) -> bool:
        return self.info is None

    def describe(self) -> str:
        return f"{self.meta} '{self.name}'"

    def check(self, schema: Schema) -> None:
        self._checked = True
        seen: dict[str, Member] = {}
        for feature in self.features:
            feature.check_clash(self.info, seen)

    def connect_doc(self, doc: QAPIDoc | None = None) -> None:
        doc = doc or self.doc
        if doc is not None:
            for feature in self.features:
                doc.connect_feature(feature)

    def check_doc(self) -> None:
        if self.doc is not None:
            self.doc.check()

    def visit(self, visitor: SchemaVisitor) -> None:
        raise NotImplementedError


class Type(Entity):
    """A type; special features make no sense on types."""

    def check(self, schema: Schema) -> None:
        super().check(schema)
        for feature in self.features:
            if feature.is_special:
                message = (
                    f"feature '{feature.name}' is only for commands, events,"
                    " members and enum values, not for types"
                )
                if feature.name != "unstable":
                    raise QAPIError(self.info, message)
                # an ordinary feature before QEMU 6.2
                assert self.info is not None
                schema.breach(rules.SPECIAL_FEATURE_ON_TYPE, self.info, message)

    def describe(self) -> str:
        return f"{self.meta} type '{self.name}'"

    def json_kind(self) -> str | None:
        """How a value of this type looks on the wire, for telling alternatives
        apart: 'string', 'number', 'boolean', 'null', 'object', 'array', or None
        when it could be anything."""
        return None


class BuiltinType(Type):
    meta: ClassVar[str] = "built-in"

    def __init__(self, name: str, json_type: str):
        super().__init__(name, None)
        self.json_type = json_type

    def json_kind(self) -> str | None:
        return {
            "string": "string",
            "number": "number",
            "int": "number",
            "boolean": "boolean",
            "null": "null",
        }.get(self.json_type)

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_builtin_type(self)


class EnumType(Type):
    meta: ClassVar[str] = "enum"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        doc: QAPIDoc | None,
        ifcond: IfCond,
        features: list[Feature],
        members: list[EnumMember],
        prefix: str | None,
        implicit: bool = False,
    ):
        super().__init__(name, info, doc, ifcond, features, implicit)
        self.members = members
        self.prefix = prefix
        for member in members:
            member.defined_in = name
            for feature in member.features:
                feature.defined_in = name

    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    def check(self, schema: Schema) -> None:
        super().check(schema)
        seen: dict[str, Member] = {}
        for member in self.members:
            member.check_clash(self.info, seen)
            fseen: dict[str, Member] = {}
            for feature in member.features:
                feature.check_clash(self.info, fseen)

    def connect_doc(self, doc: QAPIDoc | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if doc is not None:
            for member in self.members:
                doc.connect_member(member)
                for feature in member.features:
                    doc.connect_feature(feature)

    def json_kind(self) -> str | None:
        return "string"

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_enum_type(self)


class ArrayType(Type):
    meta: ClassVar[str] = "array"

    def __init__(self, name: str, info: SourceInfo | None, element_type_name: str):
        super().__init__(name, info, implicit=True)
        self.element_type_name = element_type_name
        self._element_type: Type | None = None

    @property
    def element_type(self) -> Type:
        assert self._element_type is not None
        return self._element_type

    @property
    def ifcond(self) -> IfCond:
        return self._element_type.ifcond if self._element_type else ALWAYS

    @property
    def is_implicit(self) -> bool:
        return True

    def describe(self) -> str:
        return f"array type ['{excerpt(self.element_type_name)}']"

    def check(self, schema: Schema) -> None:
        super().check(schema)
        what = self.info.defn_meta if self.info and self.info.defn_meta else "array"
        self._element_type = schema.resolve_type(
            self.element_type_name, self.info, what
        )

    def json_kind(self) -> str | None:
        return "array"

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_array_type(self)


class ObjectType(Type):
    """A struct, a union (with `variants`), or an implicit object type.

    `meta` is 'struct', 'union' or 'object' (implicit types)."""

    meta: ClassVar[str] = "object"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        doc: QAPIDoc | None,
        ifcond: IfCond,
        features: list[Feature],
        base_name: str | None,
        local_members: list[ObjectMember],
        variants: Variants | None,
        meta: str = "object",
        implicit: bool = False,
        ifcond_from: Type | None = None,
    ):
        super().__init__(name, info, doc, ifcond, features, implicit)
        self.kind = meta
        self.base_name = base_name
        self.base: ObjectType | None = None
        self.local_members = local_members
        self.variants = variants
        self._members: list[ObjectMember] | None = None
        # QEMU 5.x simple-union wrappers take the condition of the wrapped type
        self._ifcond_from = ifcond_from
        for member in local_members:
            member.defined_in = name
            for feature in member.features:
                feature.defined_in = name
        if variants is not None:
            variants.set_defined_in(name)

    def describe(self) -> str:
        return f"{self.kind} type '{self.name}'"

    @property
    def ifcond(self) -> IfCond:
        if self._ifcond_from is not None:
            return self._ifcond_from.ifcond
        return self._ifcond

    @property
    def is_implicit(self) -> bool:
        return self.name.startswith("q_")

    @property
    def members(self) -> list[ObjectMember]:
        """All members, the base's first (available after `Schema.check()`)."""
        assert self._members is not None, f"{self.name} not checked"
        return self._members

    @property
    def branches(self) -> list[Variant]:
        return self.variants.variants if self.variants is not None else []

    def is_empty(self) -> bool:
        return not self.members and self.variants is None

    def has_conditional_members(self) -> bool:
        return any(m.ifcond.is_present() for m in self.members)

    def check(self, schema: Schema) -> None:
        if self._members is not None:
            return
        if self._checked:
            # entered again while checking itself: the C struct would contain itself
            raise QAPIError(
                self.info,
                f"{self.describe()} contains itself (through its base or branches)",
            )
        super().check(schema)
        seen: dict[str, Member] = {}
        members: list[ObjectMember] = []
        if self.base_name is not None:
            base = schema.resolve_type(self.base_name, self.info, "'base'")
            if not isinstance(base, ObjectType) or base.variants is not None:
                raise QAPIError(
                    self.info,
                    f"'base' must be a struct type, but {base.describe()} is not",
                )
            base.check(schema)
            base.check_clash(self.info, seen)
            members.extend(base.members)
            self.base = base
        for member in self.local_members:
            member.resolve(schema)
            member.check_clash(self.info, seen)
            fseen: dict[str, Member] = {}
            for feature in member.features:
                feature.check_clash(self.info, fseen)
            members.append(member)
        if self.variants is not None:
            self._check_branches(schema, seen)
            for variant in self.variants.variants:
                vtype = variant.type
                assert isinstance(vtype, ObjectType)
                # branch members share the object with the common members only
                vtype.check_clash(self.info, dict(seen))
        self._members = members

    def _check_branches(self, schema: Schema, seen: dict[str, Member]) -> None:
        variants = self.variants
        assert variants is not None
        if variants.tag_name is not None:
            found = seen.get(c_name(variants.tag_name))
            where = "'base'"
            if not isinstance(found, ObjectMember) or found.name != variants.tag_name:
                raise QAPIError(
                    self.info,
                    f"discriminator '{excerpt(variants.tag_name)}' is not a member of {where}",
                )
            owner = schema.lookup_type(found.defined_in)
            if owner is not None and not owner.is_implicit:
                where = f"base type '{found.defined_in}'"
            if not isinstance(found.type, EnumType):
                raise QAPIError(
                    self.info,
                    f"discriminator member '{found.name}' of {where}"
                    " must have an enum type",
                )
            if found.optional:
                raise QAPIError(
                    self.info,
                    f"discriminator member '{found.name}' of {where}"
                    " must not be optional",
                )
            if found.ifcond.is_present():
                raise QAPIError(
                    self.info,
                    f"discriminator member '{found.name}' of {where}"
                    " must not be conditional",
                )
            variants._tag_member = found
            # enum values without a branch get an empty one
            covered = {v.name for v in variants.variants}
            for value in found.type.members:
                if value.name not in covered:
                    implicit = Variant(value.name, self.info, "q_empty", value.ifcond)
                    implicit.defined_in = found.defined_in
                    variants.variants.append(implicit)
        tag_type = variants.tag_member.type
        assert isinstance(tag_type, EnumType)
        if not variants.variants:
            raise QAPIError(self.info, "a union needs at least one branch")
        values = set(tag_type.member_names())
        for variant in variants.variants:
            variant.resolve(schema)
            if variant.name not in values:
                raise QAPIError(
                    self.info,
                    f"branch '{variant.name}' is not a value of {tag_type.describe()}",
                )
            vtype = variant.type
            if not isinstance(vtype, ObjectType):
                kinds = "struct or union" if schema.unions_in_unions else "struct"
                raise QAPIError(
                    self.info,
                    f"{variant.describe(self.info)} cannot have {vtype.describe()}"
                    f" (a branch must be a {kinds} type)",
                )
            if vtype.variants is not None:
                # QEMU 9.1+ allow a union as a branch
                assert self.info is not None
                schema.breach(
                    rules.UNION_BRANCH_UNION,
                    self.info,
                    f"{variant.describe(self.info)} cannot have {vtype.describe()}"
                    " (a branch must be a struct type)",
                )
            vtype.check(schema)

    def check_clash(self, info: SourceInfo | None, seen: dict[str, Member]) -> None:
        """Add this type's members to `seen`, failing on a clash (for bases and
        branches, whose members end up in another object). A union used as a
        branch brings each of its own branches' members too."""
        for member in self.members:
            member.check_clash(info, seen)
        if self.variants is not None:
            for variant in self.variants.variants:
                vtype = variant.type
                assert isinstance(vtype, ObjectType)
                vtype.check_clash(info, dict(seen))

    def connect_doc(self, doc: QAPIDoc | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if doc is None:
            return
        if self.base is not None and self.base.is_implicit:
            self.base.connect_doc(doc)
        for member in self.local_members:
            doc.connect_member(member)
            for feature in member.features:
                doc.connect_feature(feature)

    def json_kind(self) -> str | None:
        return "object"

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_object_type(self)


class AlternateType(Type):
    meta: ClassVar[str] = "alternate"

    def __init__(
        self,
        name: str,
        info: SourceInfo | None,
        doc: QAPIDoc | None,
        ifcond: IfCond,
        features: list[Feature],
        variants: Variants,
    ):
        super().__init__(name, info, doc, ifcond, features)
        self.variants = variants
        variants.set_defined_in(name)
        variants.tag_member.defined_in = name

    @property
    def alternatives(self) -> list[Variant]:
        return self.variants.variants

    def check(self, schema: Schema) -> None:
        super().check(schema)
        self.variants.tag_member.resolve(schema)
        seen: dict[str, Member] = {}
        kinds_seen: dict[str, str] = {}
        for variant in self.variants.variants:
            variant.resolve(schema)
            variant.check_clash(self.info, seen)
            vtype = variant.type
            kind = vtype.json_kind()
            if kind is None or isinstance(vtype, AlternateType):
                raise QAPIError(
                    self.info,
                    f"{variant.describe(self.info)} cannot have {vtype.describe()}",
                )
            conflicting = {kind}
            if kind == "string":
                if isinstance(vtype, EnumType):
                    # the QObject input visitors also parse these strings
                    for value in vtype.members:
                        if value.name in ("on", "off"):
                            conflicting.add("boolean")
                        if value.name[:1] in "-+0123456789.":
                            conflicting.add("number")
                else:
                    conflicting.update(("number", "boolean"))
            for other_kind in conflicting:
                other = kinds_seen.get(other_kind)
                if other is not None:
                    raise QAPIError(
                        self.info,
                        f"{variant.describe(self.info)} cannot be told apart"
                        f" from '{other}' on the wire",
                    )
                kinds_seen[other_kind] = variant.name

    def connect_doc(self, doc: QAPIDoc | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if doc is not None:
            for variant in self.variants.variants:
                doc.connect_member(variant)

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_alternate_type(self)


class Command(Entity):
    meta: ClassVar[str] = "command"

    def __init__(
        self,
        name: str,
        info: SourceInfo,
        doc: QAPIDoc | None,
        ifcond: IfCond,
        features: list[Feature],
        arg_type_name: str | None,
        ret_type_name: str | None,
        *,
        gen: bool,
        success_response: bool,
        boxed: bool,
        allow_oob: bool,
        allow_preconfig: bool,
        coroutine: bool,
    ):
        super().__init__(name, info, doc, ifcond, features)
        self.arg_type_name = arg_type_name
        self.ret_type_name = ret_type_name
        self.arg_type: ObjectType | None = None
        self.ret_type: Type | None = None
        self.gen = gen
        self.success_response = success_response
        self.boxed = boxed
        self.allow_oob = allow_oob
        self.allow_preconfig = allow_preconfig
        self.coroutine = coroutine

    def check(self, schema: Schema) -> None:
        super().check(schema)
        if self.arg_type_name is not None:
            self.arg_type = _check_arg_type(
                schema, self.arg_type_name, self.info, "command", self.boxed
            )
        if self.ret_type_name is not None:
            ret = schema.resolve_type(
                self.ret_type_name, self.info, "command's 'returns'"
            )
            pragma = self.info.pragma if self.info else None
            excepted = (
                pragma is not None and self.name in pragma.command_returns_exceptions
            )
            inner = ret.element_type if isinstance(ret, ArrayType) else ret
            if not excepted and not isinstance(inner, ObjectType):
                msg = (
                    f"command's 'returns' cannot be {ret.describe()}: it must"
                    " be an object type or an array of one (or the command must"
                    " be listed in pragma 'command-returns-exceptions')"
                )
                # every release rejects it, but under the default level a file of
                # a bigger schema (like the bundled migration.json) may rely on the
                # pragma of the file that includes it: a warning then
                assert self.info is not None
                schema.breach(rules.RETURNS_TYPE, self.info, msg)
            self.ret_type = ret

    def connect_doc(self, doc: QAPIDoc | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if doc is not None and self.arg_type is not None and self.arg_type.is_implicit:
            self.arg_type.connect_doc(doc)

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_command(self)


class Event(Entity):
    meta: ClassVar[str] = "event"

    def __init__(
        self,
        name: str,
        info: SourceInfo,
        doc: QAPIDoc | None,
        ifcond: IfCond,
        features: list[Feature],
        arg_type_name: str | None,
        boxed: bool,
    ):
        super().__init__(name, info, doc, ifcond, features)
        self.arg_type_name = arg_type_name
        self.arg_type: ObjectType | None = None
        self.boxed = boxed

    def check(self, schema: Schema) -> None:
        super().check(schema)
        if self.arg_type_name is not None:
            self.arg_type = _check_arg_type(
                schema, self.arg_type_name, self.info, "event", self.boxed
            )

    def connect_doc(self, doc: QAPIDoc | None = None) -> None:
        super().connect_doc(doc)
        doc = doc or self.doc
        if doc is not None and self.arg_type is not None and self.arg_type.is_implicit:
            self.arg_type.connect_doc(doc)

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_event(self)


def _check_arg_type(
    schema: Schema, name: str, info: SourceInfo | None, meta: str, boxed: bool
) -> ObjectType:
    typ = schema.resolve_type(name, info, f"{meta}'s 'data'")
    if not isinstance(typ, ObjectType):
        raise QAPIError(
            info, f"{meta}'s 'data' cannot be {typ.describe()}: it needs an object type"
        )
    if typ.variants is not None and not boxed:
        raise QAPIError(
            info, f"{meta}'s 'data' can be {typ.describe()} only with 'boxed': true"
        )
    typ.check(schema)
    if not boxed and info is not None and typ.has_conditional_members():
        # QEMU 8.0+: unboxed arguments become C parameters, which cannot be #if'ed
        schema.breach(
            rules.CONDITIONAL_UNBOXED_ARGS,
            info,
            f"conditional {meta} arguments need 'boxed': true",
        )
    return typ


# ---------------------------------------------------------------- visitor


class SchemaVisitor:
    """Walks a checked schema module by module, entity by entity.

    Every method receives the entity itself; override what you need. `visit_needed`
    filters entities (e.g. skip built-ins)."""

    def visit_begin(self, schema: Schema) -> None:
        pass

    def visit_end(self) -> None:
        pass

    def visit_module(self, module: Module) -> None:
        pass

    def visit_include(self, include: Include) -> None:
        pass

    def visit_needed(self, entity: Entity) -> bool:
        return True

    def visit_builtin_type(self, typ: BuiltinType) -> None:
        pass

    def visit_enum_type(self, typ: EnumType) -> None:
        pass

    def visit_array_type(self, typ: ArrayType) -> None:
        pass

    def visit_object_type(self, typ: ObjectType) -> None:
        pass

    def visit_alternate_type(self, typ: AlternateType) -> None:
        pass

    def visit_command(self, command: Command) -> None:
        pass

    def visit_event(self, event: Event) -> None:
        pass


# ---------------------------------------------------------------- the schema


class Schema:
    """A checked schema. Build it with `Schema.build(...)` (what
    qapigen.frontend.load_schema does) or `Schema(level)` + `define(...)` +
    `check()`."""

    def __init__(
        self,
        level: Level = Level.PERMISSIVE,
        main_fname: str | None = None,
        docs: list[QAPIDoc] | None = None,
        warnings: list[QAPIWarning] | None = None,
    ):
        self.level = level
        self.docs: list[QAPIDoc] = docs or []
        self.warnings: list[QAPIWarning] = warnings if warnings is not None else []
        # a union as a union's branch: QEMU 9.1+ (so 10.0 and the default level)
        self.unions_in_unions = level in (Level.V10_0, Level.PERMISSIVE)
        self.entities: list[Entity] = []
        self._entity_dict: dict[str, Entity] = {}
        self._includes: list[tuple[int, Include]] = []
        self._schema_dir = os.path.dirname(main_fname) if main_fname else ""
        self._modules: dict[str, Module] = {}
        self._module_of_file: dict[str, Module] = {}
        self._make_module_named(BUILTIN_MODULE)
        if main_fname is not None:
            self._module_for(main_fname)
        self._special_features = (
            frozenset({"deprecated"}) if level is Level.V5_2 else Feature.SPECIAL
        )
        self._feature_names: dict[str, SourceInfo | None] = dict.fromkeys(
            sorted(self._special_features)
        )
        # QEMU 8.1+ let a union branch be a union itself
        self._define_predefined()

    @classmethod
    def build(
        cls,
        exprs: list[CheckedExpr],
        level: Level,
        main_fname: str | None = None,
        docs: list[QAPIDoc] | None = None,
        warnings: list[QAPIWarning] | None = None,
    ) -> Schema:
        schema = cls(level, main_fname, docs, warnings)
        for expr in exprs:
            schema.define(expr)
        schema.check()
        return schema

    # ---- modules

    def _make_module_named(self, name: str) -> Module:
        module = self._modules.get(name)
        if module is None:
            module = Module(name)
            self._modules[name] = module
        return module

    def _module_for(self, fname: str) -> Module:
        module = self._module_of_file.get(fname)
        if module is None:
            name = os.path.relpath(fname, self._schema_dir or os.curdir)
            module = self._make_module_named(name)
            self._module_of_file[fname] = module
        return module

    @property
    def modules(self) -> list[Module]:
        return list(self._modules.values())

    # ---- lookup

    def lookup_entity(self, name: str) -> Entity | None:
        return self._entity_dict.get(name)

    def lookup_type(self, name: str) -> Type | None:
        entity = self._entity_dict.get(name)
        return entity if isinstance(entity, Type) else None

    def resolve_type(
        self, name: str, info: SourceInfo | None, what: str | Callable[[], str]
    ) -> Type:
        """The type called `name`; else an error saying `what` uses an unknown type
        (`what` may be a function: descriptions are only built for errors)."""
        typ = self._entity_dict.get(name)
        if not isinstance(typ, Type):
            who = what if isinstance(what, str) else what()
            types = [n for n, e in self._entity_dict.items() if isinstance(e, Type)]
            close = difflib.get_close_matches(name, types, n=1, cutoff=0.6)
            notes = [Note(None, f"did you mean '{close[0]}'?")] if close else []
            raise QAPIError(info, f"{who} uses unknown type '{excerpt(name)}'", notes)
        return typ

    def commands(self) -> Iterator[Command]:
        return (e for e in self.entities if isinstance(e, Command))

    def events(self) -> Iterator[Event]:
        return (e for e in self.entities if isinstance(e, Event))

    def types(self) -> Iterator[Type]:
        return (e for e in self.entities if isinstance(e, Type))

    # ---- definition

    def _add(self, entity: Entity) -> None:
        other = self._entity_dict.get(entity.name)
        if other is not None:
            if other.info is None:
                raise QAPIError(entity.info, f"{other.describe()} is predefined")
            where = other.info.location()
            raise QAPIError(
                entity.info,
                f"'{entity.name}' is already defined (previous definition at {where})",
            )
        self._entity_dict[entity.name] = entity
        self.entities.append(entity)

    def _define_predefined(self) -> None:
        for name, json_type in BUILTIN_TYPES.items():
            self._add(BuiltinType(name, json_type))
            self._make_array(name, None)
        self.the_empty_object_type = ObjectType(
            "q_empty", None, None, ALWAYS, [], None, [], None, implicit=True
        )
        self._add(self.the_empty_object_type)
        values = [EnumMember(v, None) for v in QTYPE_VALUES]
        # QEMU 9.1 dropped the explicit prefix (its default spelling became QTYPE)
        prefix = "QTYPE" if self.level in (Level.V5_2, Level.V7_2) else None
        self._add(EnumType("QType", None, None, ALWAYS, [], values, prefix))

    def _features(self, defs: list[FeatureDef], info: SourceInfo) -> list[Feature]:
        for f in defs:
            self._feature_names.setdefault(f.name, info)
        return [Feature(f.name, info, f.ifcond, self._special_features) for f in defs]

    @property
    def feature_names(self) -> list[str]:
        """Every feature name the schema uses, special ones first, then in order of
        first use (QEMU 10.0 turns them into one C enum, at most 64 of them)."""
        return list(self._feature_names)

    def _make_array(self, element: str, info: SourceInfo | None) -> str:
        name = element + "List"
        if name not in self._entity_dict:
            self._add(ArrayType(name, info, element))
        return name

    def _type_name(self, ref: TypeRef, info: SourceInfo) -> str:
        return self._make_array(ref.name, info) if ref.is_array else ref.name

    def _members(self, defs: list[MemberDef], info: SourceInfo) -> list[ObjectMember]:
        return [
            ObjectMember(
                m.name,
                info,
                self._type_name(m.type, info),
                m.optional,
                m.ifcond,
                self._features(m.features, info),
            )
            for m in defs
        ]

    def _make_implicit_object(
        self,
        owner: str,
        info: SourceInfo,
        ifcond: IfCond,
        role: str,
        members: list[ObjectMember],
        ifcond_from: Type | None = None,
    ) -> str | None:
        if not members:
            return None
        name = f"q_obj_{owner}-{role}"
        if name not in self._entity_dict:
            self._add(
                ObjectType(
                    name,
                    info,
                    None,
                    ifcond,
                    [],
                    None,
                    members,
                    None,
                    implicit=True,
                    ifcond_from=ifcond_from,
                )
            )
        # else: the same implicit type from a duplicate definition, which _add of
        # that definition reports
        return name

    def define(self, expr: CheckedExpr) -> None:
        """Add the entities of one checked expression (and its implicit types)."""
        if isinstance(expr, IncludeDef):
            include = Include(self._module_for(expr.fname), expr.info)
            self._includes.append((len(self.entities), include))
        elif isinstance(expr, EnumDef):
            self._define_enum(expr)
        elif isinstance(expr, StructDef):
            self._add(
                ObjectType(
                    expr.name,
                    expr.info,
                    expr.doc,
                    expr.ifcond,
                    self._features(expr.features, expr.info),
                    expr.base,
                    self._members(expr.members, expr.info),
                    None,
                    meta="struct",
                )
            )
        elif isinstance(expr, UnionDef):
            self._define_union(expr)
        elif isinstance(expr, AlternateDef):
            self._define_alternate(expr)
        elif isinstance(expr, CommandDef):
            self._define_command(expr)
        else:
            self._define_event(expr)

    def _enum_members(
        self, defs: list[EnumValueDef], info: SourceInfo
    ) -> list[EnumMember]:
        return [
            EnumMember(v.name, info, v.ifcond, self._features(v.features, info))
            for v in defs
        ]

    def _define_enum(self, expr: EnumDef) -> None:
        self._add(
            EnumType(
                expr.name,
                expr.info,
                expr.doc,
                expr.ifcond,
                self._features(expr.features, expr.info),
                self._enum_members(expr.values, expr.info),
                expr.prefix,
            )
        )

    def _variant(self, branch: BranchDef, info: SourceInfo) -> Variant:
        return Variant(
            branch.name, info, self._type_name(branch.type, info), branch.ifcond
        )

    def _define_union(self, expr: UnionDef) -> None:
        info = expr.info
        members: list[ObjectMember] = []
        base: str | None
        if expr.discriminator is not None:
            if isinstance(expr.base, list):
                base = self._make_implicit_object(
                    expr.name, info, expr.ifcond, "base", self._members(expr.base, info)
                )
            else:
                base = expr.base
            variants = [self._variant(b, info) for b in expr.branches]
            tag_name: str | None = expr.discriminator
            tag_member = None
        else:
            # QEMU 5.x simple union: each branch wraps its type in a 'data' member,
            # an implicit enum of the branch names is the tag
            base = None
            variants = [self._simple_variant(b, info) for b in expr.branches]
            values = [EnumMember(v.name, info, v.ifcond) for v in variants]
            kind = EnumType(
                expr.name + "Kind",
                info,
                None,
                expr.ifcond,
                [],
                values,
                None,
                implicit=True,
            )
            self._add(kind)
            tag_member = ObjectMember("type", info, kind.name, False)
            members = [tag_member]
            tag_name = None
        self._add(
            ObjectType(
                expr.name,
                info,
                expr.doc,
                expr.ifcond,
                self._features(expr.features, info),
                base,
                members,
                Variants(tag_name, info, tag_member, variants),
                meta="union",
            )
        )

    def _simple_variant(self, branch: BranchDef, info: SourceInfo) -> Variant:
        typ = self._type_name(branch.type, info)
        wrapper = self._make_implicit_object(
            typ,
            info,
            ALWAYS,
            "wrapper",
            [ObjectMember("data", info, typ, False)],
            ifcond_from=self.lookup_type(typ),
        )
        assert wrapper is not None
        return Variant(branch.name, info, wrapper, branch.ifcond)

    def _define_alternate(self, expr: AlternateDef) -> None:
        info = expr.info
        variants = [self._variant(b, info) for b in expr.branches]
        tag_member = ObjectMember("type", info, "QType", False)
        self._add(
            AlternateType(
                expr.name,
                info,
                expr.doc,
                expr.ifcond,
                self._features(expr.features, info),
                Variants(None, info, tag_member, variants),
            )
        )

    def _arg_type(
        self,
        name: str,
        data: str | list[MemberDef] | None,
        info: SourceInfo,
        ifcond: IfCond,
    ) -> str | None:
        if isinstance(data, list):
            return self._make_implicit_object(
                name, info, ifcond, "arg", self._members(data, info)
            )
        return data

    def _define_command(self, expr: CommandDef) -> None:
        info = expr.info
        arg_type = self._arg_type(expr.name, expr.data, info, expr.ifcond)
        ret_type = None
        if expr.returns is not None:
            ret_type = self._type_name(expr.returns, info)
        self._add(
            Command(
                expr.name,
                info,
                expr.doc,
                expr.ifcond,
                self._features(expr.features, info),
                arg_type,
                ret_type,
                gen=expr.gen,
                success_response=expr.success_response,
                boxed=expr.boxed,
                allow_oob=expr.allow_oob,
                allow_preconfig=expr.allow_preconfig,
                coroutine=expr.coroutine,
            )
        )

    def _define_event(self, expr: EventDef) -> None:
        info = expr.info
        arg_type = self._arg_type(expr.name, expr.data, info, expr.ifcond)
        self._add(
            Event(
                expr.name,
                info,
                expr.doc,
                expr.ifcond,
                self._features(expr.features, info),
                arg_type,
                expr.boxed,
            )
        )

    # ---- checking

    def check(self) -> None:
        """Resolve and check every entity, connect the docs, assign modules.

        QEMU up to 7.2 checks each definition's doc right after the definition;
        later releases check all docs at the end (which decides which of two
        errors is reported first)."""
        docs_last = self.level is Level.V10_0
        for entity in self.entities:
            entity.check(self)
            entity.connect_doc()
            if not docs_last:
                entity.check_doc()
        self._assign_modules()
        if docs_last:
            for doc in self.docs:
                doc.check()
        self._check_feature_count()

    MAX_FEATURES: ClassVar[int] = 64

    def breach(self, rule: rules.Rule, info: SourceInfo, message: str) -> None:
        """A rule only some releases enforce is broken (see qapigen.rules)."""
        rules.enforce(rule, self.level, info, message, self.warnings)

    def _check_feature_count(self) -> None:
        names = list(self._feature_names.items())
        if len(names) > self.MAX_FEATURES:
            name, info = names[self.MAX_FEATURES]
            message = (
                f"feature '{name}' is one too many: a schema may use at most"
                f" {self.MAX_FEATURES} distinct feature names"
            )
            if info is None:
                raise QAPIError(info, message)
            self.breach(rules.FEATURE_COUNT, info, message)

    def _assign_modules(self) -> None:
        includes = iter(self._includes)
        pending = next(includes, None)
        builtin = self._modules[BUILTIN_MODULE]
        for index, entity in enumerate(self.entities):
            while pending is not None and pending[0] <= index:
                self._module_for(pending[1].info.fname).entities.append(pending[1])
                pending = next(includes, None)
            if isinstance(entity, ArrayType):
                # an array lives with its element type
                where = entity.element_type.info
            else:
                where = entity.info
            module = builtin if where is None else self._module_for(where.fname)
            entity.module = module
            module.entities.append(entity)
        while pending is not None:
            self._module_for(pending[1].info.fname).entities.append(pending[1])
            pending = next(includes, None)

    # ---- walking

    def visit(self, visitor: SchemaVisitor) -> None:
        visitor.visit_begin(self)
        for module in self._modules.values():
            module.visit(visitor)
        visitor.visit_end()
