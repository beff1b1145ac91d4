"""Source locations, the one error type every front-end stage raises, and warnings.

Every expression, member and doc comment carries a `SourceInfo`; an error renders as
``file:line:col: message`` preceded by the include chain and the definition it is in,
so a user can go straight to the offending character. An error may add notes, each a
line of its own (``file:line:col: note: ...``): where the unclosed object opened, what
the usual cause is.

Text taken from the input is quoted through `excerpt`: escaped and bounded, so a
binary or secret file named by an `include` never reaches the terminal as it is.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .pragma import Pragma
    from .rules import Rule

# What input text may be quoted in a message: a short run, so an error never
# replays a file (the environment, a key) that was included by mistake.
EXCERPT_CHARS = 40

# Anything but printable ASCII and the newline that separates a message's lines:
# those characters are looked at one by one.
_NOT_PLAIN = re.compile("[^\n -~]")
# Unicode categories never written to the terminal as they are: controls, format
# characters (bidirectional overrides, zero-width space, tag characters), line and
# paragraph separators, surrogates, private-use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset(["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"])


def _escape_char(ch: str) -> str:
    if ch == "\t":
        return "\\t"
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """`text` with every character a terminal would act on (controls, bidi
    overrides, ...) written as an escape: ``\\x1b``, ``\\u202e``, ``\\t``. Newlines
    stay (they separate a message's lines)."""
    if _NOT_PLAIN.search(text) is None:
        return text
    return "".join(
        (
            _escape_char(ch)
            if ch != "\n"
            and (ord(ch) < 0x20 or unicodedata.category(ch) in _UNSAFE_CATEGORIES)
            else ch
        )
        for ch in text
    )


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Input text as a message may quote it: at most `limit` characters (then
    "..."), newlines and controls escaped."""
    if len(text) <= limit and text.isascii() and text.isprintable():
        return text  # the usual case (a name), cheaply
    if len(text) > limit:
        text = text[:limit] + "..."
    return escape(text).replace("\n", "\\n")


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
        loc = f"{escape(self.fname)}:{self.line}"
        if self.col is not None:
            loc += f":{self.col}"
        return loc

    def include_chain(self) -> str:
        lines: list[str] = []
        parent = self.parent
        while parent is not None:
            lines.append(f"In file included from {parent.location_no_col()}:")
            parent = parent.parent
        return "".join(line + "\n" for line in reversed(lines))

    def location_no_col(self) -> str:
        return f"{escape(self.fname)}:{self.line}"

    def context(self) -> str:
        text = self.include_chain()
        if self.defn_name is not None:
            name = excerpt(self.defn_name)
            text += f"{escape(self.fname)}: In {self.defn_meta} '{name}':\n"
        return text


class Note(NamedTuple):
    """A line added to an error: where something related is (the `{` of an object
    that is not closed), or what usually causes it. `info` None: the error's own
    location."""

    info: SourceInfo | None
    text: str


class QAPIError(Exception):
    """A located error in a schema. `str()` is the full, user-facing text: the
    context lines, ``file:line:col: message``, then one line per note."""

    def __init__(
        self,
        info: SourceInfo | None,
        message: str,
        notes: tuple[Note, ...] | list[Note] = (),
    ) -> None:
        super().__init__(message)
        self.info = info
        self.message = message
        self.notes = tuple(notes)

    def with_notes(self, *notes: Note) -> QAPIError:
        """This error with more notes (the original is left alone)."""
        return QAPIError(self.info, self.message, (*self.notes, *notes))

    def headline(self) -> str:
        """The context lines and the located message, without notes: the text
        QEMU's own generator prints for the same error."""
        message = escape(self.message)
        if self.info is None:
            return message
        return f"{self.info.context()}{self.info.location()}: {message}"

    def __str__(self) -> str:
        text = self.headline()
        for note in self.notes:
            where = note.info or self.info
            prefix = f"{where.location()}: " if where is not None else ""
            text += f"\n{prefix}note: {escape(note.text)}"
        return text


class QAPIWarning:
    """A located diagnostic that does not stop processing: a rule that only some
    QEMU releases enforce, met under the default language level. `rule` says which
    (qapigen.rules), so a report can group a schema's warnings rule by rule."""

    def __init__(self, info: SourceInfo, message: str, rule: Rule) -> None:
        self.info = info
        self.message = message
        self.rule = rule

    def line(self, definition: bool = True) -> str:
        """The warning on one line: ``file:line:col: warning: struct 'X': message
        (who rejects it)``; `definition` False leaves out the definition it is
        in (when a context line names it)."""
        info = self.info
        where = ""
        if definition and info.defn_name is not None:
            where = f"{info.defn_meta} '{excerpt(info.defn_name)}': "
        return (
            f"{info.location()}: warning: {where}{escape(self.message)}"
            f" ({self.rule.rejected_by()})"
        )

    def __str__(self) -> str:
        """With the include chain and the "In struct 'X':" context lines."""
        return self.info.context() + self.line(definition=False)

    def __repr__(self) -> str:
        return f"<QAPIWarning {self.rule.name} at {self.info.location()}>"
