"""Reading one side's SchemaInfo list: entries checked and indexed, types reduced to
what the comparison looks at, and how to describe them in messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PACKAGE = "the package"
LIVE = "the live QEMU"


class SchemaFormatError(ValueError):
    """A SchemaInfo list that is not well formed; the message says where."""


@dataclass(frozen=True, slots=True)
class MemberEntry:
    name: str
    type: str
    optional: bool
    features: frozenset[str]


@dataclass(frozen=True, slots=True)
class TypeEntry:
    """One SchemaInfo type entry, checked and reduced to what the walk compares."""

    name: str
    meta: str  # builtin, enum, object, array, alternate
    json_type: str = ""  # builtins only
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)  # enum
    members: Mapping[str, MemberEntry] = field(default_factory=dict)  # object
    tag: str | None = None
    variants: Mapping[str, str] = field(default_factory=dict)  # case -> type
    element: str = ""  # array
    alternatives: tuple[str, ...] = ()  # alternate branch types
    features: frozenset[str] = frozenset()


TYPE_METAS = frozenset({"builtin", "enum", "object", "array", "alternate"})


class Side:
    """One schema (the package's or the live QEMU's), indexed by name."""

    def __init__(self, label: str, entries: Sequence[Mapping[str, object]]) -> None:
        self.label = label
        self.entries: dict[str, Mapping[str, object]] = {}
        self.positions: dict[str, int] = {}
        self.commands: dict[str, Mapping[str, object]] = {}
        self.events: dict[str, Mapping[str, object]] = {}
        self._types: dict[str, TypeEntry] = {}
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
            raise SchemaFormatError(
                f"{label}'s schema: expected a list of SchemaInfo objects, "
                f"got {type(entries).__name__}"
            )
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise SchemaFormatError(
                    f"{label}'s schema, entry #{index}: expected an object, "
                    f"got {type(entry).__name__}"
                )
            name = entry.get("name")
            meta = entry.get("meta-type")
            if not isinstance(name, str) or not name:
                raise SchemaFormatError(
                    f"{label}'s schema, entry #{index}: 'name' is missing or not a "
                    "non-empty string"
                )
            if not isinstance(meta, str):
                raise SchemaFormatError(
                    f"{label}'s schema, entry #{index} ({name!r}): 'meta-type' is "
                    "missing or not a string"
                )
            if name in self.entries:
                raise SchemaFormatError(
                    f"{label}'s schema, entry #{index}: {name!r} is defined twice "
                    f"(first as entry #{self.positions[name]})"
                )
            self.entries[name] = entry
            self.positions[name] = index
            if meta == "command":
                self.commands[name] = entry
            elif meta == "event":
                self.events[name] = entry
            elif meta not in TYPE_METAS:
                raise SchemaFormatError(
                    f"{label}'s schema, entry #{index} ({name!r}): unknown "
                    f"meta-type {meta!r}"
                )

    def shows_deprecated(self) -> bool:
        """Whether any command, event or object member carries the deprecated
        feature (a QEMU run with -compat deprecated-output=hide shows none)."""
        for name, entry in self.entries.items():
            meta = entry["meta-type"]
            if meta in ("command", "event") and "deprecated" in self.features(name):
                return True
            if meta == "object" and any(
                "deprecated" in member.features
                for member in self.type(name, name).members.values()
            ):
                return True
        return False

    def _where(self, name: str) -> str:
        return f"{self.label}'s schema, entry #{self.positions[name]} ({name!r})"

    def text(self, name: str, key: str, *, required: bool = True) -> str | None:
        """String member `key` of entry `name` (None when absent and optional)."""
        value = self.entries[name].get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise SchemaFormatError(
                f"{self._where(name)}: {key!r} is missing or not a string"
            )
        return value

    def flag(self, name: str, key: str) -> bool:
        value = self.entries[name].get(key, False)
        if not isinstance(value, bool):
            raise SchemaFormatError(f"{self._where(name)}: {key!r} is not a boolean")
        return value

    def _strings(self, value: object, where: str, key: str) -> frozenset[str]:
        if value is None:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SchemaFormatError(f"{where}: {key!r} is not a list of strings")
        return frozenset(value)

    def features(self, name: str) -> frozenset[str]:
        return self._strings(
            self.entries[name].get("features"), self._where(name), "features"
        )

    def _objects(self, name: str, key: str) -> list[Mapping[str, object]]:
        value = self.entries[name].get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(item, Mapping) for item in value
        ):
            raise SchemaFormatError(
                f"{self._where(name)}: {key!r} is not a list of objects"
            )
        return value

    def _item_text(
        self,
        name: str,
        key: str,
        index: int,
        item: Mapping[str, object],
        field_name: str,
    ) -> str:
        value = item.get(field_name)
        if not isinstance(value, str):
            raise SchemaFormatError(
                f"{self._where(name)}: {key}[{index}] has no string {field_name!r}"
            )
        return value

    def type(self, name: str, used_at: str) -> TypeEntry:
        """Type entry `name`, checked; SchemaFormatError names `used_at` if absent."""
        cached = self._types.get(name)
        if cached is not None:
            return cached
        entry = self.entries.get(name)
        if entry is None:
            raise SchemaFormatError(
                f"{self.label}'s schema: type {name!r}, used at {used_at}, "
                "is not defined"
            )
        meta = entry["meta-type"]
        if meta not in TYPE_METAS:
            raise SchemaFormatError(
                f"{self._where(name)}: used as a type at {used_at}, but it is a "
                f"{meta}"
            )
        assert isinstance(meta, str)
        parsed = self._parse(name, meta)
        self._types[name] = parsed
        return parsed

    def _parse(self, name: str, meta: str) -> TypeEntry:
        features = self.features(name)
        if meta == "builtin":
            json_type = self.text(name, "json-type")
            assert json_type is not None
            return TypeEntry(name, meta, json_type=json_type, features=features)
        if meta == "array":
            element = self.text(name, "element-type")
            assert element is not None
            return TypeEntry(name, meta, element=element, features=features)
        if meta == "enum":
            return TypeEntry(
                name, meta, values=self._enum_values(name), features=features
            )
        if meta == "alternate":
            items = self._objects(name, "members")
            alternatives = tuple(
                self._item_text(name, "members", i, item, "type")
                for i, item in enumerate(items)
            )
            return TypeEntry(name, meta, alternatives=alternatives, features=features)
        members: dict[str, MemberEntry] = {}
        for i, item in enumerate(self._objects(name, "members")):
            member_name = self._item_text(name, "members", i, item, "name")
            members[member_name] = MemberEntry(
                member_name,
                self._item_text(name, "members", i, item, "type"),
                "default" in item,  # optional exactly when "default" is present
                self._strings(
                    item.get("features"), self._where(name), f"members[{i}].features"
                ),
            )
        variants = {
            self._item_text(name, "variants", i, item, "case"): self._item_text(
                name, "variants", i, item, "type"
            )
            for i, item in enumerate(self._objects(name, "variants"))
        }
        tag = self.text(name, "tag", required=False)
        return TypeEntry(
            name,
            meta,
            members=members,
            tag=tag,
            variants=variants,
            features=features,
        )

    def _enum_values(self, name: str) -> dict[str, frozenset[str]]:
        """Values with their features: QEMU 6.2+ lists ``members`` (with features)
        next to the older ``values``; either may be the only one present."""
        values: dict[str, frozenset[str]] = {}
        listed = self.entries[name].get("values")
        if listed is not None:
            for value in self._strings(listed, self._where(name), "values"):
                values[value] = frozenset()
        for i, item in enumerate(self._objects(name, "members")):
            value = self._item_text(name, "members", i, item, "name")
            values[value] = self._strings(
                item.get("features"), self._where(name), f"members[{i}].features"
            )
        return values


def masked(name: str) -> bool:
    """QEMU's masked type names are numbers (arrays of them are ``[123]``)."""
    return name.strip("[]").isdigit()


def describe(side: Side, typ: TypeEntry, depth: int = 0) -> str:
    """A type for messages: its name when the side shows one, else its shape."""
    if typ.meta == "builtin":
        return typ.name
    if typ.meta == "array":
        if depth > 3:
            return "an array"
        element = side.type(typ.element, typ.name)
        return f"array of {describe(side, element, depth + 1)}"
    if not masked(typ.name):
        return f"{typ.meta} {typ.name}"
    if typ.meta == "alternate" and depth <= 3:
        kinds = "|".join(wire_kind(side.type(t, typ.name)) for t in typ.alternatives)
        return f"an alternate ({kinds})"
    return f"an {typ.meta}" if typ.meta[0] in "aeiou" else f"a {typ.meta}"


def wire_kind(typ: TypeEntry) -> str:
    """The JSON kind of a type's values, which alternates dispatch on."""
    if typ.meta == "builtin":
        return {"int": "number", "value": "any"}.get(typ.json_type, typ.json_type)
    if typ.meta == "enum":
        return "string"
    return typ.meta


def accepts_builtin(receiver: str, sender: str) -> bool:
    """Whether every value of JSON type `sender` is valid for `receiver`."""
    return receiver in (sender, "value") or (receiver == "number" and sender == "int")
