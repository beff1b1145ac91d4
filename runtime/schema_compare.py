"""Compare a live QEMU's ``query-qmp-schema`` answer with what a package was built from.

Both inputs are lists of SchemaInfo objects (QEMU's introspection format). QEMU hides
the names of non-built-in types behind numbers ("123") and maps every integer type to
"int", so types are never matched by name: the walk starts from commands and events
(whose names are ABI), follows ``arg-type``, ``ret-type``, object members, union
variants, array elements and alternate branches through both graphs in step, and
compares what it meets by structure. Built-in types compare by ``json-type``.

Each type is compared once per pair and direction, however many commands reach it, so
cycles in the type graph terminate and a difference is listed once, at the first place
the walk meets it (commands, then events, each in name order); `Difference.used_by`
names every command and event that reaches it.

What "breaking" means (`SchemaComparison.is_compatible` is "nothing is breaking"):
the live QEMU accepts every request the package's typed client can send, and the
package can decode every reply and event the live QEMU can send. In detail:

- arguments (the package sends, QEMU checks strictly): breaking are a command missing
  live, an argument member the package has and QEMU lacks (QEMU rejects unexpected
  members), a member required live but optional in the package or absent from it, an
  enum value or union branch the package has and QEMU lacks, and a type QEMU would
  reject a package value of (``StrOrNull`` in the package, ``str`` live: null is
  refused). Extra optional live members, values and branches are fine.
- replies and events (QEMU sends, the generated decoders keep unknown members and enum
  values): breaking are a member the package requires that QEMU lacks or may omit, a
  union branch only QEMU has (the decoder has no class for it), and a type whose live
  values the package cannot decode. Added members and enum values are fine.
- never breaking: events the live QEMU lacks or adds, commands it adds, ``allow-oob``
  (the typed client does not send ``exec-oob`` by itself) and features such as
  ``deprecated`` (informational; a QEMU run with ``-compat deprecated-input=reject``
  would refuse deprecated input, which this comparison does not know about).

Limits: a union branch is compared by its listed ``variants`` only (a tag value with an
implicitly empty branch counts as no branch), and a type used both in arguments and in
replies is walked once per direction, so its differences can be listed twice.
"""

from __future__ import annotations

import enum
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Difference",
    "DifferenceKind",
    "SchemaComparison",
    "SchemaFormatError",
    "compare_schemas",
]

PACKAGE = "the package"
LIVE = "the live QEMU"


class SchemaFormatError(ValueError):
    """A SchemaInfo list that is not well formed; the message says where."""


class DifferenceKind(enum.Enum):
    """What differs; "missing" is in the package but not live, "added" live only."""

    COMMAND_MISSING = "command missing"
    COMMAND_ADDED = "command added"
    EVENT_MISSING = "event missing"
    EVENT_ADDED = "event added"
    MEMBER_MISSING = "member missing"
    MEMBER_ADDED = "member added"
    OPTIONALITY = "optional vs required"
    TYPE_CHANGED = "type changed"
    ENUM_VALUE_MISSING = "enum value missing"
    ENUM_VALUE_ADDED = "enum value added"
    VARIANT_MISSING = "union branch missing"
    VARIANT_ADDED = "union branch added"
    ALTERNATIVE_MISSING = "alternate branch missing"
    ALTERNATIVE_ADDED = "alternate branch added"
    TAG_CHANGED = "union tag changed"
    ALLOW_OOB = "allow-oob"
    FEATURES = "features"


class Flow(enum.Enum):
    """Which way the data of a walked type travels, which decides what breaks."""

    SEND = "arguments"  # the package sends, the live QEMU checks strictly
    RECEIVE = "replies"  # the live QEMU sends, the package's decoders are lenient


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference, at a readable place such as
    ``command migrate-set-parameters: argument 'tls-creds'``."""

    kind: DifferenceKind
    where: str
    detail: str
    breaking: bool
    used_by: tuple[str, ...] = ()
    """Every command and event (``command X``, ``event Y``) whose data reach it."""

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass(frozen=True, slots=True)
class SchemaComparison:
    """The differences between the package's schema and the live QEMU's."""

    differences: tuple[Difference, ...]
    commands_compared: int
    """Commands present on both sides (walked in depth)."""
    events_compared: int

    @property
    def is_compatible(self) -> bool:
        """True when no difference is breaking (see the module docstring): every
        command the package has exists live, every argument the package can send is
        accepted, and every reply and event of the live QEMU decodes."""
        return not any(d.breaking for d in self.differences)

    @property
    def breaking(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.breaking)

    def _names(self, kind: DifferenceKind) -> tuple[str, ...]:
        return tuple(
            d.where.split(" ", 1)[1] for d in self.differences if d.kind is kind
        )

    @property
    def missing_commands(self) -> tuple[str, ...]:
        """Commands of the package the live QEMU does not have."""
        return self._names(DifferenceKind.COMMAND_MISSING)

    @property
    def added_commands(self) -> tuple[str, ...]:
        """Commands of the live QEMU the package does not have."""
        return self._names(DifferenceKind.COMMAND_ADDED)

    @property
    def missing_events(self) -> tuple[str, ...]:
        return self._names(DifferenceKind.EVENT_MISSING)

    @property
    def added_events(self) -> tuple[str, ...]:
        return self._names(DifferenceKind.EVENT_ADDED)

    def affecting(self, command_or_event: str) -> tuple[Difference, ...]:
        """The differences that reach command or event `command_or_event` (its
        presence, its flags, and everything its data types lead to)."""
        roots = {f"command {command_or_event}", f"event {command_or_event}"}
        return tuple(d for d in self.differences if roots.intersection(d.used_by))

    @property
    def unsafe_commands(self) -> tuple[str, ...]:
        """Commands of the package with a breaking difference: missing live, or an
        argument, reply or type on their way that does not fit."""
        found: set[str] = set()
        for difference in self.breaking:
            found.update(
                root.removeprefix("command ")
                for root in difference.used_by
                if root.startswith("command ")
            )
        return tuple(sorted(found))

    def report(self) -> str:
        """A text report: the verdict, then breaking and other differences."""
        lines = [
            f"Compared {self.commands_compared} commands and {self.events_compared} "
            "events present on both sides."
        ]
        breaking = self.breaking
        if self.is_compatible:
            lines.append(
                "Compatible: the live QEMU accepts everything the package sends, "
                "and the package decodes everything it answers."
            )
        else:
            unsafe = self.unsafe_commands
            lines.append(
                f"NOT compatible: {len(breaking)} breaking "
                f"difference{'s' if len(breaking) != 1 else ''}"
                + (f"; commands affected: {', '.join(unsafe)}" if unsafe else "")
                + "."
            )
        # what the live QEMU adds is listed by name: against a full QEMU a package
        # built from a subset of the schema would otherwise print hundreds of lines
        summarized = (DifferenceKind.COMMAND_ADDED, DifferenceKind.EVENT_ADDED)
        for what, names in (
            ("Commands", self.added_commands),
            ("Events", self.added_events),
        ):
            if names:
                lines.append("")
                lines.append(f"{what} only on the live QEMU ({len(names)}):")
                lines.append(
                    textwrap.fill(
                        ", ".join(names),
                        width=88,
                        initial_indent="  ",
                        subsequent_indent="  ",
                        break_on_hyphens=False,
                    )
                )
        others = tuple(
            d for d in self.differences if not d.breaking and d.kind not in summarized
        )
        for title, group in (("Breaking", breaking), ("Other", others)):
            if group:
                lines.append("")
                lines.append(f"{title} differences ({len(group)}):")
                lines.extend(f"  {difference}" for difference in group)
        if not self.differences:
            lines.append("No differences.")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading the input


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    type: str
    optional: bool
    features: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Type:
    """One SchemaInfo type entry, checked and reduced to what the walk compares."""

    name: str
    meta: str  # builtin, enum, object, array, alternate
    json_type: str = ""  # builtins only
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)  # enum
    members: Mapping[str, _Member] = field(default_factory=dict)  # object
    tag: str | None = None
    variants: Mapping[str, str] = field(default_factory=dict)  # case -> type
    element: str = ""  # array
    alternatives: tuple[str, ...] = ()  # alternate branch types
    features: frozenset[str] = frozenset()


_TYPE_METAS = frozenset({"builtin", "enum", "object", "array", "alternate"})


class _Side:
    """One schema (the package's or the live QEMU's), indexed by name."""

    def __init__(self, label: str, entries: Sequence[Mapping[str, object]]) -> None:
        self.label = label
        self.entries: dict[str, Mapping[str, object]] = {}
        self.positions: dict[str, int] = {}
        self.commands: dict[str, Mapping[str, object]] = {}
        self.events: dict[str, Mapping[str, object]] = {}
        self._types: dict[str, _Type] = {}
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
            elif meta not in _TYPE_METAS:
                raise SchemaFormatError(
                    f"{label}'s schema, entry #{index} ({name!r}): unknown "
                    f"meta-type {meta!r}"
                )

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

    def type(self, name: str, used_at: str) -> _Type:
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
        if meta not in _TYPE_METAS:
            raise SchemaFormatError(
                f"{self._where(name)}: used as a type at {used_at}, but it is a "
                f"{meta}"
            )
        assert isinstance(meta, str)
        parsed = self._parse(name, meta)
        self._types[name] = parsed
        return parsed

    def _parse(self, name: str, meta: str) -> _Type:
        features = self.features(name)
        if meta == "builtin":
            json_type = self.text(name, "json-type")
            assert json_type is not None
            return _Type(name, meta, json_type=json_type, features=features)
        if meta == "array":
            element = self.text(name, "element-type")
            assert element is not None
            return _Type(name, meta, element=element, features=features)
        if meta == "enum":
            return _Type(name, meta, values=self._enum_values(name), features=features)
        if meta == "alternate":
            items = self._objects(name, "members")
            alternatives = tuple(
                self._item_text(name, "members", i, item, "type")
                for i, item in enumerate(items)
            )
            return _Type(name, meta, alternatives=alternatives, features=features)
        members: dict[str, _Member] = {}
        for i, item in enumerate(self._objects(name, "members")):
            member_name = self._item_text(name, "members", i, item, "name")
            members[member_name] = _Member(
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
        return _Type(
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


# ---------------------------------------------------------------- describing types


def _masked(name: str) -> bool:
    """QEMU's masked type names are numbers (arrays of them are ``[123]``)."""
    return name.strip("[]").isdigit()


def _describe(side: _Side, typ: _Type, depth: int = 0) -> str:
    """A type for messages: its name when the side shows one, else its shape."""
    if typ.meta == "builtin":
        return typ.name
    if typ.meta == "array":
        if depth > 3:
            return "an array"
        element = side.type(typ.element, typ.name)
        return f"array of {_describe(side, element, depth + 1)}"
    if not _masked(typ.name):
        return f"{typ.meta} {typ.name}"
    if typ.meta == "alternate" and depth <= 3:
        kinds = "|".join(_wire_kind(side.type(t, typ.name)) for t in typ.alternatives)
        return f"an alternate ({kinds})"
    return f"an {typ.meta}" if typ.meta[0] in "aeiou" else f"a {typ.meta}"


def _wire_kind(typ: _Type) -> str:
    """The JSON kind of a type's values, which alternates dispatch on."""
    if typ.meta == "builtin":
        return {"int": "number", "value": "any"}.get(typ.json_type, typ.json_type)
    if typ.meta == "enum":
        return "string"
    return typ.meta


def _accepts_builtin(receiver: str, sender: str) -> bool:
    """Whether every value of JSON type `sender` is valid for `receiver`."""
    return receiver in (sender, "value") or (receiver == "number" and sender == "int")


# ---------------------------------------------------------------- places


@dataclass(frozen=True, slots=True)
class _Where:
    """A place in the walk: the command or event, the role, and the steps taken."""

    root: str  # "command migrate"
    role: str  # "argument", "return", "data"
    steps: tuple[str, ...] = ()

    def member(self, name: str) -> _Where:
        return _Where(self.root, self.role, (*self.steps, f".{name}"))

    def step(self, text: str) -> _Where:
        return _Where(self.root, self.role, (*self.steps, text))

    def __str__(self) -> str:
        if not self.steps:
            whole = {"argument": "arguments", "return": "return value"}
            return f"{self.root}: {whole.get(self.role, self.role)}"
        path = "".join(self.steps).removeprefix(".")
        role = {"return": "return member", "data": "data member"}.get(
            self.role, self.role
        )
        return f"{self.root}: {role} '{path}'"


_PairKey = tuple[str, str, Flow]


@dataclass(slots=True)
class _Draft:
    kind: DifferenceKind
    where: str
    detail: str
    breaking: bool


@dataclass(slots=True)
class _Node:
    """What comparing one pair of types (or one root) found, and what it leads to."""

    drafts: list[_Draft] = field(default_factory=list)
    children: set[_PairKey] = field(default_factory=set)


# ---------------------------------------------------------------- the walk


class _Walker:
    def __init__(self, built: _Side, live: _Side) -> None:
        self.built = built
        self.live = live
        self.pairs: dict[_PairKey, _Node] = {}
        self.roots: dict[str, _Node] = {}
        self.order: list[_Draft] = []

    def _add(
        self,
        node: _Node,
        kind: DifferenceKind,
        where: object,
        detail: str,
        breaking: bool,
    ) -> None:
        draft = _Draft(kind, str(where), detail, breaking)
        node.drafts.append(draft)
        self.order.append(draft)

    # -- roots -------------------------------------------------------------------

    def run(self) -> SchemaComparison:
        compared = [0, 0]
        for label, built, live, index in (
            ("command", self.built.commands, self.live.commands, 0),
            ("event", self.built.events, self.live.events, 1),
        ):
            for name in sorted(built.keys() | live.keys()):
                root = f"{label} {name}"
                node = self.roots[root] = _Node()
                if name not in live:
                    kind = (
                        DifferenceKind.COMMAND_MISSING
                        if index == 0
                        else DifferenceKind.EVENT_MISSING
                    )
                    # a missing command cannot be called; a missing event is never
                    # received, which a client cannot tell from a quiet QEMU
                    self._add(node, kind, root, f"not on {LIVE}", index == 0)
                elif name not in built:
                    kind = (
                        DifferenceKind.COMMAND_ADDED
                        if index == 0
                        else DifferenceKind.EVENT_ADDED
                    )
                    self._add(node, kind, root, f"only on {LIVE}", False)
                else:
                    compared[index] += 1
                    self._compare_root(node, label, name)
        return self._result(compared[0], compared[1])

    def _compare_root(self, node: _Node, label: str, name: str) -> None:
        root = f"{label} {name}"
        self._features(node, root, self.built.features(name), self.live.features(name))
        if label == "command":
            built_oob = self.built.flag(name, "allow-oob")
            live_oob = self.live.flag(name, "allow-oob")
            if built_oob != live_oob:
                self._add(
                    node,
                    DifferenceKind.ALLOW_OOB,
                    root,
                    "allow-oob is "
                    + ("true" if live_oob else "false")
                    + f" on {LIVE}, "
                    + ("true" if built_oob else "false")
                    + f" in {PACKAGE}",
                    False,
                )
            self._root_type(node, name, "arg-type", _Where(root, "argument"), Flow.SEND)
            self._root_type(
                node, name, "ret-type", _Where(root, "return"), Flow.RECEIVE
            )
        else:
            self._root_type(node, name, "arg-type", _Where(root, "data"), Flow.RECEIVE)

    def _root_type(
        self, node: _Node, name: str, key: str, where: _Where, flow: Flow
    ) -> None:
        built = self.built.text(name, key, required=False)
        live = self.live.text(name, key, required=False)
        if built is None and live is None:
            return
        if built is None or live is None:
            side = PACKAGE if built is None else LIVE
            self._add(
                node,
                DifferenceKind.TYPE_CHANGED,
                where,
                f"no {key} in {side}",
                flow is Flow.SEND or built is not None,
            )
            return
        self._pair(node, built, live, where, flow)

    # -- pairs of types ----------------------------------------------------------

    def _pair(
        self, parent: _Node, built: str, live: str, where: _Where, flow: Flow
    ) -> None:
        """Compare type `built` with `live` once per flow (this is what makes cycles
        terminate): later visits only record that `parent` leads there."""
        key = (built, live, flow)
        parent.children.add(key)
        if key in self.pairs:
            return
        node = self.pairs[key] = _Node()
        built_type = self.built.type(built, str(where))
        live_type = self.live.type(live, str(where))
        self._features(node, where, built_type.features, live_type.features)
        if built_type.meta == "alternate" or live_type.meta == "alternate":
            self._alternates(node, built_type, live_type, where, flow)
        elif built_type.meta == live_type.meta == "builtin":
            self._builtins(node, built_type, live_type, where, flow)
        elif built_type.meta == live_type.meta == "enum":
            self._enums(node, built_type, live_type, where, flow)
        elif built_type.meta == live_type.meta == "array":
            self._pair(
                node, built_type.element, live_type.element, where.step("[]"), flow
            )
        elif built_type.meta == live_type.meta == "object":
            self._objects(node, built_type, live_type, where, flow)
        else:
            self._kinds_differ(node, built_type, live_type, where, flow)

    def _type_changed(
        self, node: _Node, built: _Type, live: _Type, where: _Where, breaking: bool
    ) -> None:
        self._add(
            node,
            DifferenceKind.TYPE_CHANGED,
            where,
            f"type {_describe(self.live, live)} on {LIVE}, "
            f"{_describe(self.built, built)} in {PACKAGE}",
            breaking,
        )

    def _builtins(
        self, node: _Node, built: _Type, live: _Type, where: _Where, flow: Flow
    ) -> None:
        if built.json_type == live.json_type:
            return  # int vs uint8 and the like: the same on the wire
        sender, receiver = (built, live) if flow is Flow.SEND else (live, built)
        fits = _accepts_builtin(receiver.json_type, sender.json_type)
        self._type_changed(node, built, live, where, not fits)

    def _kinds_differ(
        self, node: _Node, built: _Type, live: _Type, where: _Where, flow: Flow
    ) -> None:
        """Different meta-types: fine only where the receiver takes any value, or
        an enum is sent where a string is taken."""
        sender, receiver = (built, live) if flow is Flow.SEND else (live, built)
        fits = (receiver.meta == "builtin" and receiver.json_type == "value") or (
            sender.meta == "enum"
            and receiver.meta == "builtin"
            and receiver.json_type == "string"
        )
        self._type_changed(node, built, live, where, not fits)

    def _enums(
        self, node: _Node, built: _Type, live: _Type, where: _Where, flow: Flow
    ) -> None:
        name = _describe(self.built, built)
        for value in sorted(built.values.keys() - live.values.keys()):
            # the package may send it (QEMU refuses it); received, it is never sent
            self._add(
                node,
                DifferenceKind.ENUM_VALUE_MISSING,
                where,
                f"value '{value}' of {name} is not on {LIVE}",
                flow is Flow.SEND,
            )
        for value in sorted(live.values.keys() - built.values.keys()):
            # the package never sends it; received, the open enums keep it
            self._add(
                node,
                DifferenceKind.ENUM_VALUE_ADDED,
                where,
                f"value '{value}' of {name} is only on {LIVE}",
                False,
            )
        for value in sorted(built.values.keys() & live.values.keys()):
            self._features(
                node,
                where,
                built.values[value],
                live.values[value],
                f"value '{value}' of {name}: ",
            )

    def _objects(
        self, node: _Node, built: _Type, live: _Type, where: _Where, flow: Flow
    ) -> None:
        send = flow is Flow.SEND
        for name in sorted(built.members.keys() | live.members.keys()):
            place = where.member(name)
            ours = built.members.get(name)
            theirs = live.members.get(name)
            if theirs is None:
                assert ours is not None
                self._add(
                    node,
                    DifferenceKind.MEMBER_MISSING,
                    place,
                    f"{'optional' if ours.optional else 'required'} in {PACKAGE}, "
                    f"not on {LIVE}",
                    # sent: QEMU rejects it; received: only a required one is missed
                    send or not ours.optional,
                )
            elif ours is None:
                self._add(
                    node,
                    DifferenceKind.MEMBER_ADDED,
                    place,
                    f"{'optional' if theirs.optional else 'required'} on {LIVE}, "
                    f"not in {PACKAGE}",
                    # sent: the package cannot give a required one; received: kept
                    send and not theirs.optional,
                )
            else:
                if ours.optional != theirs.optional:
                    self._add(
                        node,
                        DifferenceKind.OPTIONALITY,
                        place,
                        f"{'optional' if theirs.optional else 'required'} on {LIVE}, "
                        f"{'optional' if ours.optional else 'required'} in {PACKAGE}",
                        # the side that may leave it out is not the one requiring it
                        ours.optional if send else theirs.optional,
                    )
                self._features(node, place, ours.features, theirs.features)
                self._pair(node, ours.type, theirs.type, place, flow)
        if built.tag != live.tag:
            self._add(
                node,
                DifferenceKind.TAG_CHANGED,
                where,
                f"{_tag_text(live.tag)} on {LIVE}, {_tag_text(built.tag)} in {PACKAGE}",
                True,
            )
            return
        tag = built.tag or ""
        for case in sorted(built.variants.keys() | live.variants.keys()):
            place = where.step(f"({tag}={case})")
            ours_type = built.variants.get(case)
            theirs_type = live.variants.get(case)
            if theirs_type is None:
                self._add(
                    node,
                    DifferenceKind.VARIANT_MISSING,
                    place,
                    f"union branch '{case}' is not on {LIVE}",
                    send,  # QEMU refuses it; received, it is never sent
                )
            elif ours_type is None:
                self._add(
                    node,
                    DifferenceKind.VARIANT_ADDED,
                    place,
                    f"union branch '{case}' is only on {LIVE}",
                    not send,  # the package's decoder has no class for it
                )
            else:
                self._pair(node, ours_type, theirs_type, place, flow)

    def _alternates(
        self, node: _Node, built: _Type, live: _Type, where: _Where, flow: Flow
    ) -> None:
        """Alternates (or an alternate against a plain type): branches pair up by
        the JSON kind of their values, which is how QEMU tells them apart."""
        ours = self._branches(self.built, built, where)
        theirs = self._branches(self.live, live, where)
        send = flow is Flow.SEND
        sender_only = (
            (ours.keys() - theirs.keys()) if send else (theirs.keys() - ours.keys())
        )
        if built.meta != live.meta:
            self._type_changed(node, built, live, where, bool(sender_only))
        else:
            for kind in sorted(ours.keys() - theirs.keys()):
                self._add(
                    node,
                    DifferenceKind.ALTERNATIVE_MISSING,
                    where,
                    f"{_describe(self.built, built)} accepts {kind} in {PACKAGE}, "
                    f"not on {LIVE}",
                    send,
                )
            for kind in sorted(theirs.keys() - ours.keys()):
                self._add(
                    node,
                    DifferenceKind.ALTERNATIVE_ADDED,
                    where,
                    f"{_describe(self.built, built)} accepts {kind} only on {LIVE}",
                    not send,
                )
        several = built.meta == live.meta == "alternate"
        for kind in sorted(ours.keys() & theirs.keys()):
            place = where.step(f"({kind})") if several else where
            self._pair(node, ours[kind], theirs[kind], place, flow)

    def _branches(self, side: _Side, typ: _Type, where: _Where) -> dict[str, str]:
        if typ.meta != "alternate":
            return {_wire_kind(typ): typ.name}
        return {
            _wire_kind(side.type(branch, str(where))): branch
            for branch in typ.alternatives
        }

    def _features(
        self,
        node: _Node,
        where: object,
        built: frozenset[str],
        live: frozenset[str],
        prefix: str = "",
    ) -> None:
        for feature in sorted(built - live):
            self._add(
                node,
                DifferenceKind.FEATURES,
                where,
                f"{prefix}feature '{feature}' in {PACKAGE}, not on {LIVE}",
                False,
            )
        for feature in sorted(live - built):
            self._add(
                node,
                DifferenceKind.FEATURES,
                where,
                f"{prefix}feature '{feature}' only on {LIVE}",
                False,
            )

    # -- the result --------------------------------------------------------------

    def _reached(self, node: _Node) -> Iterator[_Node]:
        """`node` and every pair it leads to, each once."""
        seen: set[_PairKey] = set()
        stack = [node]
        while stack:
            current = stack.pop()
            yield current
            for key in current.children:
                if key not in seen:
                    seen.add(key)
                    stack.append(self.pairs[key])

    def _result(self, commands: int, events: int) -> SchemaComparison:
        users: dict[int, list[str]] = {}
        for root, node in self.roots.items():
            for reached in self._reached(node):
                for draft in reached.drafts:
                    users.setdefault(id(draft), []).append(root)
        differences = tuple(
            Difference(
                draft.kind,
                draft.where,
                draft.detail,
                draft.breaking,
                tuple(sorted(users.get(id(draft), []))),
            )
            for draft in self.order
        )
        return SchemaComparison(differences, commands, events)


def _tag_text(tag: str | None) -> str:
    return f"a union on '{tag}'" if tag is not None else "not a union"


def compare_schemas(
    built: Sequence[Mapping[str, object]], live: Sequence[Mapping[str, object]]
) -> SchemaComparison:
    """Compare `built` (what a package was generated from: its
    ``introspection.schema_info()``) with `live` (a QEMU's ``query-qmp-schema``
    answer). SchemaFormatError, naming the side and entry, if either is malformed."""
    walker = _Walker(_Side(PACKAGE, built), _Side(LIVE, live))
    return walker.run()
