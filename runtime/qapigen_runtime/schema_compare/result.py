"""What a comparison found: differences, each placed and classified, and the summary."""

from __future__ import annotations

import enum
import textwrap
from dataclasses import dataclass


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
    HIDDEN_BY_POLICY = "hidden by policy"
    """A deprecated command, event or member of the package that a live QEMU run
    with ``-compat deprecated-output=hide`` leaves out of its introspection."""


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
    deprecated_hidden: bool = False
    """Whether the live QEMU hides deprecated items (``-compat
    deprecated-output=hide``): the package's deprecated commands, events and
    members it lacks are then `DifferenceKind.HIDDEN_BY_POLICY`, not breaking."""

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
    def hidden_by_policy(self) -> tuple[Difference, ...]:
        """Deprecated items of the package the live QEMU hides by policy."""
        return tuple(
            d for d in self.differences if d.kind is DifferenceKind.HIDDEN_BY_POLICY
        )

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
        hidden = self.hidden_by_policy
        if self.deprecated_hidden:
            lines.append(
                "The live QEMU hides deprecated commands, events and members (as "
                "with -compat deprecated-output=hide): "
                + (
                    f"{len(hidden)} of the package's are listed as hidden by policy, "
                    "not as breaking (introspection cannot tell a hidden item from "
                    "a removed one)."
                    if hidden
                    else "the package has none it lacks."
                )
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
        listed_apart = (*summarized, DifferenceKind.HIDDEN_BY_POLICY)
        others = tuple(
            d for d in self.differences if not d.breaking and d.kind not in listed_apart
        )
        for title, group in (
            ("Breaking differences", breaking),
            ("Hidden by policy", hidden),
            ("Other differences", others),
        ):
            if group:
                lines.append("")
                lines.append(f"{title} ({len(group)}):")
                lines.extend(f"  {difference}" for difference in group)
        if not self.differences:
            lines.append("No differences.")
        return "\n".join(lines) + "\n"
