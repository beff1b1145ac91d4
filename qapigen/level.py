"""QAPI language levels: which QEMU release's rules the front end applies.

`Level.PERMISSIVE` (the default) accepts what any supported release accepts: legacy and
modern `if` forms, 5.x simple unions, and it downgrades doc-comment layout rules that only
later releases enforce to warnings. The release levels apply exactly that release's rules.
"""

from __future__ import annotations

import enum


class Level(enum.Enum):
    PERMISSIVE = "any"
    V5_2 = "5.2"
    V7_2 = "7.2"
    V10_0 = "10.0"

    @classmethod
    def from_option(cls, text: str | None) -> Level:
        if text is None:
            return cls.PERMISSIVE
        for level in cls:
            if level.value == text:
                return level
        choices = ", ".join(lv.value for lv in cls if lv is not cls.PERMISSIVE)
        raise ValueError(f"unknown QAPI version '{text}' (choose from {choices})")

    @property
    def is_permissive(self) -> bool:
        return self is Level.PERMISSIVE

    def at_least(self, release: Level) -> bool:
        """True when this is a release level no older than `release`.

        PERMISSIVE is not ordered: callers decide what it accepts per rule.
        """
        order = [Level.V5_2, Level.V7_2, Level.V10_0]
        if self is Level.PERMISSIVE:
            return False
        return order.index(self) >= order.index(release)
