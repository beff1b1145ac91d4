"""Source locations and the one error type every front-end stage raises.

Every expression, member and doc comment carries a `SourceInfo`; an error renders as
``file:line:col: message`` preceded by the include chain and the definition it is in,
so a user can go straight to the offending character.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pragma import Pragma


@dataclass(frozen=True)
class SourceInfo:
    """Where something is: a file, a line (1-based), optionally a column (1-based).

    `parent` is the location of the `include` directive that pulled this file in.
    `defn_meta`/`defn_name` name the definition being checked ("struct", "Foo"), used for
    the "In struct 'Foo':" context line.
    `pragma` is the schema's shared pragma settings (see qapigen.pragma); it takes no
    part in comparisons.
    """

    fname: str
    line: int
    col: int | None = None
    parent: SourceInfo | None = None
    defn_meta: str | None = None
    defn_name: str | None = None
    pragma: Pragma | None = field(default=None, compare=False, repr=False)

    def at(self, line: int, col: int | None = None) -> SourceInfo:
        return replace(self, line=line, col=col)

    def in_definition(self, meta: str, name: str) -> SourceInfo:
        return replace(self, defn_meta=meta, defn_name=name)

    def location(self) -> str:
        """`file:line` or `file:line:col`."""
        loc = f"{self.fname}:{self.line}"
        if self.col is not None:
            loc += f":{self.col}"
        return loc

    def include_chain(self) -> str:
        lines: list[str] = []
        parent = self.parent
        while parent is not None:
            lines.append(f"In file included from {parent.fname}:{parent.line}:")
            parent = parent.parent
        return "".join(line + "\n" for line in reversed(lines))

    def context(self) -> str:
        text = self.include_chain()
        if self.defn_name is not None:
            text += f"{self.fname}: In {self.defn_meta} '{self.defn_name}':\n"
        return text


class QAPIError(Exception):
    """A located error in a schema. `str()` is the full, user-facing text."""

    def __init__(self, info: SourceInfo | None, message: str) -> None:
        super().__init__(message)
        self.info = info
        self.message = message

    def __str__(self) -> str:
        if self.info is None:
            return self.message
        return f"{self.info.context()}{self.info.location()}: {self.message}"


class QAPIWarning:
    """A located diagnostic that does not stop processing (e.g. doc layout rules that
    only later QEMU releases enforce, under the permissive default language level)."""

    def __init__(self, info: SourceInfo, message: str) -> None:
        self.info = info
        self.message = message

    def __str__(self) -> str:
        return f"{self.info.context()}{self.info.location()}: warning: {self.message}"
