"""Documentation comments: `##` blocks turned into `QAPIDoc` objects.

The parser (qapigen.parser) collects the lines of one `##` … `##` block and hands them to
`parse_doc_block`, which applies the doc layout rules of the selected language level:

* QEMU 5.2 and 7.2 read a block line by line with a small state machine (body, member
  descriptions, "Features:", tagged sections). Continuation lines of a description must
  be indented at least as far as the text after "@name: " or "Tag: "; a free-form block
  is split into several docs at each "= heading" line; tags are Returns, Since, Note(s),
  Example(s) and TODO.
* QEMU 10.0 reads a block paragraph by paragraph: descriptions are indented blocks
  ("@name: text" then lines indented by any consistent amount, which the text keeps
  as written), tagged sections are
  Returns, Errors, Since and TODO (Note and Example sections are rejected in favour of
  rST directives), a heading must come first in a free-form block and members must be
  documented unless the schema's `documentation-exceptions` pragma names the definition.
* PERMISSIVE (the default) accepts a block that any release accepts; what only some
  releases reject is a `QAPIWarning` (see qapigen.rules). It reads each block like
  5.2/7.2 (so its output matches QEMU's test dumps), leniently: continuation lines
  indented less than 5.2/7.2 want (the 10.0 style, where they share their own
  indentation, or QEMU 5.1's looser one) are read as continuations, an `Errors:`
  section and an unindented paragraph after a tagged section's indented text the
  way 10.0 reads them. It also reads the block the 10.0 way: a block only 10.0
  accepts (a paragraph between the descriptions and "Features:", ...) takes 10.0's
  reading, with its indentation taken out, and what 10.0 rejects in a block the
  other reading accepts ('Note:' and 'Example:' sections, ...) is a warning.

The IR stage then calls `connect_member` / `connect_feature` for every member and
feature of the documented definition, `check_expr` with the definition, and `check()`
to report descriptions of members that do not exist.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from . import rules
from .level import Level
from .source import Note, QAPIError, QAPIWarning, SourceInfo, excerpt

if TYPE_CHECKING:
    from .parser import Expression


class DocTarget(Protocol):
    """What the IR's member and feature objects offer to `connect_member/feature`."""

    @property
    def name(self) -> str: ...

    @property
    def info(self) -> SourceInfo | None: ...


class DocLine(NamedTuple):
    """One comment line of a doc block: its text from `#` to the end of the line
    (trailing whitespace included, as written), its line and the column of its `#`.
    A tuple, not a SourceInfo, because a schema has thousands of them: the location
    object is only built when something needs it."""

    val: str
    line: int
    col: int
    base: SourceInfo

    def info(self) -> SourceInfo:
        """Where the line is, column included (what a syntax error points at)."""
        base = self.base
        return SourceInfo(
            base.fname, self.line, self.col, base.parent, pragma=base.pragma
        )

    def line_info(self) -> SourceInfo:
        """Where the line is, without column (where sections are)."""
        base = self.base
        return SourceInfo(base.fname, self.line, None, base.parent, pragma=base.pragma)


@dataclass(eq=False)
class DocSection:
    """A piece of a doc comment.

    `kind` is one of "body" (the text after the symbol line), "member" (an argument,
    member, branch or value description, also the stub QEMU adds for an undocumented
    member), "feature", "tagged" (Returns:, Since:, Note:, …) or "plain" (an untagged
    paragraph after the descriptions). `name` is the member/feature name, the tag
    without its colon, or None (body and plain sections); `tag` is the name of a
    tagged section only. `text` is final once the block is parsed: exactly what
    QEMU's test dump prints. `member` is set by `QAPIDoc.connect_member/feature`.
    """

    info: SourceInfo
    kind: str
    name: str | None = None
    text: str = ""
    member: DocTarget | None = None
    # indentation to strip from continuation lines (5.2/7.2 rule)
    _indent: int = field(default=0, repr=False)
    # indentation adopted from the first continuation line (10.0 style, PERMISSIVE)
    _cont_indent: int | None = field(default=None, repr=False)

    @property
    def tag(self) -> str | None:
        return self.name if self.kind == "tagged" else None

    def connect(self, member: DocTarget) -> None:
        self.member = member


class QAPIDoc:
    """One documentation comment.

    `info` is the opening `##` line. `symbol` is the documented definition's name,
    None for free-form documentation. `body` is the untagged text before the
    descriptions; `args` and `features` map names to their descriptions in source
    order; `sections` holds what follows the descriptions, in order: tagged sections
    (Returns:, Since:, …) and untagged paragraphs (`name` None).
    """

    def __init__(
        self, info: SourceInfo, level: Level, symbol: str | None = None
    ) -> None:
        self.info = info
        self.level = level
        self.symbol = symbol
        self.body = DocSection(info, "body")
        self.args: dict[str, DocSection] = {}
        self.features: dict[str, DocSection] = {}
        self.sections: list[DocSection] = []
        # every section in source order, body first
        self.all_sections: list[DocSection] = [self.body]
        # where the default level's warnings go (the schema's, once parsed)
        self.warnings: list[QAPIWarning] = []

    def __repr__(self) -> str:
        return f"<QAPIDoc {self.symbol or 'free-form'} at {self.info.location()}>"

    def has_section(self, name: str) -> bool:
        return any(s.name == name for s in self.sections if s.kind == "tagged")

    def section(self, name: str) -> DocSection | None:
        for sec in self.sections:
            if sec.kind == "tagged" and sec.name == name:
                return sec
        return None

    # ---- called by the IR stage ----

    def connect_member(self, member: DocTarget) -> None:
        """Attach the IR member to its description; an undocumented member gets an
        empty description (QEMU's dumps print it). QEMU 10.0 rejects undocumented
        members unless the definition is in the `documentation-exceptions` pragma;
        the other levels accept them silently."""
        section = self.args.get(member.name)
        if section is None:
            minfo = member.info or self.info
            if not self._documentation_excepted(minfo):
                role = str(getattr(member, "role", "member"))
                rules.enforce(
                    rules.UNDOCUMENTED_MEMBER,
                    self.level,
                    minfo,
                    f"{role} '{member.name}' lacks documentation",
                    self.warnings,
                )
            section = DocSection(self.info, "member", member.name)
            self.args[member.name] = section
            self.all_sections.append(section)
        section.connect(member)

    def connect_feature(self, feature: DocTarget) -> None:
        """Attach the IR feature to its description; every feature of a documented
        definition must be described."""
        section = self.features.get(feature.name)
        if section is None:
            raise QAPIError(
                feature.info or self.info,
                f"feature '{feature.name}' lacks documentation",
            )
        section.connect(feature)

    def check_expr(self, expr: Expression | Mapping[str, object]) -> None:
        """Rules that depend on what kind of definition this documents."""
        keys: Mapping[str, object] = expr if isinstance(expr, Mapping) else expr.expr
        returns = self.section("Returns")
        if self.level is Level.V10_0:
            errors = self.section("Errors")
            if "command" in keys:
                if returns is not None and "returns" not in keys:
                    raise QAPIError(
                        returns.info,
                        "'Returns' section, but command doesn't return anything",
                    )
                return
            if returns is not None:
                raise QAPIError(
                    returns.info, "'Returns' section is only valid for commands"
                )
            if errors is not None:
                raise QAPIError(
                    errors.info, "'Errors' section is only valid for commands"
                )
            return
        if returns is not None and "command" not in keys:
            raise QAPIError(self.info, "'Returns:' is only valid for commands")
        if self.level is not Level.PERMISSIVE:
            return
        # what only 10.0 rejects ('Errors:' is a paragraph to 5.2 and 7.2)
        if returns is not None and "returns" not in keys:
            self._warn_section_place(
                returns, "'Returns' section, but command doesn't return anything"
            )
        errors = self.section("Errors")
        if errors is not None and "command" not in keys:
            self._warn_section_place(
                errors, "'Errors' section is only valid for commands"
            )

    def _warn_section_place(self, section: DocSection, message: str) -> None:
        self.warnings.append(
            QAPIWarning(section.info, message, rules.DOC_SECTION_PLACE)
        )

    def check(self) -> None:
        """After connecting: descriptions of members/features that do not exist."""
        self._check_described(self.args, "member")
        # QEMU 5.2 words bogus features like bogus members
        self._check_described(
            self.features, "member" if self.level is Level.V5_2 else "feature"
        )

    def _check_described(self, described: dict[str, DocSection], what: str) -> None:
        bogus = [name for name, sec in described.items() if sec.member is None]
        if not bogus:
            return
        plural = len(bogus) > 1
        names = "', '".join(excerpt(name) for name in bogus)
        msg = (
            f"documented {what}{'s' if plural else ''} '{names}' "
            f"{'do' if plural else 'does'} not exist"
        )
        at = described[bogus[0]].info if self.level is Level.V10_0 else self.info
        raise QAPIError(at, msg)

    def _documentation_excepted(self, info: SourceInfo) -> bool:
        pragma = info.pragma or self.info.pragma
        return pragma is not None and self.symbol in pragma.documentation_exceptions


def _tab_notes(val: str) -> tuple[Note, ...]:
    """A note for an error on a doc comment line that a tab may explain: doc
    comments count a tab as one character."""
    if val[1:2] == "\t":
        return (Note(None, "'#' is followed by a tab: write '# ' (a space)"),)
    indent = val[1 : len(val) - len(val[1:].lstrip())]
    if "\t" not in indent:
        return ()
    return (
        Note(
            None,
            "this line is indented with a tab, which counts as one space here:"
            " indent doc comments with spaces",
        ),
    )


def parse_doc_block(
    lines: list[DocLine],
    end_error: QAPIError | None,
    level: Level,
    warnings: list[QAPIWarning],
) -> list[QAPIDoc]:
    """Parse one doc block.

    `lines[0]` is the opening `##…` line. When the block is properly closed, the last
    line is the closing `##…` line and `end_error` is None; otherwise `end_error` is
    the "must end with '##'" error, raised once the lines before it are checked (so
    the first problem in reading order is the one reported).
    Returns the docs of the block: one, or (5.2/7.2) several when a free-form block
    holds several headings. The default level's warnings go to `warnings`, now and
    when the IR stage checks the docs against their definitions.
    """
    if lines[0].val != "##":
        raise QAPIError(
            lines[0].info(), "junk after '##' at start of documentation comment"
        )
    if level is Level.V10_0:
        docs = [_ModernReader(lines, end_error, level).read()]
    elif level is Level.PERMISSIVE:
        docs = _read_either_way(lines, end_error, warnings)
    else:
        docs = _LegacyReader(lines, end_error, level, warnings).read()
    for doc in docs:
        doc.warnings = warnings
    return docs


def _read_either_way(
    lines: list[DocLine], end_error: QAPIError | None, warnings: list[QAPIWarning]
) -> list[QAPIDoc]:
    """The default level: the block as 5.2/7.2 read it (leniently), or as 10.0
    reads it when only 10.0 accepts it; an error when neither accepts it."""
    level = Level.PERMISSIVE
    found: list[QAPIWarning] = []
    try:
        docs = _LegacyReader(lines, end_error, level, found).read()
    except QAPIError as legacy_error:
        try:
            doc = _ModernReader(lines, end_error, level).read()
        except QAPIError as modern_error:
            raise _further(legacy_error, modern_error) from None
        _take_out_indentation(doc)
        assert legacy_error.info is not None
        warnings.append(
            QAPIWarning(legacy_error.info, legacy_error.message, rules.DOC_LAYOUT_10)
        )
        return [doc]
    try:
        _ModernReader(lines, end_error, level, check_only=True).read()
    except QAPIError as modern_error:
        assert modern_error.info is not None
        found.append(
            QAPIWarning(
                modern_error.info, modern_error.message, rules.DOC_REJECTED_BY_10
            )
        )
    warnings.extend(found)
    return docs


def _further(first: QAPIError, second: QAPIError) -> QAPIError:
    """Of two readings' errors, the one that got further into the block (the
    reading more likely meant); the first when they stop on the same line."""
    assert first.info is not None and second.info is not None
    return second if second.info.line > first.info.line else first


def _take_out_indentation(doc: QAPIDoc) -> None:
    """10.0 keeps a description's indentation in its text (its rST renderer takes
    it out); the default level's texts have it taken out, as 5.2/7.2 do."""
    for section in doc.all_sections:
        text = section.text
        if section.kind in ("body", "plain"):
            section.text = textwrap.dedent(text)
        elif "\n" in text:
            first, rest = text.split("\n", 1)
            section.text = first + "\n" + textwrap.dedent(rest)


# ---------------------------------------------------------------------------
# QEMU 5.2 / 7.2 reading (and PERMISSIVE)

_LEGACY_TAGS = frozenset(
    ["Returns:", "Since:", "Note:", "Notes:", "Example:", "Examples:", "TODO:"]
)
_PERMISSIVE_TAGS = _LEGACY_TAGS | {"Errors:"}
_AT_NAME_COLON_FREEFORM = re.compile(r"(@\S+:)")
_AT_NAME_HEADER = re.compile(r"@\S*:\s*")
_TAG_HEADER = re.compile(r"\S*:\s*")


class _LegacyReader:
    def __init__(
        self,
        lines: list[DocLine],
        end_error: QAPIError | None,
        level: Level,
        warnings: list[QAPIWarning],
    ) -> None:
        self.lines = lines
        self.end_error = end_error
        self.level = level
        self.warnings = warnings
        self.permissive = level is Level.PERMISSIVE
        # the permissive level also knows 10.0's new tag
        self.tags = _PERMISSIVE_TAGS if self.permissive else _LEGACY_TAGS
        self.block_info = lines[0].line_info()
        self.docs: list[QAPIDoc] = []
        self._new_doc()
        self.cur = lines[0]

    def _new_doc(self) -> None:
        self.doc = QAPIDoc(self.block_info, self.level)
        self.section: DocSection | None = self.doc.body
        # what reads the next line: the state of the reading
        self.state: Callable[[str], None] = self._body_line

    def error(self, msg: str) -> QAPIError:
        return QAPIError(self.cur.info(), msg, _tab_notes(self.cur.val))

    def read(self) -> list[QAPIDoc]:
        for line in self.lines[1:]:
            self.cur = line
            val = line.val
            if val.startswith("##"):
                if val != "##":
                    raise self.error("junk after '##' at end of documentation comment")
                self._end_section()
                self.docs.append(self.doc)
                return self.docs
            if val.startswith("# ="):
                if self.doc.symbol is not None:
                    raise self.error(
                        "unexpected '=' markup in definition documentation"
                    )
                if self.doc.body.text:
                    self._end_section()
                    self.docs.append(self.doc)
                    self._new_doc()
            self._append(val)
        assert self.end_error is not None
        raise self.end_error

    def _append(self, val: str) -> None:
        if val == "#":
            self._freeform("")
            return
        if val[1] != " ":
            raise self.error("missing space after #")
        self.state(val[2:])

    def _body_line(self, line: str) -> None:
        word = line.split(" ", 1)[0]
        doc = self.doc
        if doc.symbol is None and not doc.body.text and line.startswith("@"):
            if not line.endswith(":"):
                raise self.error("line should end with ':'")
            doc.symbol = line[1:-1]
            if not doc.symbol:
                raise self.error(
                    "invalid name"
                    if self.level is Level.V5_2
                    else "name required after '@'"
                )
        elif doc.symbol is not None:
            if word.startswith("@") and word.endswith(":"):
                self.state = self._args_line
                self._args_line(line)
            elif line == "Features:":
                self.state = self._features_line
            elif word in self.tags:
                self.state = self._various_line
                self._various_line(line)
            else:
                self._freeform(line)
        else:
            self._freeform(line)

    def _paragraph_break(self) -> bool:
        assert self.section is not None
        return self.section.text.endswith("\n\n")

    def _args_line(self, line: str) -> None:
        word = line.split(" ", 1)[0]
        if word.startswith("@") and word.endswith(":"):
            line, indent = self._strip_header(line, _AT_NAME_HEADER)
            self._start_described(self.doc.args, "member", word[1:-1], indent)
        elif word in self.tags:
            self.state = self._various_line
            self._various_line(line)
            return
        elif self._paragraph_break() and line and not line[0].isspace():
            if line == "Features:":
                self.state = self._features_line
            else:
                self._start_section(None, 0)
                self.state = self._various_line
                self._various_line(line)
            return
        self._freeform(line)

    def _features_line(self, line: str) -> None:
        word = line.split(" ", 1)[0]
        if word.startswith("@") and word.endswith(":"):
            line, indent = self._strip_header(line, _AT_NAME_HEADER)
            self._start_described(self.doc.features, "feature", word[1:-1], indent)
        elif word in self.tags:
            self.state = self._various_line
            self._various_line(line)
            return
        elif self._paragraph_break() and line and not line[0].isspace():
            self._start_section(None, 0)
            self.state = self._various_line
            self._various_line(line)
            return
        self._freeform(line)

    def _various_line(self, line: str) -> None:
        word = line.split(" ", 1)[0]
        if word.startswith("@") and word.endswith(":"):
            first = self.doc.sections[0].name if self.doc.sections else None
            raise self.error(f"'{excerpt(word)}' can't follow '{first}' section")
        if word in self.tags:
            line, indent = self._strip_header(line, _TAG_HEADER)
            self._start_section(word[:-1], indent)
        elif (
            self.permissive
            and self._paragraph_break()
            and line
            and not line[0].isspace()
            and self._expected_indent() > 0
        ):
            # 5.2/7.2 reject this de-indent; 10.0 reads a new paragraph
            self._start_section(None, 0)
        self._freeform(line)

    def _expected_indent(self) -> int:
        section = self.section
        assert section is not None
        if section._cont_indent is not None:
            return section._cont_indent
        return section._indent

    @staticmethod
    def _strip_header(line: str, header: re.Pattern[str]) -> tuple[str, int]:
        """Replace "@name: " / "Tag: " by spaces so the text keeps its column; the
        column is the indentation continuation lines need (0 for a bare header)."""
        match = header.match(line)
        assert match is not None
        indent = match.end()
        rest = line[indent:]
        if not rest:
            return rest, 0
        return " " * indent + rest, indent

    def _start_described(
        self, described: dict[str, DocSection], kind: str, name: str, indent: int
    ) -> None:
        if not name:
            raise self.error("invalid parameter name")
        if name in described:
            raise self.error(f"'{excerpt(name)}' parameter name duplicated")
        self._end_section()
        self.section = DocSection(self.cur.line_info(), kind, name, _indent=indent)
        described[name] = self.section
        self.doc.all_sections.append(self.section)

    def _start_section(self, name: str | None, indent: int) -> None:
        if name in ("Returns", "Since") and self.doc.has_section(name):
            raise self.error(f"duplicated '{name}' section")
        self._end_section()
        kind = "plain" if name is None else "tagged"
        self.section = DocSection(self.cur.line_info(), kind, name, _indent=indent)
        self.doc.sections.append(self.section)
        self.doc.all_sections.append(self.section)

    def _end_section(self) -> None:
        section = self.section
        if section is None:
            return
        section.text = section.text.strip()
        if section.name and not section.text:
            raise self.error(f"empty doc section '{section.name}'")
        self.section = None

    def _freeform(self, line: str) -> None:
        if line[:1] == "@":
            match = _AT_NAME_COLON_FREEFORM.match(line)
            if match:
                raise self.error(
                    f"'{excerpt(match.group(1))}' not allowed in free-form documentation"
                )
        section = self.section
        assert section is not None
        if line:
            indent = len(line) - len(line.lstrip())
            if indent >= section._indent and section._cont_indent is None:
                line = line[section._indent :]
            else:
                line = line[self._dedent(section, indent) :]
        section.text += line.rstrip() + "\n"

    def _dedent(self, section: DocSection, indent: int) -> int:
        """How much leading whitespace to strip from a continuation line."""
        expected = (
            section._cont_indent
            if section._cont_indent is not None
            else section._indent
        )
        if indent >= expected:
            return expected
        if not self.permissive:
            raise self.error(
                f"unexpected de-indent (expected at least {section._indent} spaces)"
            )
        message = f"unexpected de-indent (expected at least {expected} spaces)"
        if indent > 0 and section._cont_indent is None:
            # 10.0 style: continuation lines share their own indentation (one
            # warning for the section)
            section._cont_indent = indent
            self.warnings.append(
                QAPIWarning(self.cur.info(), message, rules.DOC_LAYOUT_10)
            )
            return indent
        self.warnings.append(
            QAPIWarning(self.cur.info(), message, rules.DOC_INDENT_5_0)
        )
        return indent


# ---------------------------------------------------------------------------
# QEMU 10.0 reading

_AT_NAME_COLON = re.compile(r"@([^:]*): *")
# the location of what a check-only reading builds and throws away
_NOWHERE = SourceInfo("", 0)
_MODERN_TAG = re.compile(r"(Returns|Errors|Since|Notes?|Examples?|TODO)(?!::): *")


class _ModernReader:
    """Reads a block the 10.0 way. `check_only`: only whether 10.0 accepts it
    matters (the default level's second reading), so sections are not given
    locations of their own unless an error needs one."""

    def __init__(
        self,
        lines: list[DocLine],
        end_error: QAPIError | None,
        level: Level,
        check_only: bool = False,
    ) -> None:
        self.lines = lines
        self.end_error = end_error
        self.level = level
        self.pos = 0
        self.cur = lines[0]
        self.check_only = check_only
        # check_only: no doc is kept, so its location is not worth building
        self.block_info = _NOWHERE if check_only else lines[0].line_info()
        # check_only: the line each section starts on, by id of the section
        self.section_lines: dict[int, DocLine] = {}

    def error(self, msg: str) -> QAPIError:
        return QAPIError(self.cur.info(), msg, _tab_notes(self.cur.val))

    def here(self) -> SourceInfo:
        """The current line, without column (QEMU reports doc semantics there)."""
        return self.cur.line_info()

    def new_section(self, kind: str, name: str | None = None) -> DocSection:
        if not self.check_only:
            return DocSection(self.here(), kind, name)
        section = DocSection(self.block_info, kind, name)
        self.section_lines[id(section)] = self.cur
        return section

    def section_info(self, section: DocSection) -> SourceInfo:
        line = self.section_lines.get(id(section))
        return section.info if line is None else line.line_info()

    def next_line(self) -> str | None:
        """Advance to the next line: its text after "# ", "" for a blank comment
        line, None at the closing "##"."""
        pos = self.pos = self.pos + 1
        if pos >= len(self.lines):
            assert self.end_error is not None
            raise self.end_error
        line = self.cur = self.lines[pos]
        val = line.val
        second = val[1:2]
        if second == " ":
            return val[2:].rstrip()
        if not second:
            return ""  # "#"
        if second == "#":
            if val != "##":
                raise self.error("junk after '##' at end of documentation comment")
            return None
        raise self.error("missing space after #")

    def read(self) -> QAPIDoc:
        block_info = self.block_info
        line = self.next_line()
        if line is not None and line.startswith("@"):
            if not line.endswith(":"):
                raise self.error("line should end with ':'")
            symbol = line[1:-1]
            if not symbol:
                raise self.error("name required after '@'")
            doc = QAPIDoc(block_info, self.level, symbol)
            self._read_definition(doc)
        else:
            doc = QAPIDoc(block_info, self.level)
            self._read_freeform(doc, line)
        self._finish(doc)
        return doc

    def _read_freeform(self, doc: QAPIDoc, line: str | None) -> None:
        self._ensure_plain(doc)
        first = True
        while line is not None:
            match = _AT_NAME_COLON.match(line)
            if match:
                raise self.error(
                    f"'@{excerpt(match.group(1))}:' not allowed in free-form"
                    " documentation"
                )
            if line.startswith("=") and not first:
                raise self.error("'=' heading must come first in a comment block")
            self._append(doc, line)
            line = self.next_line()
            first = False

    def _read_definition(self, doc: QAPIDoc) -> None:
        line = self.next_line()
        no_more_args = False
        while line is not None:
            while line == "":
                line = self.next_line()
            if line is None:
                break
            if line == "Features:":
                if doc.features:
                    raise self.error("duplicated 'Features:' line")
                line = self.next_line()
                while line == "":
                    line = self.next_line()
                while line is not None and (m := _AT_NAME_COLON.match(line)):
                    self._new_described(doc, doc.features, "feature", m.group(1))
                    if line[m.end() :]:
                        self._append(doc, line[m.end() :])
                    line = self._read_indented(doc)
                if not doc.features:
                    raise self.error("feature descriptions expected")
                no_more_args = True
            elif match := _AT_NAME_COLON.match(line):
                if no_more_args:
                    raise self.error(
                        f"description of '@{excerpt(match.group(1))}:' follows a"
                        " section"
                    )
                while line is not None and (m := _AT_NAME_COLON.match(line)):
                    self._new_described(doc, doc.args, "member", m.group(1))
                    if line[m.end() :]:
                        self._append(doc, line[m.end() :])
                    line = self._read_indented(doc)
                no_more_args = True
            elif match := _MODERN_TAG.match(line):
                tag = match.group(1)
                if tag.startswith("Note"):
                    raise self.error(
                        f"The '{tag}' section is no longer supported. Please use "
                        "rST's '.. note::' or '.. admonition:: notes' directives, "
                        "or another suitable admonition instead."
                    )
                if tag.startswith("Example"):
                    raise self.error(
                        f"The '{tag}' section is no longer supported. Please use "
                        "the '.. qmp-example::' directive, or other suitable "
                        "markup instead."
                    )
                self._new_tagged(doc, tag)
                if line[match.end() :]:
                    self._append(doc, line[match.end() :])
                line = self._read_indented(doc)
                no_more_args = True
            elif line.startswith("="):
                raise self.error("unexpected '=' markup in definition documentation")
            else:
                self._ensure_plain(doc)
                self._append(doc, line)
                line = self._read_paragraph(doc)

    def _read_indented(self, doc: QAPIDoc) -> str | None:
        """The rest of a description or tagged section: the lines indented like the
        first non-blank line after its header, up to one indented less. The
        indentation stays in the text (10.0 leaves dedenting to the rST renderer).
        Returns the first line not read.

        A shallower line is an error only right after the block's first line: QEMU
        10.0 stops complaining once a second line of the block (blank or not) has
        been read, and then treats the shallower line as the start of whatever
        comes next (a paragraph, a tag, a description)."""
        line = self.next_line()
        while line == "":
            self._append(doc, line)
            line = self.next_line()
        if line is None:
            return None
        indent = len(line) - len(line.lstrip())
        if not indent:
            return line
        self._append(doc, line)
        second_line_read = False
        while True:
            line = self.next_line()
            if line is None:
                return None
            if line[:1] == "@" and _AT_NAME_COLON.match(line):
                return line
            cur = len(line) - len(line.lstrip())
            if line != "" and cur < indent:
                if second_line_read:
                    return line
                raise self.error(
                    f"unexpected de-indent (expected at least {indent} spaces)"
                )
            self._append(doc, line)
            second_line_read = True

    def _read_paragraph(self, doc: QAPIDoc) -> str | None:
        while True:
            line = self.next_line()
            if line is None or line == "":
                return line
            self._append(doc, line)

    def _append(self, doc: QAPIDoc, line: str) -> None:
        if not self.check_only:
            doc.all_sections[-1].text += line + "\n"
        elif line:
            # check_only: only whether a section has text matters
            doc.all_sections[-1].text = "+"

    def _ensure_plain(self, doc: QAPIDoc) -> None:
        last = doc.all_sections[-1]
        if last.kind in ("body", "plain"):
            if not last.text and not self.check_only:
                last.info = self.here()
            last.text += "\n"
            return
        section = self.new_section("plain")
        doc.sections.append(section)
        doc.all_sections.append(section)

    def _new_tagged(self, doc: QAPIDoc, tag: str) -> None:
        if tag in ("Returns", "Errors", "Since") and doc.has_section(tag):
            raise QAPIError(self.here(), f"duplicated '{tag}' section")
        section = self.new_section("tagged", tag)
        doc.sections.append(section)
        doc.all_sections.append(section)

    def _new_described(
        self, doc: QAPIDoc, described: dict[str, DocSection], kind: str, name: str
    ) -> None:
        if not name:
            raise QAPIError(self.here(), "invalid parameter name")
        if name in described:
            raise QAPIError(self.here(), f"'{excerpt(name)}' parameter name duplicated")
        section = self.new_section(kind, name)
        described[name] = section
        doc.all_sections.append(section)

    def _finish(self, doc: QAPIDoc) -> None:
        for section in doc.all_sections:
            section.text = section.text.strip("\n")
            if section.kind in ("body", "plain") or section.text:
                continue
            name = excerpt(section.name or "")
            what = name if section.kind == "tagged" else f"@{name}"
            raise QAPIError(
                self.section_info(section), f"text required after '{what}:'"
            )
