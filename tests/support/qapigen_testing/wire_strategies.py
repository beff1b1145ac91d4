"""Wire values for any type of a QAPI schema, derived from the schema IR.

Nothing here is written per type: `WireValues` walks the IR (built-ins, enums,
structs, unions and their branches, alternates, arrays) and builds a hypothesis
strategy of valid JSON-compatible Python values, the form `json.loads` hands a QMP
client. `GeneratedCodec` finds, for the same IR type, the decoder and encoder the
generated package defines, so a property can run any type through its codec.
`mutation_sites` lists where a valid value can be broken (and under which JSON path
the codec must then report it), so invalid values are derived the same way.

The integer bounds and the JSON kinds each type accepts are spelled out here from
QAPI's definition rather than read from the runtime, so the tests check the codec
against the specification, not against itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Final

from hypothesis import strategies as st

from qapigen.backends.common import TypeNames
from qapigen.schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    EnumType,
    ObjectMember,
    ObjectType,
    Schema,
    Type,
)
from qapigen_runtime import codec

# Inclusive value ranges of QAPI's integer types ('size' is a 64-bit byte count).
INTEGER_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "int": (-(2**63), 2**63 - 1),
    "int8": (-128, 127),
    "int16": (-32768, 32767),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 255),
    "uint16": (0, 65535),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "size": (0, 2**64 - 1),
}

# QEMU's QMP input visitor reads the unsigned types, and 'size' (which it has no
# reader of its own for), through uint64, which for backward compatibility takes a
# negative int64 as its two's complement: -1 is a valid uint64 and size (2**64 - 1),
# and never a valid uint8/16/32 (the wrapped value is too large). So the largest value
# below each type's range that QEMU rejects is:
WRAPPING_TYPES: Final = frozenset({"uint64", "size"})
REJECTED_BELOW: Final[dict[str, int]] = {
    name: (-(2**63) - 1 if name in WRAPPING_TYPES else low - 1)
    for name, (low, _high) in INTEGER_BOUNDS.items()
}

# The codec function of each built-in type (the generated code calls the same ones).
BUILTIN_DECODERS: Final[dict[str, str]] = {
    "str": "string",
    "number": "number",
    "int": "int_",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "size": "size",
    "bool": "boolean",
    "any": "any_value",
    "null": "null",
}

# A sample value of every JSON kind, to put where another kind is expected.
KIND_SAMPLES: Final[dict[str, object]] = {
    "str": "not-this-kind",
    "int": 7,
    "number": 2.5,
    "bool": True,
    "null": None,
    "object": {},
    "array": [],
}
ALL_KINDS: Final = frozenset(KIND_SAMPLES)

# Member names a newer QEMU might add; "x-newer-" keeps them clear of this schema's.
UNKNOWN_MEMBER_NAMES: Final = st.from_regex(r"x-newer-[a-z]{1,6}", fullmatch=True)

Decoder = Callable[[object, str, bool], object]
Encoder = Callable[[object], object]
Location = tuple[str | int, ...]


def json_kind(value: object) -> str:
    """The JSON kind of a wire value (bool is not an int here, unlike in Python)."""
    for kind, python_type in (
        ("bool", bool),
        ("int", int),
        ("number", float),
        ("str", str),
        ("object", dict),
        ("array", list),
    ):
        if type(value) is python_type:
            return kind
    if value is None:
        return "null"
    raise TypeError(f"not a JSON value: {value!r}")


def accepted_kinds(typ: Type) -> frozenset[str]:
    """The JSON kinds a value of `typ` may have on the wire."""
    if isinstance(typ, BuiltinType):
        if typ.name == "any":
            return ALL_KINDS
        if typ.name == "number":
            return frozenset({"int", "number"})  # any JSON number
        if typ.name in INTEGER_BOUNDS:
            return frozenset({"int"})
        return frozenset({{"str": "str", "bool": "bool", "null": "null"}[typ.name]})
    if isinstance(typ, EnumType):
        return frozenset({"str"})
    if isinstance(typ, ArrayType):
        return frozenset({"array"})
    if isinstance(typ, AlternateType):
        kinds: frozenset[str] = frozenset()
        for alternative in typ.alternatives:
            kinds |= accepted_kinds(alternative.type)
        return kinds
    assert isinstance(typ, ObjectType)
    return frozenset({"object"})


def same_wire(left: object, right: object) -> bool:
    """Deep equality of wire values that also compares JSON kinds: True is not 1 and
    1.0 is not 1 here, as they are not the same JSON text."""
    if json_kind(left) != json_kind(right):
        return False
    if isinstance(left, dict):
        assert isinstance(right, dict)
        return left.keys() == right.keys() and all(
            same_wire(value, right[key]) for key, value in left.items()
        )
    if isinstance(left, list):
        assert isinstance(right, list)
        return len(left) == len(right) and all(
            same_wire(a, b) for a, b in zip(left, right, strict=True)
        )
    return left == right


def member_path(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def element_path(path: str, position: int) -> str:
    return f"{path}[{position}]"


# ---------------------------------------------------------------- strategies


def json_values() -> st.SearchStrategy[object]:
    """Any JSON value (QAPI 'any'), small."""
    scalars: st.SearchStrategy[object] = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(max_size=5), inner, max_size=3),
        ),
        max_leaves=6,
    )


def _merge(parts: tuple[dict[str, object], dict[str, object]]) -> dict[str, object]:
    return {**parts[0], **parts[1]}


class WireValues:
    """Strategies of valid wire values, per IR type.

    Objects nest at most `max_depth` deep through optional members and arrays
    (beyond it optional members are left out, arrays empty and alternates prefer a
    scalar), which keeps recursive types (BlockdevOptions in QEMU's schema) finite.
    With `unknown_members`, every object may also carry members this schema does
    not define, as a newer QEMU sends them.
    """

    def __init__(
        self, schema: Schema, *, max_depth: int = 3, unknown_members: bool = False
    ) -> None:
        self.schema = schema
        self.max_depth = max_depth
        self.unknown_members = unknown_members
        self._cache: dict[tuple[str, int], st.SearchStrategy[object]] = {}

    def of(self, typ: Type, depth: int = 0) -> st.SearchStrategy[object]:
        depth = min(depth, self.max_depth)
        key = (typ.name, depth)
        strategy = self._cache.get(key)
        if strategy is None:
            # deferred: a type may (through alternates) contain itself
            strategy = st.deferred(lambda: self._build(typ, depth))
            self._cache[key] = strategy
        return strategy

    def _build(self, typ: Type, depth: int) -> st.SearchStrategy[object]:
        if isinstance(typ, BuiltinType):
            return self._builtin(typ)
        if isinstance(typ, EnumType):
            return st.sampled_from(typ.member_names())
        if isinstance(typ, ArrayType):
            if depth >= self.max_depth:
                return st.just([])
            return st.lists(self.of(typ.element_type, depth + 1), max_size=3)
        if isinstance(typ, AlternateType):
            choices = [alt.type for alt in typ.alternatives]
            if depth >= self.max_depth:
                scalars = [t for t in choices if "object" not in accepted_kinds(t)]
                choices = scalars or choices
            return st.one_of([self.of(choice, depth) for choice in choices])
        assert isinstance(typ, ObjectType)
        return self._object(typ, depth).map(_as_object)

    def _builtin(self, typ: BuiltinType) -> st.SearchStrategy[object]:
        if typ.name in INTEGER_BOUNDS:
            low, high = INTEGER_BOUNDS[typ.name]
            return st.integers(low, high)
        if typ.name == "number":
            # the decoded value is a float; ints as 'number' are checked apart
            return st.floats(allow_nan=False, allow_infinity=False)
        if typ.name == "str":
            return st.text(max_size=8)
        if typ.name == "bool":
            return st.booleans()
        if typ.name == "null":
            return st.none()
        assert typ.name == "any", typ.name
        return json_values()

    def _object(
        self, typ: ObjectType, depth: int
    ) -> st.SearchStrategy[dict[str, object]]:
        if typ.variants is None:
            members = self._members(typ.members, depth, {})
            return self._with_unknown(members, known_members(typ))
        tag = typ.variants.tag_member.name
        branches: list[st.SearchStrategy[dict[str, object]]] = []
        for variant in typ.branches:
            vtype = variant.type
            assert isinstance(vtype, ObjectType)
            common = self._members(typ.members, depth, {tag: variant.name})
            own = self._object(vtype, depth)
            branches.append(st.tuples(common, own).map(_merge))
        return self._with_unknown(st.one_of(branches), known_members(typ))

    def _members(
        self, members: list[ObjectMember], depth: int, fixed: dict[str, str]
    ) -> st.SearchStrategy[dict[str, object]]:
        required: dict[str, st.SearchStrategy[object]] = {
            name: st.just(value) for name, value in fixed.items()
        }
        optional: dict[str, st.SearchStrategy[object]] = {}
        for member in members:
            if member.name in fixed:
                continue
            if not member.optional:
                required[member.name] = self.of(member.type, depth + 1)
            elif depth < self.max_depth:
                optional[member.name] = self.of(member.type, depth + 1)
        return st.fixed_dictionaries(required, optional=optional)

    def _with_unknown(
        self, members: st.SearchStrategy[dict[str, object]], known: frozenset[str]
    ) -> st.SearchStrategy[dict[str, object]]:
        if not self.unknown_members:
            return members
        extra = st.dictionaries(
            UNKNOWN_MEMBER_NAMES.filter(lambda name: name not in known),
            json_values(),
            max_size=2,
        )
        return st.tuples(members, extra).map(_merge)


def _as_object(value: dict[str, object]) -> object:
    return value


def known_members(typ: ObjectType) -> frozenset[str]:
    """Every member name an object of `typ` can have, in any branch."""
    names = {member.name for member in typ.members}
    for variant in typ.branches:
        vtype = variant.type
        assert isinstance(vtype, ObjectType)
        names |= known_members(vtype)
    return frozenset(names)


def branch_members(typ: ObjectType, value: dict[str, object]) -> list[ObjectMember]:
    """The members an object of `typ` has with the discriminator `value` carries."""
    return [member for member, _ in _members_with_omissible(typ, value, False)]


def omissible_members(typ: ObjectType, value: dict[str, object]) -> set[str]:
    """Of the members `branch_members` gives, those a peer may leave out though the
    schema requires them: under an `if` condition (their own, or their branch's) or
    deprecated."""
    return {
        member.name
        for member, omissible in _members_with_omissible(typ, value, False)
        if omissible
    }


def _members_with_omissible(
    typ: ObjectType, value: dict[str, object], conditional: bool
) -> Iterator[tuple[ObjectMember, bool]]:
    """`branch_members`, each with whether it may be left out (`conditional`: the
    branch holding `typ` is under an `if` condition)."""
    for member in typ.members:
        yield member, (
            conditional
            or member.ifcond.to_json() is not None
            or any(feature.name == "deprecated" for feature in member.features)
        )
    if typ.variants is not None:
        tag = value.get(typ.variants.tag_member.name)
        for variant in typ.branches:
            vtype = variant.type
            if variant.name == tag and isinstance(vtype, ObjectType):
                inner = conditional or variant.ifcond.to_json() is not None
                yield from _members_with_omissible(vtype, value, inner)


def alternative_for(typ: AlternateType, value: object) -> Type:
    """The alternative of `typ` a wire value selects (by its JSON kind)."""
    kind = json_kind(value)
    for alternative in typ.alternatives:
        if kind in accepted_kinds(alternative.type):
            return alternative.type
    raise ValueError(f"no alternative of {typ.name} takes a JSON {kind}")


# ---------------------------------------------------------------- the generated codec


class GeneratedCodec:
    """The generated package's decoder and encoder for each IR type.

    Generated names come from `TypeNames`, the one place the generator assigns them;
    built-ins and arrays use the runtime codec as the generated code does.
    """

    def __init__(self, schema: Schema, types_module: ModuleType) -> None:
        self.names = TypeNames(schema)
        self.module = types_module

    def decoder(self, typ: Type) -> Decoder:
        if isinstance(typ, BuiltinType):
            decode: Decoder = getattr(codec, BUILTIN_DECODERS[typ.name])
            return decode
        if isinstance(typ, ArrayType):
            return codec.array_of(self.decoder(typ.element_type))
        if isinstance(typ, AlternateType) or (
            isinstance(typ, ObjectType) and typ.variants is not None
        ):
            function: Decoder = getattr(self.module, self.names.decoders[typ.name])
            return function
        cls = getattr(self.module, self.names.classes[typ.name])
        from_wire: Decoder = cls.from_wire
        return from_wire

    def encoder(self, typ: Type) -> Encoder:
        if isinstance(typ, BuiltinType):
            # 'null' and 'any' decode a JSON null to codec.NULL (None means absent)
            return _encode_null if typ.name in ("null", "any") else _encode_scalar
        if isinstance(typ, ArrayType):
            element = self.encoder(typ.element_type)
            return lambda value: [element(item) for item in _as_list(value)]
        if isinstance(typ, EnumType):
            return _encode_enum
        if isinstance(typ, AlternateType):
            function: Encoder = getattr(self.module, self.names.encoders[typ.name])
            return function
        return _encode_object

    def round_trip(self, typ: Type, value: object, strict: bool = False) -> object:
        """`to_wire(from_wire(value))` for a value of `typ`."""
        return self.encoder(typ)(self.decoder(typ)(value, "", strict))


def _encode_null(value: object) -> object:
    return None if value is codec.NULL else value


def _encode_scalar(value: object) -> object:
    return value


def _encode_enum(value: object) -> object:
    member: object = getattr(value, "value")
    return member


def _encode_object(value: object) -> object:
    wire: object = getattr(value, "to_wire")()
    return wire


def _as_list(value: object) -> list[object]:
    assert isinstance(value, list), value
    return value


# ---------------------------------------------------------------- invalid values


@dataclass(frozen=True)
class Site:
    """A place inside a valid wire value: where it is (`location`, keys and indexes
    from the top), how the codec must name it (`path`), and its schema type.
    `alternative` marks the value of an alternate, seen as the alternative it chose."""

    location: Location
    path: str
    type: Type
    value: object
    alternative: bool = False


def mutation_sites(
    typ: Type,
    value: object,
    path: str = "",
    location: Location = (),
    alternative: bool = False,
) -> Iterator[Site]:
    """Every typed place inside `value`, a valid wire value of `typ`, outermost
    first; an alternate's value comes twice, as the alternate and as the alternative
    it chose (`alternative`)."""
    yield Site(location, path, typ, value, alternative)
    if isinstance(typ, ArrayType):
        assert isinstance(value, list)
        for position, element in enumerate(value):
            yield from mutation_sites(
                typ.element_type,
                element,
                element_path(path, position),
                location + (position,),
            )
    elif isinstance(typ, AlternateType):
        yield from mutation_sites(
            alternative_for(typ, value), value, path, location, alternative=True
        )
    elif isinstance(typ, ObjectType):
        assert isinstance(value, dict)
        for member in branch_members(typ, value):
            if member.name in value:
                yield from mutation_sites(
                    member.type,
                    value[member.name],
                    member_path(path, member.name),
                    location + (member.name,),
                )


def unknown_member_paths(typ: Type, value: object) -> set[str]:
    """The paths of the members inside `value` that the schema does not define."""
    found: set[str] = set()
    for site in mutation_sites(typ, value):
        if isinstance(site.type, ObjectType):
            assert isinstance(site.value, dict)
            known = {member.name for member in branch_members(site.type, site.value)}
            found |= {member_path(site.path, k) for k in site.value if k not in known}
    return found


@dataclass(frozen=True)
class Mutation:
    """One way to break a valid value; the codec must fail naming `path`."""

    what: str
    location: Location
    path: str
    replacement: object = None
    delete: bool = False
    strict_only: bool = False
    """Only strict decoding refuses it: a required member a peer may still leave out
    (conditional, in a conditional branch, or deprecated: see the generator's
    `Member.omissible`), which lenient decoding takes as None."""


def mutations(site: Site) -> Iterator[Mutation]:
    """The invalid values derived from one site."""
    typ = site.type
    # another JSON kind where an alternate chose this alternative may well select
    # another alternative: only the alternate's own site says what it refuses
    wrong_kinds = set() if site.alternative else ALL_KINDS - accepted_kinds(typ)
    for kind in sorted(wrong_kinds):
        yield Mutation(
            f"{kind} for {typ.name}", site.location, site.path, KIND_SAMPLES[kind]
        )
    if isinstance(typ, BuiltinType) and typ.name in INTEGER_BOUNDS:
        _low, high = INTEGER_BOUNDS[typ.name]
        for number in (REJECTED_BELOW[typ.name], high + 1):
            yield Mutation(f"{number} for {typ.name}", site.location, site.path, number)
    if isinstance(typ, ObjectType):
        assert isinstance(site.value, dict)
        omissible = omissible_members(typ, site.value)
        for member in branch_members(typ, site.value):
            if not member.optional:
                yield Mutation(
                    f"{typ.name} without {member.name}",
                    site.location + (member.name,),
                    member_path(site.path, member.name),
                    delete=True,
                    strict_only=member.name in omissible,
                )
        if typ.variants is not None:
            tag = typ.variants.tag_member.name
            yield Mutation(
                f"unknown discriminator of {typ.name}",
                site.location + (tag,),
                member_path(site.path, tag),
                "x-no-such-branch",
            )


def mutated(value: object, mutation: Mutation) -> object:
    """A deep copy of `value` with `mutation` applied."""
    if not mutation.location:
        return copy.deepcopy(mutation.replacement)
    result = copy.deepcopy(value)
    container: object = result
    for step in mutation.location[:-1]:
        container = _step(container, step)
    last = mutation.location[-1]
    if isinstance(container, dict):
        assert isinstance(last, str)
        if mutation.delete:
            del container[last]
        else:
            container[last] = copy.deepcopy(mutation.replacement)
    else:
        assert isinstance(container, list) and isinstance(last, int)
        container[last] = copy.deepcopy(mutation.replacement)
    return result


def _step(container: object, step: str | int) -> object:
    if isinstance(container, dict):
        assert isinstance(step, str)
        return container[step]
    assert isinstance(container, list) and isinstance(step, int)
    return container[step]


def named_types(schema: Schema) -> list[Type]:
    """Every type a generated package gives a codec: built-ins, enums, arrays,
    structs, unions and alternates (implicit objects are flattened into their users,
    so they are reached through commands and events instead)."""
    found: list[Type] = []
    for typ in schema.types():
        if isinstance(typ, ObjectType) and typ.is_implicit:
            continue
        if isinstance(typ, EnumType) and typ.is_builtin:
            continue  # QType: only an alternate's implicit tag
        found.append(typ)
    return found
