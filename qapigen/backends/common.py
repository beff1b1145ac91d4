"""What every backend shares: Python names for the schema's types, how each type is
used in code (annotation, decoder, encoder), the imports that use implies, and doc text.

`TypeNames` is built once per schema and assigns every generated class and function of
the `types` module its name, refusing clashes with a located error. `TypeMapper` turns a
schema type into a `TypeUse` for one output module and records, in that module's
`Imports`, every name the expressions it hands out refer to, so imports follow use.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Callable

from .. import naming
from ..doc import QAPIDoc
from ..layout import LINE_LENGTH, Group, Node, flat, lay_out
from ..schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    Entity,
    EnumType,
    Feature,
    ObjectMember,
    ObjectType,
    Schema,
    Type,
)
from .docs import annotate, member_doc
from .modules import ModulePlan
from .view import Member, TypeUse

RUNTIME = "qapigen_runtime"

# Built-in QAPI type -> (annotation, decoder, JSON kinds)
_BUILTINS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "str": ("str", "_c.string", ("str",)),
    "number": ("float", "_c.number", ("number",)),
    "int": ("int", "_c.int_", ("int",)),
    "int8": ("int", "_c.int8", ("int",)),
    "int16": ("int", "_c.int16", ("int",)),
    "int32": ("int", "_c.int32", ("int",)),
    "int64": ("int", "_c.int64", ("int",)),
    "uint8": ("int", "_c.uint8", ("int",)),
    "uint16": ("int", "_c.uint16", ("int",)),
    "uint32": ("int", "_c.uint32", ("int",)),
    "uint64": ("int", "_c.uint64", ("int",)),
    "size": ("int", "_c.size", ("int",)),
    "bool": ("bool", "_c.boolean", ("bool",)),
    "any": ("object", "_c.any_value", ()),
    "null": ("_c.Null", "_c.null", ("null",)),
}

# Names a facade binds besides the names it re-exports; a schema name that would become
# one of them gets a trailing `_` (NameScope.reserve).
# (Everything else generated code refers to itself is imported under a leading
# underscore, which no QAPI name becomes, so it cannot meet a schema name.)
TYPES_FACADE_NAMES = (
    "MEMBER_CONDITIONS",
    "ENUM_VALUE_CONDITIONS",
    "MEMBER_FEATURES",
    "ENUM_VALUE_FEATURES",
)


class Imports:
    """The imports one generated module needs, recorded as its code uses names."""

    def __init__(self) -> None:
        self._modules: set[str] = set()
        self._names: dict[str, set[str]] = defaultdict(set)

    def module(self, name: str) -> None:
        """``import name``"""
        self._modules.add(name)

    def name(self, module: str, name: str) -> None:
        """``from module import name`` (``x as y`` allowed in `name`)."""
        self._names[module].add(name)

    def from_modules(self) -> list[str]:
        """The modules names are imported from."""
        return sorted(self._names)

    def lines(self) -> list[str]:
        """Grouped like isort does: standard library, runtime, then the package."""
        stdlib = [f"import {m}" for m in sorted(self._modules)]
        runtime: list[str] = []
        local: list[str] = []
        for module in sorted(self._names, key=lambda m: (m.startswith("."), m)):
            ordered = sorted(self._names[module], key=_import_key)
            names: list[Node] = list(ordered)
            line = f"from {module} import {', '.join(flat(n) for n in names)}"
            if len(line) > LINE_LENGTH:
                # black explodes a long import, one name per line with a comma
                line = lay_out(
                    Group(f"from {module} import (", names, ")", explode=True)
                )
            if module.startswith("."):
                local.append(line)
            elif module.startswith(RUNTIME):
                runtime.append(line)
            else:
                stdlib.append(line)
        stdlib.sort(key=_statement_key)
        groups = [group for group in (stdlib, runtime, local) if group]
        lines: list[str] = []
        for group in groups:
            if lines:
                lines.append("")
            lines.extend(group)
        return lines


def _import_key(name: str) -> tuple[bool, str]:
    return (not name[:1].isupper(), name)


def _statement_key(line: str) -> tuple[bool, str]:
    # "import x" lines before "from x import y" lines, each sorted by module
    return (line.startswith("from "), line.split()[1])


class TypeNames:
    """The Python names of everything the `types` facade lists, and for each the
    schema entity it belongs to (its module is that entity's: `ModulePlan`)."""

    def __init__(self, schema: Schema) -> None:
        self.scope = naming.NameScope("the generated types package")
        for taken in TYPES_FACADE_NAMES:
            self.scope.reserve(taken, "the types facade")
        for taken in dir(builtins):
            # a class named like a builtin would shadow it in annotations (mypy
            # resolves a later alias `IndexError` to the builtin), so it gets a `_`
            self.scope.reserve(taken, "Python's builtins")
        # Python name -> the QAPI entity whose module defines it
        self.owner: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        # (union, branch, inner branch, ...) -> class: one class per leaf branch, a
        # branch whose type is a union having one per branch of that union
        self.branch_classes: dict[tuple[str, ...], str] = {}
        self.decoders: dict[str, str] = {}
        self.encoders: dict[str, str] = {}
        # enum -> its table of values, which generated codecs look wire values up in
        self.enum_tables: dict[str, str] = {}
        # enum -> the set of its deprecated values (only enums that have some), which
        # code that takes values from a program checks them against
        self.deprecated_values: dict[str, str] = {}
        # The schema's own names first, so that a name derived from another type
        # (a decoder, a value table, a branch class) yields to them, not they to it.
        generated = [
            entity
            for entity in schema.entities
            if (isinstance(entity, EnumType) and not entity.is_builtin)
            or (isinstance(entity, ObjectType) and is_generated_object(entity))
            or isinstance(entity, AlternateType)
        ]
        for entity in generated:
            self._class(entity)
        for entity in generated:
            if isinstance(entity, EnumType):
                table = f"_{self.classes[entity.name]}_VALUES"
                self.enum_tables[entity.name] = self._derived(
                    entity, f"the values of {entity.name}", table
                )
                if any(is_deprecated(value.features) for value in entity.members):
                    deprecated = f"_{self.classes[entity.name]}_DEPRECATED"
                    self.deprecated_values[entity.name] = self._derived(
                        entity, f"the deprecated values of {entity.name}", deprecated
                    )
            elif isinstance(entity, ObjectType):
                if entity.variants is not None:
                    self._union(entity)
            else:
                self._function(entity, "decode_", self.decoders)
                self._function(entity, "encode_", self.encoders)

    def _class(self, entity: Entity) -> None:
        name = naming.class_name(entity.name)
        self.classes[entity.name] = self.scope.add(entity.name, name, entity.info)
        self.owner[self.classes[entity.name]] = entity.name

    def _derived(self, entity: Entity, what: str, python_name: str) -> str:
        name = self.scope.add_derived(what, python_name, entity.info)
        self.owner[name] = entity.name
        return name

    def _function(self, entity: Entity, prefix: str, table: dict[str, str]) -> None:
        name = prefix + naming.snake_case(entity.name)
        table[entity.name] = self._derived(entity, f"{prefix}{entity.name}", name)

    def _union(self, union: ObjectType) -> None:
        for path in branch_paths(union):
            name = naming.class_name(union.name) + "".join(
                "_" + naming.camel_case(step) for step in path
            )
            key = f"{union.name} branch {'/'.join(path)}"
            self.branch_classes[(union.name, *path)] = self._derived(union, key, name)
        self._function(union, "decode_", self.decoders)


def branch_paths(union: ObjectType) -> list[tuple[str, ...]]:
    """The leaf branches of `union`, each as the tag values leading to it: a branch
    whose type is itself a union (QEMU 8.2+ `MigrationAddress` has `SocketAddress`
    as a branch) leads on to each of that union's branches."""
    paths: list[tuple[str, ...]] = []
    for branch in union.branches:
        inner = branch.type
        if isinstance(inner, ObjectType) and inner.variants is not None:
            paths.extend((branch.name, *rest) for rest in branch_paths(inner))
        else:
            paths.append((branch.name,))
    return paths


def is_generated_object(typ: ObjectType) -> bool:
    """Structs and unions get classes; implicit objects (arguments, inline bases,
    simple-union wrappers, q_empty) are flattened into what uses them."""
    return not typ.is_implicit


class Reference:
    """How code in one generated module spells a name the types package defines.

    - `home` set (a module of the types package): names of the same module as they
      are, names of another module imported from it (``from .sockets import X``);
    - otherwise (commands, the server module, the events package's modules): through the lazy
      facade, ``_t.X`` (`parent` is the package, relative to the module), so no
      schema name enters the module's namespace and importing it loads no types.
    """

    def __init__(
        self,
        plan: ModulePlan,
        imports: Imports,
        home: str | None = None,
        parent: str = ".",
    ) -> None:
        self.plan = plan
        self.imports = imports
        self.home = home
        self.parent = parent

    def __call__(self, names: TypeNames, python_name: str) -> str:
        if self.home is not None:
            module = self.plan.module_of(names.owner[python_name])
            if module != self.home:
                self.imports.name(f".{module}", python_name)
            return python_name
        self.imports.name(self.parent, "types as _t")
        return f"_t.{python_name}"


class TypeMapper:
    """`TypeUse`s for code in one module (`reference`: how that module refers to the
    types package's names; `decodes_members`: the module's classes decode their
    members themselves, so member types bring what that code refers to)."""

    def __init__(
        self,
        names: TypeNames,
        reference: Reference,
        decodes_members: bool = False,
    ) -> None:
        self.names = names
        self.reference = reference
        self.imports = reference.imports
        self.decodes_members = decodes_members

    def _local(self, name: str) -> str:
        return self.reference(self.names, name)

    def use(self, typ: Type) -> TypeUse:
        if isinstance(typ, BuiltinType):
            annotation, decoder, kinds = _BUILTINS[typ.name]
            self.imports.name(RUNTIME, "codec as _c")
            encode = {"null": "None", "any": "_c.any_wire({})"}.get(typ.name, "{}")
            check = "_c.Null" if typ.name == "null" else None
            return TypeUse(annotation, decoder, encode, kinds, check, typ.name)
        self.imports.name(RUNTIME, "codec as _c")
        if isinstance(typ, ArrayType):
            element = self.use(typ.element_type)
            if element.encode == "{}":
                encode = "list({})"
            else:
                encode = "[" + element.encode.format("element") + " for element in {}]"
            return TypeUse(
                f"list[{element.annotation}]",
                f"_c.array_of({element.decoder})",
                encode,
                ("array",),
                None,
                typ.name,
                deprecated_tables=element.deprecated_tables,
            )
        if isinstance(typ, EnumType):
            cls = self._local(self.names.classes[typ.name])
            use = TypeUse(cls, f"{cls}.from_wire", "{}.value", ("str",), cls, typ.name)
            deprecated = self.names.deprecated_values.get(typ.name)
            if deprecated is not None:
                use.deprecated_tables = (deprecated,)
            return use
        if isinstance(typ, AlternateType):
            cls = self._local(self.names.classes[typ.name])
            decoder = self._local(self.names.decoders[typ.name])
            encoder = self._local(self.names.encoders[typ.name])
            alternative_kinds: list[str] = []
            tables: list[str] = []
            for alternative in typ.alternatives:
                alternative_use = self.use(alternative.type)
                alternative_kinds.extend(alternative_use.json_kinds)
                tables.extend(alternative_use.deprecated_tables)
            return TypeUse(
                cls,
                decoder,
                encoder + "({})",
                tuple(alternative_kinds),
                None,
                typ.name,
                deprecated_tables=tuple(tables),
            )
        assert isinstance(typ, ObjectType)
        cls = self._local(self.names.classes[typ.name])
        if typ.variants is not None:
            decoder = self._local(self.names.decoders[typ.name])
            # isinstance() accepts the union alias (a types.UnionType) directly
            return TypeUse(cls, decoder, "{}.to_wire()", ("object",), cls, typ.name)
        return TypeUse(
            cls, f"{cls}.from_wire", "{}.to_wire()", ("object",), cls, typ.name
        )

    def import_deprecated_values(self, use: TypeUse) -> None:
        """Spell (and import) the sets of deprecated enum values that code checking
        `use`'s values (`Member.deprecation_lines`) refers to; imported only then, as
        they are private to the types package otherwise."""
        use.deprecated_refs = tuple(self._local(t) for t in use.deprecated_tables)

    def member(
        self,
        member: ObjectMember,
        doc: QAPIDoc | None,
        attribute: Callable[[str], str] = naming.attribute_name,
    ) -> Member:
        text = annotate(
            member_doc(doc, member.name),
            deprecated=is_deprecated(member.features),
            condition=member.ifcond.to_json(),
        )
        use = self.use(member.type)
        if isinstance(member.type, EnumType) and self.decodes_members:
            use.enum_table = self._local(self.names.enum_tables[member.type.name])
        return Member(
            wire=member.name,
            attr=attribute(member.name),
            type=use,
            optional=member.optional,
            doc=text,
            cond_json=member.ifcond.to_json(),
            deprecated=is_deprecated(member.features),
            special=special_features(member.features),
        )


def members_of(
    mapper: TypeMapper,
    members: list[ObjectMember],
    doc: QAPIDoc | None,
    where: str,
    reserved: tuple[str, ...] = (),
    attribute: Callable[[str], str] = naming.attribute_name,
) -> list[Member]:
    """`members` as view records, their Python names (from `attribute`) checked for
    clashes in the namespace `where` (a class body or a parameter list; `reserved`
    names the generated code adds there)."""
    scope = naming.NameScope(where)
    for name in reserved:
        scope.reserve(name, "the generated code")
    result = []
    for member in members:
        view = mapper.member(member, doc, attribute)
        view.attr = scope.add(member.name, view.attr, member.info)
        result.append(view)
    return result


def is_deprecated(features: list[Feature]) -> bool:
    return any(feature.name == "deprecated" for feature in features)


def special_features(features: list[Feature]) -> list[str]:
    """The features QEMU's `-compat` policies act on ('deprecated', 'unstable'), in
    that order: what a server's policy may refuse on input or hide on output."""
    names = {feature.name for feature in features if feature.is_special}
    return [name for name in ("deprecated", "unstable") if name in names]
