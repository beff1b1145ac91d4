"""What a scenario saw, in a form where equal behaviour gives equal values.

Only what the bundled schema (migration.json) defines is kept: reply member names come
from the typed replies minus the members the schema lacks (QEMU 7.2 adds some, e.g.
``ram.postcopy-bytes``), and numbers that depend on timing or on the machine (bytes,
times, pass counts) are reduced to the facts that do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from qapigen_runtime.qmp import QMPCommandError, QMPEvent

RECORDED_EVENTS = frozenset({"MIGRATION", "MIGRATION_PASS", "STOP", "RESUME"})


class Typed(Protocol):
    """A generated struct: its wire form and the members the schema lacks."""

    @property
    def extra(self) -> dict[str, object]: ...

    def to_wire(self) -> dict[str, object]: ...


def _is_typed(value: object) -> bool:
    return dataclasses.is_dataclass(value) and hasattr(value, "to_wire")


def member_names(value: Typed, prefix: str = "") -> frozenset[str]:
    """The schema-defined member names of a typed reply, nested ones dotted
    (``ram.transferred``; list elements as ``socket-address[].port``)."""
    wire = value.to_wire()
    names = {prefix + key for key in wire if key not in value.extra}
    assert dataclasses.is_dataclass(value)
    for member in dataclasses.fields(value):
        if member.name == "extra":
            continue
        child = getattr(value, member.name)
        # The generated field names are the wire names mangled (dashes to
        # underscores, a trailing underscore after a keyword).
        key = member.name.rstrip("_").replace("_", "-")
        if _is_typed(child):
            names |= member_names(child, f"{prefix}{key}.")
        elif isinstance(child, list):
            for element in child:
                if _is_typed(element):
                    names |= member_names(element, f"{prefix}{key}[].")
    return frozenset(names)


@dataclass(frozen=True)
class ErrorSeen:
    """A command's error reply: class and description."""

    error_class: str
    desc: str

    @classmethod
    def of(cls, error: QMPCommandError, replacements: dict[str, str]) -> ErrorSeen:
        return cls(error.error_class, normalize_text(error.desc, replacements))


OK = "ok"
"""What an attempt that succeeded records."""


@dataclass(frozen=True)
class MigrationView:
    """A query-migrate reply: status, schema member names, error-desc."""

    status: str | None
    members: frozenset[str]
    error_desc: str | None


@dataclass(frozen=True)
class PassFacts:
    """What MIGRATION_PASS events tell that does not depend on timing.

    How many passes a precopy makes between ``active`` and the stop depends on when the
    bandwidth windows close (the sync that ends an iteration only happens once a window
    has measured a bandwidth), so the events are left out of the event sequence and
    only these facts are compared: the setup sync (pass 1, before ``active``), the
    final sync after the guest stopped, and the numbering (1, 2, 3, ... without gaps).
    """

    before_active: int
    after_stop: bool
    numbered_from_one: bool


def normalize_text(text: str, replacements: dict[str, str]) -> str:
    """`text` with run-specific words (ports, socket paths) replaced by placeholders."""
    for actual, placeholder in replacements.items():
        text = text.replace(actual, placeholder)
    return text


def event_sequence(events: Iterable[QMPEvent]) -> tuple[str, ...]:
    """The recorded events without MIGRATION_PASS, MIGRATION with its status."""
    sequence: list[str] = []
    for event in events:
        if event.name == "MIGRATION":
            sequence.append(f"MIGRATION {event.data.get('status')}")
        elif event.name in ("STOP", "RESUME"):
            sequence.append(event.name)
    return tuple(sequence)


def without_racy(
    sequence: tuple[str, ...], racy: list[tuple[str, str, str]]
) -> tuple[str, ...]:
    """`sequence` without each (before, racy, after) pattern's middle event."""
    kept = list(sequence)
    for before, middle, after in racy:
        index = 1
        while index < len(kept) - 1:
            if kept[index - 1 : index + 2] == [before, middle, after]:
                del kept[index]
            else:
                index += 1
    return tuple(kept)


def pass_facts(events: Iterable[QMPEvent]) -> PassFacts:
    before_active = 0
    active_seen = stop_seen = after_stop = False
    numbers: list[object] = []
    for event in events:
        if event.name == "MIGRATION" and event.data.get("status") == "active":
            active_seen = True
        elif event.name == "STOP":
            stop_seen = True
        elif event.name == "MIGRATION_PASS":
            numbers.append(event.data.get("pass"))
            if not active_seen:
                before_active += 1
            if stop_seen:
                after_stop = True
    return PassFacts(
        before_active=before_active,
        after_stop=after_stop,
        numbered_from_one=numbers == list(range(1, len(numbers) + 1)),
    )


@dataclass
class Observation:
    """Everything a scenario observed on both sides.

    `steps` maps a label (in the order the scenario took them) to what it saw: `OK`,
    an `ErrorSeen`, a `MigrationView`, a run state, a parameter dict, an exit status.
    """

    steps: dict[str, object] = field(default_factory=dict)
    source_events: tuple[str, ...] = ()
    destination_events: tuple[str, ...] = ()
    source_passes: PassFacts | None = None
    destination_passes: PassFacts | None = None
    racy: list[tuple[str, str, str]] = field(default_factory=list, compare=False)
    """(before, racy, after): event `racy` left out where it sits between `before`
    and `after`, for steps whose presence is a race on QEMU itself."""

    def note(self, label: str, value: object) -> None:
        if label in self.steps:
            raise ValueError(f"step {label!r} recorded twice")
        self.steps[label] = value

    def finish(
        self, source: Iterable[QMPEvent], destination: Iterable[QMPEvent]
    ) -> None:
        source, destination = list(source), list(destination)
        self.source_events = without_racy(event_sequence(source), self.racy)
        self.destination_events = without_racy(event_sequence(destination), self.racy)
        self.source_passes = pass_facts(source)
        self.destination_passes = pass_facts(destination)


def differences(expected: Observation, actual: Observation) -> list[str]:
    """One line per step or event sequence where `actual` differs from `expected`,
    in the order the scenario took its steps (empty when they are equal)."""
    lines: list[str] = []
    for name in (
        "source_events",
        "destination_events",
        "source_passes",
        "destination_passes",
    ):
        want, got = getattr(expected, name), getattr(actual, name)
        if want != got:
            lines.append(f"{name}:\n    expected {want}\n    actual   {got}")
    labels = list(expected.steps) + [s for s in actual.steps if s not in expected.steps]
    for label in labels:
        want = expected.steps.get(label, "<not reached>")
        got = actual.steps.get(label, "<not reached>")
        if want != got:
            lines.append(f"step {label!r}:\n    expected {want}\n    actual   {got}")
    return lines
