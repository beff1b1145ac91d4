"""Run-time helpers the generated per-type codecs call.

Nothing here inspects a generated class: each generated `from_wire` spells out its own
members and calls these small checks with the JSON path it is at, so a failure reads
``ram.normal-bytes: expected int, got str``. The same failure also knows how QEMU would
word it for a client that sent bad arguments (`DecodeError.qmp_message`), because a
server built on a generated dispatcher must answer like QEMU does.

Two modes: a client decoding replies and events is *lenient* (members and enum values a
newer QEMU sends are kept, not fatal); a server decoding arguments is *strict* (unknown
members and enum values are rejected, as QEMU's input visitor does).
"""

from __future__ import annotations

import enum
import os
import warnings
from collections.abc import Callable, Collection, Mapping
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from typing import Final, NamedTuple, TypeVar

JSONObject = dict[str, object]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
S = TypeVar("S", bound=enum.StrEnum)

# What every generated and built-in decoder looks like: (wire value, JSON path, strict).
Decoder = Callable[[object, str, bool], T]

# The JSON kind of a Python wire value, as the error messages name it.
_KIND_NAMES: Final = {
    bool: "bool",
    int: "int",
    float: "number",
    str: "str",
    dict: "object",
    list: "array",
    type(None): "null",
}

# How QEMU names the expected JSON type in "Invalid parameter type" errors.
_QMP_KIND_NAMES: Final = {
    "int": "integer",
    "number": "number",
    "str": "string",
    "bool": "boolean",
    "object": "object",
    "array": "array",
    "null": "null",
}

# Inclusive ranges of QAPI's integer types; 'size' is an unsigned 64-bit byte count.
INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    "int": (-(2**63), 2**63 - 1),
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "size": (0, 2**64 - 1),
}


def kind_of(value: object) -> str:
    return _KIND_NAMES.get(type(value), type(value).__name__)


class Null(enum.Enum):
    """JSON null where the schema allows it as a value (the 'null' built-in, e.g. in
    StrOrNull). Distinct from None, which means "member absent"."""

    NULL = "null"

    def __repr__(self) -> str:
        return "NULL"


NULL: Final = Null.NULL


class DecodeError(ValueError):
    """A wire value does not match the schema.

    `path` is the JSON path (``ram.normal-bytes``, ``capabilities[0].state``; empty for
    the top-level value). `kind` is one of: "type", "missing", "unexpected", "range"
    (named by `leaf`), "range-path" (named by `path`), "enum"; `expected` what QEMU
    says was wanted: a JSON kind, a QAPI type or, for a "range" fault, a C type
    ("uint8_t"). `leaf` is the member name alone ("null" for an array element): QEMU
    names range and enum faults that way, the others by full path.
    """

    def __init__(
        self, path: str, kind: str, message: str, expected: str = "", value: str = ""
    ) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.kind = kind
        self.message = message
        self.expected = expected
        self.value = value
        self.leaf: str | None = None

    def qmp_message(self) -> str:
        """The error text QEMU's QMP server gives for the same fault in arguments."""
        name = self.path or "null"
        leaf = self.leaf or name
        if self.kind == "policy":
            return self.message
        if self.kind == "missing":
            return f"Parameter '{name}' is missing"
        if self.kind == "unexpected":
            return f"Parameter '{name}' is unexpected"
        if self.kind == "range":
            return f"Parameter '{leaf}' expects {self.expected}"
        if self.kind == "range-path":
            return f"Parameter '{name}' expects {self.expected}"
        if self.kind == "enum":
            return f"Parameter '{leaf}' does not accept value '{self.value}'"
        expected = _QMP_KIND_NAMES.get(self.expected, self.expected)
        return f"Invalid parameter type for '{name}', expected: {expected}"


# A member or enum value a server's `-compat` input policy refuses: the word its
# messages name the feature with ("Deprecated", "Unstable"), and whether the policy
# crashes the server (QEMU aborts) rather than rejects the command.
Refusal = tuple[str, bool]

_NO_REFUSALS: Final[Mapping[str, Mapping[str, Refusal]]] = {}
_NO_MEMBER_REFUSALS: Final[Mapping[str, Refusal]] = {}


class Disabled(NamedTuple):
    """What a server refuses, by generated class name. `members` of objects and
    `values` of enums that its `if` condition symbols leave out (`arguments`: those of
    the command being decoded): strict decoding refuses them as QEMU built without
    them would (as unexpected members, as values it does not accept) and no longer
    requires them. `refused_members` and `refused_values`: what its `-compat` input
    policy refuses (see `qapigen_runtime.bindings.policy`). While a dispatcher
    decodes arguments it sets `DISABLED`."""

    members: Mapping[str, frozenset[str]]
    values: Mapping[str, frozenset[str]]
    arguments: frozenset[str] = frozenset()
    refused_members: Mapping[str, Mapping[str, Refusal]] = _NO_REFUSALS
    refused_values: Mapping[str, Mapping[str, Refusal]] = _NO_REFUSALS


DISABLED: ContextVar[Disabled | None] = ContextVar("qapigen_disabled", default=None)

HIDDEN: ContextVar[Mapping[str, frozenset[str]] | None] = ContextVar(
    "qapigen_hidden", default=None
)
"""The members a server's `-compat` output policy leaves out of what it sends, by
generated class name; set by a dispatcher while it encodes a reply."""


def hide_members(wire: JSONObject, owner: str) -> None:
    """Leave out of `wire` (an object of class `owner`, encoded) the members the
    server's output policy hides; generated `to_wire` of classes with deprecated or
    unstable members calls it."""
    hidden = HIDDEN.get()
    if hidden is not None:
        for member in hidden.get(owner, ()):
            wire.pop(member, None)


def refuse(kind: str, name: str, path: str, refusal: Refusal) -> DecodeError:
    """The fault of a `kind` ("parameter", "value") the input policy refuses; when
    the policy is ``crash``, the process aborts instead, as QEMU does."""
    word, crashes = refusal
    if crashes:
        os.abort()
    message = f"{word} {kind} {name} disabled by policy"
    error = DecodeError(path, "policy", message, value=name)
    error.leaf = name
    return error


def refuse_member(
    data: JSONObject, member: str, path: str, owner: str, required: bool = False
) -> None:
    """Strict decoding reaches `member` of class `owner` (no `owner`: a command's
    argument): when the server's `-compat` input policy refuses it, refuse it (or
    abort) now, before the members after it are decoded, as QEMU's input visitor
    does. An optional member only when it is present; a `required` one whether or
    not it is, as QEMU asks its policy before it looks for a required member (unless
    the server's build lacks it: QEMU's visitor then has no such member at all)."""
    limits = DISABLED.get()
    if limits is None:
        return
    if member not in data and (not required or member in _disabled_in(limits, owner)):
        return
    refusal = limits.refused_members.get(owner, _NO_MEMBER_REFUSALS).get(member)
    if refusal is not None:
        raise refuse("parameter", member, at(path, member), refusal)


def at(path: str, member: str) -> str:
    """The path of `member` inside the object at `path`."""
    return f"{path}.{member}" if path else member


def index(path: str, position: int) -> str:
    return f"{path}[{position}]"


def _type_error(value: object, path: str, expected: str) -> DecodeError:
    return DecodeError(
        path, "type", f"expected {expected}, got {kind_of(value)}", expected
    )


# The decoders of JSON kinds and built-in types. All share the (value, path, strict)
# signature of generated decoders so they compose (`array_of`, `required`); `strict`
# matters only to enums and objects.


def object_(value: object, path: str = "", strict: bool = False) -> JSONObject:
    if type(value) is not dict:
        raise _type_error(value, path, "object")
    return value


def array(value: object, path: str = "", strict: bool = False) -> list[object]:
    if type(value) is not list:
        raise _type_error(value, path, "array")
    return value


def string(value: object, path: str = "", strict: bool = False) -> str:
    if type(value) is not str:
        raise _type_error(value, path, "str")
    return value


def boolean(value: object, path: str = "", strict: bool = False) -> bool:
    if type(value) is not bool:
        raise _type_error(value, path, "bool")
    return value


def number(value: object, path: str = "", strict: bool = False) -> float:
    """QAPI 'number' accepts any JSON number; the value is a float."""
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _type_error(value, path, "number")


def integer(value: object, path: str, qapi_type: str) -> int:
    """A JSON integer within the range of `qapi_type` (int8 … uint64, size).

    Faults are classified as QEMU 7.2's input visitor words them. It reads every
    signed type through int64 and every unsigned one (and 'size') through uint64, and
    only then checks a narrower type's range. So what the 64-bit reader refuses names
    the full path (signed: a type error, "expected: integer"; unsigned: "expects
    uint64"), and a narrow range fault names the member alone and the C type ("expects
    uint8_t"). Like QEMU, the uint64 reader takes a negative int64 as its two's
    complement: -1 is a valid uint64 and size, and an out-of-range uint8.

    The client-side message (``str(error)``) says what the value is in the QAPI
    type's terms ("expected int, got str", "300 is out of range for uint8").
    """
    if qapi_type in _UNSIGNED:
        return _unsigned(value, path, qapi_type)
    if type(value) is not int:
        raise _type_error(value, path, "int")
    low, high = INT_RANGES[qapi_type]
    if not low <= value <= high:
        wide = qapi_type in ("int", "int64") or not _fits("int64", value)
        named = "int" if qapi_type == "int64" else qapi_type
        if wide:  # the int64 reader refuses it
            raise _out_of_range(value, path, named, "type", "int")
        raise _out_of_range(value, path, named, "range", _C_TYPES[qapi_type])
    return value


def _unsigned(value: object, path: str, qapi_type: str) -> int:
    """`integer` for the types QEMU reads through its uint64 reader."""
    if type(value) is not int:
        # what clients have always been told, though QEMU names uint64 (below)
        said = qapi_type if qapi_type in ("uint64", "size") else "int"
        raise DecodeError(
            path, "range-path", f"expected {said}, got {kind_of(value)}", "uint64"
        )
    number = value + 2**64 if _fits("int64", value) and value < 0 else value
    if not _fits("uint64", number):
        raise _out_of_range(value, path, qapi_type, "range-path", "uint64")
    if not _fits(qapi_type, number):
        raise _out_of_range(value, path, qapi_type, "range", _C_TYPES[qapi_type])
    return number


def _fits(qapi_type: str, number: int) -> bool:
    low, high = INT_RANGES[qapi_type]
    return low <= number <= high


# The types QEMU reads through its uint64 reader, which accepts negative numbers.
_UNSIGNED: Final = frozenset({"uint8", "uint16", "uint32", "uint64", "size"})

# How QEMU names the narrow integer types in its range errors: by their C type.
_C_TYPES: Final = {
    "int8": "int8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "uint8": "uint8_t",
    "uint16": "uint16_t",
    "uint32": "uint32_t",
}


def _out_of_range(
    value: int, path: str, qapi_type: str, kind: str, qmp_expected: str
) -> DecodeError:
    """A JSON integer outside `qapi_type`; `kind` and `qmp_expected` say how QEMU
    words it (see `DecodeError.qmp_message`)."""
    message = f"{value} is out of range for {qapi_type}"
    return DecodeError(path, kind, message, qmp_expected)


def null(value: object, path: str = "", strict: bool = False) -> Null:
    if value is not None:
        raise _type_error(value, path, "null")
    return NULL


def any_value(value: object, path: str = "", strict: bool = False) -> object:
    """QAPI 'any': any JSON value, kept as it is, except that a JSON null is `NULL` (so
    an optional 'any' member that is absent, None, differs from one that is null)."""
    return NULL if value is None else value


def any_wire(value: object) -> object:
    """The wire form of an 'any' value: `NULL` back to JSON null."""
    return None if value is NULL else value


def int_(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "int")


def int8(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "int8")


def int16(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "int16")


def int32(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "int32")


def int64(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "int64")


def uint8(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "uint8")


def uint16(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "uint16")


def uint32(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "uint32")


def uint64(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "uint64")


def size(value: object, path: str = "", strict: bool = False) -> int:
    return integer(value, path, "size")


def array_of(decode: Decoder[T]) -> Decoder[list[T]]:
    """The decoder of a JSON array whose elements `decode` reads."""

    def decode_array(value: object, path: str = "", strict: bool = False) -> list[T]:
        try:
            return [
                decode(element, index(path, position), strict)
                for position, element in enumerate(array(value, path))
            ]
        except DecodeError as error:
            if error.leaf is None and error.path != path:
                error.leaf = "null"  # QEMU passes no name for list elements
            raise

    return decode_array


def decode(
    decoder: Decoder[T], value: object, path: str = "", strict: bool = False
) -> T:
    """`decoder` applied to `value`: how generated code calls a decoder it builds
    (``decode(array_of(X.from_wire), value)``) rather than calling the built one."""
    return decoder(value, path, strict)


def required(
    data: JSONObject, member: str, path: str, strict: bool, decode: Decoder[T]
) -> T:
    """A required member, decoded; a "missing" error names its path."""
    try:
        value = data[member]
    except KeyError:
        raise _member_fault(path, member, "missing", "missing member") from None
    try:
        return decode(value, at(path, member), strict)
    except DecodeError as error:
        _name_leaf(error, member)
        raise


def omissible(
    data: JSONObject,
    member: str,
    path: str,
    strict: bool,
    decode: Decoder[T],
    owner: str | None,
) -> T | None:
    """A member the schema requires that a server may still leave out: one under an
    `if` condition (QEMU built without it has no such member) or a deprecated one
    (``-compat deprecated-output=hide`` drops it). Decoding a peer's reply or event
    (lenient) takes its absence as None. Strict decoding (a server reading
    arguments) requires it, as QEMU's input visitor does, unless it is conditional
    (`owner` not None: the class holding it, ``""`` for a command's arguments) and
    the server's conditions leave it out."""
    if member in data:
        try:
            return decode(data[member], at(path, member), strict)
        except DecodeError as error:
            _name_leaf(error, member)
            raise
    if strict:
        limits = DISABLED.get()
        if owner is None or limits is None or member not in _disabled_in(limits, owner):
            raise _member_fault(path, member, "missing", "missing member")
    return None


def _disabled_in(limits: Disabled, owner: str) -> frozenset[str]:
    if owner == "":
        return limits.arguments
    return limits.members.get(owner, frozenset())


def optional(
    data: JSONObject, member: str, path: str, strict: bool, decode: Decoder[T]
) -> T | None:
    """An optional member, decoded, or None when absent."""
    if member not in data:
        return None
    try:
        return decode(data[member], at(path, member), strict)
    except DecodeError as error:
        _name_leaf(error, member)
        raise


def _member_fault(path: str, member: str, kind: str, message: str) -> DecodeError:
    """A fault of member `member` itself (missing, unexpected): its leaf is known
    here, so an enclosing object's decoder does not name it after itself."""
    error = DecodeError(at(path, member), kind, message)
    error.leaf = member
    return error


def _name_leaf(error: DecodeError, member: str) -> None:
    if error.leaf is None:
        error.leaf = member


def enum_value(cls: type[E], value: object, path: str, strict: bool) -> E:
    """A value of the generated enum `cls`. Lenient mode keeps a value the schema does
    not know (a newer QEMU's) as a pseudo-member; strict mode rejects it as QEMU does.
    """
    if type(value) is not str:
        raise _type_error(value, path, "str")
    member = cls._value2member_map_.get(value)
    if member is not None and not strict:
        return member  # type: ignore[return-value]
    if member is not None and cls._member_map_.get(member.name) is member:
        # strict: a value the schema defines, unless the server's conditions drop it
        # or its policy refuses it
        limits = DISABLED.get()
        if limits is None:
            return member  # type: ignore[return-value]
        if value not in limits.values.get(cls.__name__, ()):
            refusal = limits.refused_values.get(cls.__name__, {}).get(value)
            if refusal is not None:
                raise refuse("value", value, path, refusal)
            return member  # type: ignore[return-value]
    if strict:
        raise DecodeError(
            path, "enum", f"'{value}' is not a value of {cls.__name__}", "str", value
        )
    return cls(value)


NO_MEMBERS: Final[frozenset[str]] = frozenset()
"""The members of an object that has none (what an argument-less command takes)."""


def extra_members(
    data: JSONObject,
    known: AbstractSet[str],
    path: str,
    strict: bool,
    owner: str = "",
) -> JSONObject:
    """Members the schema does not define. Lenient mode returns them so the object
    round-trips; strict mode rejects the first one, as QEMU rejects unknown arguments
    (and members of class `owner`, or with no `owner` the command's arguments, that
    the server's conditions leave out)."""
    limits = DISABLED.get() if strict else None
    if limits is not None:
        # after the members were decoded, as QEMU's visitor finds leftovers last
        for member in _disabled_in(limits, owner):
            if member in data:
                raise _member_fault(path, member, "unexpected", "unexpected member")
    if len(data) <= len(known) and known >= data.keys():
        return {}
    unknown = {key: value for key, value in data.items() if key not in known}
    if strict:
        first = next(iter(unknown))
        raise _member_fault(path, first, "unexpected", "unexpected member")
    return unknown


# Unknown values remembered per enum (beyond that, equal but not identical objects).
MAX_PSEUDO_MEMBERS: Final = 256


def open_enum_missing(cls: type[S], value: object) -> S | None:
    """`_missing_` of generated enums: a str the schema does not list becomes a
    pseudo-member (cached, so `is` comparisons keep working)."""
    if not isinstance(value, str):
        return None
    pseudo = str.__new__(cls, value)
    pseudo._name_ = value.upper().replace("-", "_")
    pseudo._value_ = value
    # Cache it so the same value decodes to the same object; it is not listed in
    # iteration over the enum, which names only what the schema defines. The cache is
    # bounded: a peer sending endless new values must not grow it without limit.
    if len(cls._value2member_map_) - len(cls._member_map_) >= MAX_PSEUDO_MEMBERS:
        return pseudo
    return cls._value2member_map_.setdefault(value, pseudo)  # type: ignore[return-value]


def warn_deprecated_values(
    value: object, deprecated: Collection[enum.Enum], where: str, stacklevel: int
) -> None:
    """Warn (DeprecationWarning) about each enum value the schema deprecates that
    `value` holds: an enum member, a list of them, or an alternate's value. `where`
    says what holds it ("argument 'mode' of QMP command 'x'"); `stacklevel` counts
    from the caller, as for `warnings.warn`, so the warning names the program line
    that handed the value over (and Python shows it once per such line).

    Generated code calls this only where a program supplies values (struct
    constructors, client command arguments): decoding never warns."""
    for item in value if type(value) is list else (value,):
        # by identity: a str equal to a value (an alternate's str branch), or another
        # enum's member of the same spelling, is not that value
        if isinstance(item, enum.Enum) and any(item is d for d in deprecated):
            warnings.warn(
                f"value '{item.value}' of {where} is deprecated",
                DeprecationWarning,
                stacklevel=stacklevel + 1,
            )
