"""Read a `query-qmp-schema` answer into checked entries, or say where it is wrong.

The answer is a JSON array of SchemaInfo objects (QEMU's `qapi/introspect.json`): one
per entity, each with a `name` and a `meta-type` (builtin, enum, object, array,
alternate, command, event) and the keys of that meta-type. A saved file may hold the
array itself or the whole reply (`{"return": [...]}`). Every problem is reported as
`FILE: [INDEX] (META NAME): message` with the JSON path inside the entry, so a broken
file is fixed without reading this code; keys the format may gain later are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..source import QAPIError

META_TYPES = ("builtin", "enum", "object", "array", "alternate", "command", "event")


@dataclass(frozen=True, slots=True)
class InfoMember:
    """An object member: `optional` when SchemaInfo gives it a `default` (always
    null: "optional, behavior when missing not specified")."""

    name: str
    type: str
    optional: bool = False
    features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InfoEnumValue:
    name: str
    features: tuple[str, ...] = ()


@dataclass(slots=True)
class InfoEntity:
    """One SchemaInfo entry; the fields its meta-type does not use stay empty."""

    index: int
    name: str
    meta: str
    features: tuple[str, ...] = ()
    json_type: str = ""  # builtin
    values: tuple[InfoEnumValue, ...] = ()  # enum
    members: tuple[InfoMember, ...] = ()  # object
    tag: str | None = None  # object (a union)
    variants: tuple[tuple[str, str], ...] = ()  # object: (case, type)
    element_type: str = ""  # array
    alternatives: tuple[str, ...] = ()  # alternate: member types
    arg_type: str = ""  # command, event
    ret_type: str = ""  # command
    allow_oob: bool = False  # command
    references: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"[{self.index}] ({self.meta} '{self.name}')"


class _Entry:
    """Checks the keys of one entry, naming the entry and the key in every error."""

    def __init__(self, fname: str, index: int, raw: dict[str, object]) -> None:
        self.fname = fname
        self.index = index
        self.raw = raw
        name = raw.get("name")
        meta = raw.get("meta-type")
        self.where = f"{fname}: [{index}]"
        if isinstance(name, str) and isinstance(meta, str):
            self.where += f" ({meta} '{name}')"

    def error(self, path: str, message: str) -> QAPIError:
        return QAPIError(None, f"{self.where}: {path}: {message}")

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, got {_kind(value)}")
        if not value:
            raise self.error(path, "expected a name, got an empty string")
        return value

    def required(self, key: str) -> object:
        if key not in self.raw:
            raise self.error(key, "missing (required for this meta-type)")
        return self.raw[key]

    def array(self, value: object, path: str) -> list[object]:
        if not isinstance(value, list):
            raise self.error(path, f"expected an array, got {_kind(value)}")
        return value

    def obj(self, value: object, path: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected an object, got {_kind(value)}")
        return value

    def features(self, raw: dict[str, object], path: str) -> tuple[str, ...]:
        if "features" not in raw:
            return ()
        items = self.array(raw["features"], f"{path}features")
        return tuple(
            self.string(item, f"{path}features[{i}]") for i, item in enumerate(items)
        )

    def unique(self, names: list[str], path: str, what: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise self.error(f"{path}[{i}]", f"{what} '{name}' appears twice")
            seen.add(name)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _read_entity(entry: _Entry) -> InfoEntity:
    raw = entry.raw
    name = entry.string(entry.required("name"), "name")
    meta = entry.string(entry.required("meta-type"), "meta-type")
    if meta not in META_TYPES:
        raise entry.error("meta-type", f"'{meta}' is none of {', '.join(META_TYPES)}")
    entity = InfoEntity(entry.index, name, meta, entry.features(raw, ""))
    refs = entity.references
    if meta == "builtin":
        entity.json_type = entry.string(entry.required("json-type"), "json-type")
    elif meta == "enum":
        entity.values = _enum_values(entry)
    elif meta == "object":
        _read_object(entry, entity)
    elif meta == "array":
        entity.element_type = entry.string(
            entry.required("element-type"), "element-type"
        )
        refs.append(entity.element_type)
    elif meta == "alternate":
        members = entry.array(entry.required("members"), "members")
        types = []
        for i, item in enumerate(members):
            member = entry.obj(item, f"members[{i}]")
            types.append(entry.string(member.get("type"), f"members[{i}].type"))
        if not types:
            raise entry.error("members", "an alternate needs at least one member")
        entity.alternatives = tuple(types)
        refs.extend(types)
    elif meta == "command":
        entity.arg_type = entry.string(entry.required("arg-type"), "arg-type")
        entity.ret_type = entry.string(entry.required("ret-type"), "ret-type")
        oob = raw.get("allow-oob", False)
        if not isinstance(oob, bool):
            raise entry.error("allow-oob", f"expected a boolean, got {_kind(oob)}")
        entity.allow_oob = oob
        refs.extend([entity.arg_type, entity.ret_type])
    else:  # event
        entity.arg_type = entry.string(entry.required("arg-type"), "arg-type")
        refs.append(entity.arg_type)
    return entity


def _enum_values(entry: _Entry) -> tuple[InfoEnumValue, ...]:
    """`members` (QEMU 6.0 on, with features) or else `values` (QEMU 5.x)."""
    if "members" in entry.raw:
        items = entry.array(entry.raw["members"], "members")
        values = []
        for i, item in enumerate(items):
            member = entry.obj(item, f"members[{i}]")
            values.append(
                InfoEnumValue(
                    entry.string(member.get("name"), f"members[{i}].name"),
                    entry.features(member, f"members[{i}]."),
                )
            )
    else:
        items = entry.array(entry.required("values"), "values")
        values = [
            InfoEnumValue(entry.string(item, f"values[{i}]"))
            for i, item in enumerate(items)
        ]
    entry.unique([v.name for v in values], "members", "value")
    return tuple(values)


def _read_object(entry: _Entry, entity: InfoEntity) -> None:
    items = entry.array(entry.required("members"), "members")
    members = []
    for i, item in enumerate(items):
        path = f"members[{i}]"
        raw = entry.obj(item, path)
        members.append(
            InfoMember(
                entry.string(raw.get("name"), f"{path}.name"),
                entry.string(raw.get("type"), f"{path}.type"),
                "default" in raw,
                entry.features(raw, f"{path}."),
            )
        )
    entry.unique([m.name for m in members], "members", "member")
    entity.members = tuple(members)
    entity.references.extend(m.type for m in members)
    if "tag" not in entry.raw:
        if "variants" in entry.raw:
            raise entry.error("variants", "variants without a 'tag'")
        return
    tag = entry.string(entry.raw["tag"], "tag")
    if tag not in [m.name for m in members]:
        raise entry.error("tag", f"'{tag}' is not one of the object's members")
    entity.tag = tag
    variants = []
    for i, item in enumerate(entry.array(entry.required("variants"), "variants")):
        raw = entry.obj(item, f"variants[{i}]")
        variants.append(
            (
                entry.string(raw.get("case"), f"variants[{i}].case"),
                entry.string(raw.get("type"), f"variants[{i}].type"),
            )
        )
    entry.unique([case for case, _ in variants], "variants", "case")
    entity.variants = tuple(variants)
    entity.references.extend(t for _, t in variants)


def read_entities(data: object, fname: str) -> list[InfoEntity]:
    """The checked entries of a decoded answer (the array, or `{"return": array}`):
    every reference resolves, names are unique, and each kind of reference goes to
    the meta-type it must (an array's element is no command, a union's tag is an
    enum, a command's arguments an object...)."""
    if isinstance(data, dict) and "return" in data:
        data = data["return"]
    if not isinstance(data, list):
        raise QAPIError(
            None,
            f"{fname}: expected the query-qmp-schema answer: a JSON array of"
            f' SchemaInfo objects, or a reply {{"return": [...]}}; got {_kind(data)}',
        )
    entities: list[InfoEntity] = []
    by_name: dict[str, InfoEntity] = {}
    for index, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise QAPIError(
                None, f"{fname}: [{index}]: expected an object, got {_kind(raw)}"
            )
        entity = _read_entity(_Entry(fname, index, raw))
        if entity.name in by_name:
            first = by_name[entity.name]
            raise QAPIError(
                None,
                f"{fname}: {entity.describe()}: name already used by {first.describe()}",
            )
        by_name[entity.name] = entity
        entities.append(entity)
    for entity in entities:
        _check_references(entity, by_name, fname)
    return entities


_TYPE_METAS = ("builtin", "enum", "object", "array", "alternate")
_ELEMENT_METAS = ("builtin", "enum", "object", "alternate")  # no arrays of arrays


def _check_references(
    entity: InfoEntity, by_name: dict[str, InfoEntity], fname: str
) -> None:
    def target(name: str, path: str, metas: tuple[str, ...]) -> InfoEntity:
        found = by_name.get(name)
        if found is None:
            raise QAPIError(
                None, f"{fname}: {entity.describe()}: {path}: no entry named '{name}'"
            )
        if found.meta not in metas:
            raise QAPIError(
                None,
                f"{fname}: {entity.describe()}: {path}: '{name}' is {found.meta},"
                f" expected {' or '.join(metas)}",
            )
        return found

    if entity.meta == "array":
        target(entity.element_type, "element-type", _ELEMENT_METAS)
    elif entity.meta == "object":
        for i, member in enumerate(entity.members):
            found = target(member.type, f"members[{i}].type", _TYPE_METAS)
            if member.name == entity.tag and found.meta != "enum":
                raise QAPIError(
                    None,
                    f"{fname}: {entity.describe()}: tag '{member.name}' has type"
                    f" '{member.type}', a {found.meta}; a tag must be an enum",
                )
        for i, (case, type_name) in enumerate(entity.variants):
            target(type_name, f"variants[{i}].type", ("object",))
            tag_type = by_name[
                next(m.type for m in entity.members if m.name == entity.tag)
            ]
            if case not in [v.name for v in tag_type.values]:
                raise QAPIError(
                    None,
                    f"{fname}: {entity.describe()}: variants[{i}].case: '{case}' is"
                    f" not a value of the tag's enum '{tag_type.name}'",
                )
    elif entity.meta == "alternate":
        for i, type_name in enumerate(entity.alternatives):
            target(type_name, f"members[{i}].type", _TYPE_METAS)
    elif entity.meta in ("command", "event"):
        target(entity.arg_type, "arg-type", ("object",))
        if entity.meta == "command":
            target(entity.ret_type, "ret-type", _TYPE_METAS)


def load_reply(path: str, shown: str) -> list[InfoEntity]:
    """The checked entries of the saved answer in file `path` (named `shown` in
    messages). OSError when it cannot be read; QAPIError for bad JSON or content."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        decoded = json.loads(data)
    except UnicodeDecodeError as error:
        raise QAPIError(None, f"{shown}: not UTF-8 text: {error.reason}") from None
    except json.JSONDecodeError as error:
        raise QAPIError(
            None, f"{shown}:{error.lineno}:{error.colno}: not JSON: {error.msg}"
        ) from None
    return read_entities(decoded, shown)
