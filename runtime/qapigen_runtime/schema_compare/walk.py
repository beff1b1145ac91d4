"""The walk: both type graphs in step from each command and event, compared by
structure, each pair of types once per direction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .result import Difference, DifferenceKind, Flow, SchemaComparison
from .schema_info import (
    LIVE,
    PACKAGE,
    Side,
    TypeEntry,
    accepts_builtin,
    describe,
    wire_kind,
)

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


DEPRECATED = "deprecated"

# What QEMU does with an item hidden by -compat deprecated-output=hide, by the role
# the item has in the package (the detail of a HIDDEN_BY_POLICY difference).
_HIDDEN_ROLES = {
    "command": "deprecated command: QEMU still runs it unless deprecated-input=reject",
    "event": "deprecated event: QEMU does not send it",
    Flow.SEND: "deprecated argument: QEMU still takes it unless deprecated-input=reject",
    Flow.RECEIVE: "deprecated member: QEMU leaves it out of its replies too",
}


@dataclass(slots=True)
class _Node:
    """What comparing one pair of types (or one root) found, and what it leads to."""

    drafts: list[_Draft] = field(default_factory=list)
    children: set[_PairKey] = field(default_factory=set)


# ---------------------------------------------------------------- the walk


class Walker:
    """Compares `built` with `live`. ``deprecated_hidden`` says whether the live QEMU
    leaves deprecated items out of its introspection (QEMU's ``-compat
    deprecated-output=hide``); None: decide from the two schemas (`_hides_deprecated`).
    """

    def __init__(
        self, built: Side, live: Side, deprecated_hidden: bool | None = None
    ) -> None:
        self.built = built
        self.live = live
        self.deprecated_hidden = deprecated_hidden
        self.pairs: dict[_PairKey, _Node] = {}
        self.roots: dict[str, _Node] = {}
        self.order: list[_Draft] = []
        # Deprecated commands, events and members of the package: the differences
        # of those the live QEMU lacks (with the role each has), and how many it has.
        self.deprecated_missing: list[tuple[_Draft, str | Flow]] = []
        self.deprecated_present = 0

    def _add(
        self,
        node: _Node,
        kind: DifferenceKind,
        where: object,
        detail: str,
        breaking: bool,
    ) -> _Draft:
        draft = _Draft(kind, str(where), detail, breaking)
        node.drafts.append(draft)
        self.order.append(draft)
        return draft

    def _note_deprecated(
        self, features: frozenset[str], role: str | Flow, missing: _Draft | None
    ) -> None:
        """Keep track of a package item that carries the deprecated feature."""
        if DEPRECATED not in features:
            return
        if missing is None:
            self.deprecated_present += 1
        else:
            self.deprecated_missing.append((missing, role))

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
                    draft = self._add(node, kind, root, f"not on {LIVE}", index == 0)
                    self._note_deprecated(self.built.features(name), label, draft)
                elif name not in built:
                    kind = (
                        DifferenceKind.COMMAND_ADDED
                        if index == 0
                        else DifferenceKind.EVENT_ADDED
                    )
                    self._add(node, kind, root, f"only on {LIVE}", False)
                else:
                    compared[index] += 1
                    self._note_deprecated(self.built.features(name), label, None)
                    self._compare_root(node, label, name)
        hidden = self.deprecated_hidden
        if hidden is None:
            hidden = self._hides_deprecated()
        if hidden:
            self._mark_hidden()
        return self._result(compared[0], compared[1], hidden)

    def _hides_deprecated(self) -> bool:
        """Whether the live QEMU looks like one run with -compat
        deprecated-output=hide: it shows no deprecated command, event or member (QEMU
        7.2 still shows deprecated enum values then), while the package has
        deprecated ones and the live QEMU has none of them."""
        return (
            bool(self.deprecated_missing)
            and not self.deprecated_present
            and not self.live.shows_deprecated()
        )

    def _mark_hidden(self) -> None:
        """Deprecated items missing live are hidden by the policy, not breaking."""
        for draft, role in self.deprecated_missing:
            draft.kind = DifferenceKind.HIDDEN_BY_POLICY
            draft.detail = f"hidden by policy ({_HIDDEN_ROLES[role]})"
            draft.breaking = False

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
        self,
        node: _Node,
        built: TypeEntry,
        live: TypeEntry,
        where: _Where,
        breaking: bool,
    ) -> None:
        self._add(
            node,
            DifferenceKind.TYPE_CHANGED,
            where,
            f"type {describe(self.live, live)} on {LIVE}, "
            f"{describe(self.built, built)} in {PACKAGE}",
            breaking,
        )

    def _builtins(
        self, node: _Node, built: TypeEntry, live: TypeEntry, where: _Where, flow: Flow
    ) -> None:
        if built.json_type == live.json_type:
            return  # int vs uint8 and the like: the same on the wire
        sender, receiver = (built, live) if flow is Flow.SEND else (live, built)
        fits = accepts_builtin(receiver.json_type, sender.json_type)
        self._type_changed(node, built, live, where, not fits)

    def _kinds_differ(
        self, node: _Node, built: TypeEntry, live: TypeEntry, where: _Where, flow: Flow
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
        self, node: _Node, built: TypeEntry, live: TypeEntry, where: _Where, flow: Flow
    ) -> None:
        name = describe(self.built, built)
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
        self, node: _Node, built: TypeEntry, live: TypeEntry, where: _Where, flow: Flow
    ) -> None:
        send = flow is Flow.SEND
        for name in sorted(built.members.keys() | live.members.keys()):
            place = where.member(name)
            ours = built.members.get(name)
            theirs = live.members.get(name)
            if theirs is None:
                assert ours is not None
                draft = self._add(
                    node,
                    DifferenceKind.MEMBER_MISSING,
                    place,
                    f"{'optional' if ours.optional else 'required'} in {PACKAGE}, "
                    f"not on {LIVE}",
                    # sent: QEMU rejects it; received: only a required one is
                    # missed, and not a deprecated one (the decoders take its
                    # absence, as deprecated-output=hide leaves it out)
                    send or not (ours.optional or DEPRECATED in ours.features),
                )
                self._note_deprecated(ours.features, flow, draft)
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
                self._note_deprecated(ours.features, flow, None)
                if ours.optional != theirs.optional:
                    self._add(
                        node,
                        DifferenceKind.OPTIONALITY,
                        place,
                        f"{'optional' if theirs.optional else 'required'} on {LIVE}, "
                        f"{'optional' if ours.optional else 'required'} in {PACKAGE}",
                        # the side that may leave it out is not the one requiring it
                        # (the package's decoders take a deprecated one's absence)
                        (
                            ours.optional
                            if send
                            else theirs.optional and DEPRECATED not in ours.features
                        ),
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
        self, node: _Node, built: TypeEntry, live: TypeEntry, where: _Where, flow: Flow
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
                    f"{describe(self.built, built)} accepts {kind} in {PACKAGE}, "
                    f"not on {LIVE}",
                    send,
                )
            for kind in sorted(theirs.keys() - ours.keys()):
                self._add(
                    node,
                    DifferenceKind.ALTERNATIVE_ADDED,
                    where,
                    f"{describe(self.built, built)} accepts {kind} only on {LIVE}",
                    not send,
                )
        several = built.meta == live.meta == "alternate"
        for kind in sorted(ours.keys() & theirs.keys()):
            place = where.step(f"({kind})") if several else where
            self._pair(node, ours[kind], theirs[kind], place, flow)

    def _branches(self, side: Side, typ: TypeEntry, where: _Where) -> dict[str, str]:
        if typ.meta != "alternate":
            return {wire_kind(typ): typ.name}
        return {
            wire_kind(side.type(branch, str(where))): branch
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

    def _result(self, commands: int, events: int, hidden: bool) -> SchemaComparison:
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
        return SchemaComparison(differences, commands, events, hidden)


def _tag_text(tag: str | None) -> str:
    return f"a union on '{tag}'" if tag is not None else "not a union"
