"""Reading a QAPI schema: lexer, parser, include and pragma directives.

The syntax is JSON-like: objects, arrays, single-quoted strings (printable ASCII, the
only escape is ``\\\\``), `true`/`false`, and `#` comments to the end of the line. A
comment block opened and closed by `##` lines is a doc comment (see qapigen.doc).

`parse_schema(fname, level)` reads a schema file and everything it includes and returns
the raw top-level expressions in source order (an include directive is followed by the
included file's expressions), every doc comment, and the warnings the permissive level
collected. Expressions are not checked here beyond what the grammar and the two
directives need: that is qapigen.expr's job.

A syntax error is QEMU's message at QEMU's place, with notes that say why and where
else to look (the `{` of an object that is not closed, a trailing comma, `"` for `'`,
...). Text an error quotes from the input goes through `excerpt` (short, escaped), and
a file with a NUL character is refused without quoting it: an `include` of a binary
or secret file (`/proc/self/environ`) must not replay it.

Include paths are relative to the including file; `SourceInfo.fname` of an included
file's expressions is the including file's directory joined with the path as written
(so errors read `include/sub-module.json:3: …` the way QEMU prints them). A file is
read once however often it is included; including a file that is being included is
an error (a loop).

Contract notes (additions to the agreed API, nothing removed):
- `Expression.include_path`: for an include directive, the included file's path as its
  expressions' `info.fname` spells it (`expr['include']` stays the path as written).
- `ParsedSchema.pragma`: the schema's pragma values (also reachable as `info.pragma`
  from every SourceInfo the parser creates).
- `parse_text(text, fname, level)`: parse a schema given as text (includes are
  resolved relative to `fname`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field

from .doc import DocLine, QAPIDoc, parse_doc_block
from .level import Level
from .pragma import Pragma, apply_pragma
from .source import Note, QAPIError, QAPIWarning, SourceInfo, excerpt

# Refuse absurd inputs with a clear message instead of exhausting memory or the stack.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64
MAX_INCLUDE_DEPTH = 100
# how much of a file name a message quotes
_PATH_CHARS = 200


@dataclass
class Expression:
    """One top-level expression: a definition, or an include directive.

    `expr` keeps the source's key order; its values are str, bool, list and dict.
    `doc` is the definition documentation that precedes it, if any.
    """

    expr: dict[str, object]
    info: SourceInfo
    doc: QAPIDoc | None = None
    include_path: str | None = None


@dataclass
class ParsedSchema:
    """What parsing a schema yields: expressions (include directives included) and
    doc comments in source order, permissive-level warnings, and the pragmas."""

    exprs: list[Expression] = field(default_factory=list)
    docs: list[QAPIDoc] = field(default_factory=list)
    warnings: list[QAPIWarning] = field(default_factory=list)
    pragma: Pragma = field(default_factory=Pragma)


def parse_schema(fname: str, level: Level = Level.PERMISSIVE) -> ParsedSchema:
    """Read the schema file `fname` and everything it includes.

    Raises QAPIError (located, with the include chain) for anything wrong: a file that
    cannot be read or is not UTF-8, a lexical or syntax error, a bad directive, an
    include loop, or a doc comment that breaks `level`'s layout rules.
    """
    schema = ParsedSchema()
    _SchemaReader(schema, level).read_file(fname, None)
    return schema


def parse_text(
    text: str, fname: str = "<string>", level: Level = Level.PERMISSIVE
) -> ParsedSchema:
    """Like `parse_schema`, for a schema given as text named `fname`."""
    schema = ParsedSchema()
    _SchemaReader(schema, level).read_source(text, fname, None)
    return schema


class _SchemaReader:
    """State shared by all files of one schema."""

    def __init__(self, schema: ParsedSchema, level: Level) -> None:
        self.schema = schema
        self.level = level
        self.included: set[str] = set()

    def read_file(self, fname: str, incl_info: SourceInfo | None) -> None:
        what = "include" if incl_info is not None else "schema"
        try:
            mode = os.stat(fname).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            if not stat.S_ISREG(mode):
                # a FIFO or device could block or never end
                raise OSError(errno.EINVAL, "not a regular file")
            with open(fname, "rb") as stream:
                data = stream.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError) as exc:
            # ValueError: a path with a NUL character
            reason = getattr(exc, "strerror", None) or str(exc)
            raise QAPIError(
                incl_info,
                f"can't read {what} file '{excerpt(fname, _PATH_CHARS)}': {reason}",
            ) from None
        if len(data) > MAX_FILE_BYTES:
            raise QAPIError(
                incl_info,
                f"{what} file '{excerpt(fname, _PATH_CHARS)}' is too large "
                f"(more than {MAX_FILE_BYTES} bytes)",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            line_start = data.rfind(b"\n", 0, exc.start) + 1
            before = data[line_start : exc.start].decode("utf-8", "replace")
            col = _column(before)
            info = SourceInfo(fname, line, col, incl_info)
            raise QAPIError(
                info, f"invalid UTF-8 (byte 0x{data[exc.start]:02x})"
            ) from None
        self.read_source(text, fname, incl_info)

    def read_source(self, text: str, fname: str, incl_info: SourceInfo | None) -> None:
        self.included.add(os.path.abspath(fname))
        nul = text.find("\0")
        if nul >= 0:
            # a binary file, or a file such as /proc/self/environ included by
            # mistake: say so without quoting any of it
            line = text.count("\n", 0, nul) + 1
            line_start = text.rfind("\n", 0, nul) + 1
            info = SourceInfo(fname, line, _column(text[line_start:nul]), incl_info)
            raise QAPIError(
                info,
                "NUL character: this is not a QAPI schema (a schema is text)",
            )
        _FileParser(self, text, fname, incl_info).parse()


# The inside of a doc block, from the newline ending its opening `##` line: blank
# lines and comment lines that do not start with `##`.
_DOC_INSIDE = re.compile(r"\n(?:[^\S\n]*(?:#(?!#)[^\n]*)?\n)*")
_LINE_INDENT = re.compile(r"[^\S\n]*")
# The gap and the next token when it is a common one: punctuation (group 1), a string
# needing no checks (2), true (3), false (4). Anything else is looked at by hand.
_NEXT = re.compile(
    r"(?:\s|#(?!#)[^\n]*)*+"
    r"(?:([{}:,\[\]])|'((?:[ -&(-\[\]-~]|\\\\)*)'|(true)|(false))?"
)
_STRAY_WORD = re.compile(r"""[^\[\]{}:,\s'"]+""")
_NUMBER_LIKE = re.compile(r"[-+]?[0-9][0-9.eExXa-fA-F]*")
_WORD_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _stray_hint(word: str) -> str | None:
    """What a stray token usually means, for a note under the error."""
    if word == '"':
        return "QAPI strings use single quotes: 'like this'"
    if word.lower() in ("true", "false"):
        return f"booleans are lower-case: {word.lower()}"
    if word in ("null", "None", "NULL", "nil"):
        return "QAPI has no null: leave the member out"
    if word.startswith(("//", "/*")):
        return "comments start with '#' and run to the end of the line"
    if _NUMBER_LIKE.fullmatch(word):
        return "QAPI has no numbers: a type is named ('int'), a value is a string"
    if _WORD_LIKE.fullmatch(word):
        return f"names are strings: '{excerpt(word)}'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in word):
        return "a control character: is this file a QAPI schema?"
    return None


def _describe_char(ch: str) -> str:
    """A character as a message names it: "U+0009 (a tab)", "U+00E9 'é'"."""
    names = {"\t": "a tab", "\r": "a carriage return", "\x7f": "DEL"}
    code = f"U+{ord(ch):04X}"
    if ch in names:
        return f"{code} ({names[ch]})"
    if ch.isprintable():
        return f"{code} '{ch}'"
    return f"{code} (a control character)"


def _column(before: str) -> int:
    """The 1-based column after the text `before` on a line. A tab advances to the
    next tab stop (every 8 columns), as editors and GNU-style messages count."""
    if "\t" not in before:
        return len(before) + 1
    col = 1
    for ch in before:
        col = ((col - 1) // 8 + 1) * 8 + 1 if ch == "\t" else col + 1
    return col


class _FileParser:
    """Parses one file. Tokens: `tok` is one of `{}[]:,`, `'` (string, value in
    `val`), `t`/`f` (booleans), `#` (comment, text in `val`) or None at the end."""

    def __init__(
        self,
        reader: _SchemaReader,
        text: str,
        fname: str,
        incl_info: SourceInfo | None,
    ) -> None:
        self.reader = reader
        self.level = reader.level
        if not text.endswith("\n"):
            text += "\n"
        self.src = text
        self.fname = fname
        self.incl_info = incl_info
        self.base = SourceInfo(fname, 1, None, incl_info, pragma=reader.schema.pragma)
        self.cursor = 0
        self.line = 1
        self.line_pos = 0
        self.pos = 0
        self.tok: str | None = None
        self.val: object = None
        self.depth = 0

    # ---- locations and errors ----

    def column(self, pos: int) -> int:
        """1-based column of `pos` on the current line."""
        return _column(self.src[self.line_pos : pos])

    def here(self) -> SourceInfo:
        return SourceInfo(
            self.fname,
            self.line,
            self.column(self.pos),
            self.incl_info,
            pragma=self.reader.schema.pragma,
        )

    def error(self, msg: str, *notes: Note) -> QAPIError:
        return QAPIError(self.here(), msg, notes)

    def info_at(self, line: int, line_pos: int, pos: int) -> SourceInfo:
        """The location of an earlier token (from the numbers `mark()` gave)."""
        return SourceInfo(
            self.fname,
            line,
            _column(self.src[line_pos:pos]),
            self.incl_info,
            pragma=self.reader.schema.pragma,
        )

    def mark(self) -> tuple[int, int, int]:
        """Where the current token is, cheaply: a location is only built from it
        when an error needs one."""
        return self.line, self.line_pos, self.pos

    # ---- lexer ----

    def skip_to(self, end: int) -> bool:
        """Move past the gap [cursor, end), counting the lines it spans; True (and
        no token) at the end of the input."""
        src = self.src
        eof = end == len(src)
        if eof:
            # Like QEMU, stay on the last line: the final newline starts no line.
            end -= 1
            self.tok = None
        newlines = src.count("\n", self.cursor, end)
        if newlines:
            self.line += newlines
            self.line_pos = src.rfind("\n", self.cursor, end) + 1
        self.cursor = end
        self.pos = end
        return eof

    def accept(self) -> None:
        """Advance to the next token (plain comments and whitespace are skipped)."""
        src = self.src
        cursor = self.cursor
        # one match skips the gap and, for the common tokens, reads the token
        m = _NEXT.match(src, cursor)
        assert m is not None
        which = m.lastindex
        if which is None:
            pos = m.end()
        elif which == 2:
            pos = m.start(2) - 1  # the opening quote
        else:
            pos = m.start(which)
        if pos == len(src):
            self.skip_to(pos)
            return
        newlines = src.count("\n", cursor, pos)
        if newlines:
            self.line += newlines
            self.line_pos = src.rfind("\n", cursor, pos) + 1
        self.pos = pos
        if which == 1:
            self.tok = src[pos]
            self.cursor = pos + 1
        elif which == 2:
            self.tok = "'"
            self.val = m.group(2).replace("\\\\", "\\")
            self.cursor = m.end()
        elif which == 3:
            self.tok = "t"
            self.val = True
            self.cursor = pos + 4
        elif which == 4:
            self.tok = "f"
            self.val = False
            self.cursor = pos + 5
        else:
            ch = src[pos]
            if ch == "#":
                end = src.find("\n", pos)
                self.tok = "#"
                self.val = src[pos:end]
                self.cursor = end
            elif ch == "'":
                self.tok = "'"
                self.cursor = pos + 1
                self.val = self.scan_string()
            else:
                match = _STRAY_WORD.match(src, pos)
                word = match.group() if match else ch
                hint = _stray_hint(word)
                notes = (Note(None, hint),) if hint else ()
                raise self.error(f"stray '{excerpt(word)}'", *notes)

    def scan_string(self) -> str:
        """The slow path for a string the fast pattern refused: find the first
        problem in reading order (the error points at the opening quote)."""
        src = self.src
        out: list[str] = []
        escaped = False
        i = self.cursor
        while True:
            ch = src[i]
            i += 1
            if ch == "\n":
                raise self.error(
                    'missing terminating "\'"',
                    Note(None, "a string ends on the line it starts on"),
                )
            if escaped:
                if ch != "\\":
                    raise self.error(
                        f"unknown escape \\{excerpt(ch)}",
                        Note(None, "the only escape in a string is '\\\\'"),
                    )
                escaped = False
            elif ch == "\\":
                escaped = True
                continue
            elif ch == "'":
                self.cursor = i
                return "".join(out)
            if ord(ch) < 32 or ord(ch) >= 127:
                raise self.error(
                    "funny character in string",
                    Note(
                        self.info_at(self.line, self.line_pos, i - 1),
                        f"{_describe_char(ch)}: strings hold printable ASCII only",
                    ),
                )
            out.append(ch)

    # ---- grammar ----

    def get_members(self, opened: tuple[int, int, int]) -> dict[str, object]:
        """The members of an object whose `{` is at `opened` (see `mark`)."""
        members: dict[str, object] = {}
        if self.tok == "}":
            self.accept()
            return members
        if self.tok != "'":
            raise self.error(
                "expected string or '}'", *self.unclosed_notes(opened, "object")
            )
        while True:
            key = self.val
            assert isinstance(key, str)
            self.accept()
            if self.tok != ":":
                notes = self.unclosed_notes(opened, "object")
                if self.tok == "'":
                    notes = (Note(None, "is a ':' missing before this?"),)
                raise self.error("expected ':'", *notes)
            self.accept()
            if key in members:
                raise self.error(f"duplicate key '{excerpt(key)}'")
            members[key] = self.get_value()
            if self.tok == "}":
                self.accept()
                return members
            if self.tok != ",":
                raise self.error(
                    "expected ',' or '}'",
                    *self.unclosed_notes(opened, "object", after_value=True),
                )
            comma = self.mark()
            self.accept()
            if self.tok != "'":
                notes = self.unclosed_notes(opened, "object")
                if self.tok == "}":
                    notes = (
                        Note(
                            self.info_at(*comma), "no ',' after an object's last member"
                        ),
                    )
                raise self.error("expected string", *notes)

    def get_values(self, opened: tuple[int, int, int]) -> list[object]:
        """The values of an array whose `[` is at `opened` (see `mark`)."""
        values: list[object] = []
        if self.tok == "]":
            self.accept()
            return values
        if self.tok is None or self.tok not in "{['tf":
            raise self.error(
                (
                    "expected '{', '[', ']', string, boolean or 'null'"
                    if self.level is Level.V5_2
                    else "expected '{', '[', ']', string, or boolean"
                ),
                *self.unclosed_notes(opened, "array"),
            )
        while True:
            values.append(self.get_value())
            if self.tok == "]":
                self.accept()
                return values
            if self.tok != ",":
                raise self.error(
                    "expected ',' or ']'",
                    *self.unclosed_notes(opened, "array", after_value=True),
                )
            comma = self.mark()
            self.accept()
            if self.tok == "]":
                raise self.value_expected(
                    Note(self.info_at(*comma), "no ',' after an array's last value")
                )

    def get_value(self) -> object:
        if self.tok == "{" or self.tok == "[":
            if self.depth >= MAX_NESTING:
                raise self.error(f"nesting too deep (more than {MAX_NESTING} levels)")
            self.depth += 1
            opener = self.tok
            opened = self.mark()
            self.accept()
            value: object = (
                self.get_members(opened) if opener == "{" else self.get_values(opened)
            )
            self.depth -= 1
            return value
        if self.tok is not None and self.tok in "'tf":
            value = self.val
            self.accept()
            return value
        raise self.value_expected()

    def value_expected(self, *notes: Note) -> QAPIError:
        return self.error(
            (
                "expected '{', '[', string, boolean or 'null'"
                if self.level is Level.V5_2
                else "expected '{', '[', string, or boolean"
            ),
            *notes,
        )

    def unclosed_notes(
        self, opened: tuple[int, int, int], what: str, after_value: bool = False
    ) -> tuple[Note, ...]:
        """Notes for a syntax error inside an object or array opened at `opened`:
        the likely cause, and where it opened when that is on another line.
        `after_value`: the error is where a ',' or the closing bracket should be."""
        tok = self.tok
        close = "}" if what == "object" else "]"
        if tok is None or (tok in "{[" and self.pos == self.line_pos):
            # the end of the file, or what starts a line like a new definition
            return (
                Note(
                    self.info_at(*opened),
                    f"this {what} is not closed: is a '{close}' missing?",
                ),
            )
        notes: list[Note] = []
        if tok in "]}" and tok != close:
            notes.append(Note(None, f"is a '{close}' missing before this '{tok}'?"))
        elif after_value and tok in "'tf{[":
            notes.append(Note(None, "is a ',' missing before this?"))
        if opened[0] != self.line:
            notes.append(Note(self.info_at(*opened), f"the {what} opened here"))
        return tuple(notes)

    # ---- top level ----

    def parse(self) -> None:
        schema = self.reader.schema
        self.accept()
        cur_doc: QAPIDoc | None = None
        while self.tok is not None:
            info = SourceInfo(
                self.fname, self.line, None, self.incl_info, pragma=schema.pragma
            )
            if self.tok == "#":
                self.reject_expr_doc(cur_doc)
                docs = self.get_doc()
                schema.docs.extend(docs)
                cur_doc = docs[-1]
                continue
            if self.tok in (",", "}", "]"):
                hint = (
                    "definitions are not separated by ','"
                    if self.tok == ","
                    else f"this '{self.tok}' closes nothing"
                )
                if self.level is Level.V5_2:
                    raise self.error("expected '{'", Note(None, hint))
                raise self.value_expected(Note(None, hint))
            if self.level is Level.V5_2 and self.tok != "{":
                raise self.error("expected '{'")
            value = self.get_value()
            if not isinstance(value, dict):
                raise QAPIError(info, "top-level expression must be an object")
            if "include" in value:
                self.reject_expr_doc(cur_doc)
                self.include(value, info)
            elif "pragma" in value:
                self.reject_expr_doc(cur_doc)
                self.pragma(value, info)
            else:
                if cur_doc is not None and cur_doc.symbol is None:
                    raise QAPIError(cur_doc.info, "definition documentation required")
                schema.exprs.append(Expression(value, info, cur_doc))
            cur_doc = None
        self.reject_expr_doc(cur_doc)

    @staticmethod
    def reject_expr_doc(doc: QAPIDoc | None) -> None:
        if doc is not None and doc.symbol is not None:
            raise QAPIError(
                doc.info,
                f"documentation for '{excerpt(doc.symbol)}' is not followed by the"
                " definition",
            )

    def include(self, value: dict[str, object], info: SourceInfo) -> None:
        if len(value) != 1:
            raise QAPIError(info, "invalid 'include' directive")
        include = value["include"]
        if not isinstance(include, str):
            raise QAPIError(info, "value of 'include' must be a string")
        incl_fname = os.path.join(os.path.dirname(self.fname), include)
        self.reader.schema.exprs.append(
            Expression({"include": include}, info, include_path=incl_fname)
        )
        incl_abs = os.path.abspath(incl_fname)
        chain: SourceInfo | None = info
        depth = 0
        while chain is not None:
            if incl_abs == os.path.abspath(chain.fname):
                raise QAPIError(info, f"inclusion loop for {include}")
            chain = chain.parent
            depth += 1
        if depth >= MAX_INCLUDE_DEPTH:
            raise QAPIError(
                info, f"includes nested too deeply (more than {MAX_INCLUDE_DEPTH})"
            )
        if incl_abs in self.reader.included:
            return
        self.reader.read_file(incl_fname, info)

    def pragma(self, value: dict[str, object], info: SourceInfo) -> None:
        if len(value) != 1:
            raise QAPIError(info, "invalid 'pragma' directive")
        pragmas = value["pragma"]
        if not isinstance(pragmas, dict):
            raise QAPIError(info, "value of 'pragma' must be an object")
        for name, setting in pragmas.items():
            apply_pragma(
                self.reader.schema.pragma,
                name,
                setting,
                info,
                self.level,
                self.reader.schema.warnings,
            )

    def get_doc(self) -> list[QAPIDoc]:
        """Collect the lines of the doc block at the current token, then parse them.

        A token that is not a comment before the closing `##` (or a lexical error
        there) is reported only after the lines before it: QEMU reads a block line by
        line, so an earlier layout error wins.
        """
        src = self.src
        base = self.base
        opening = self.val
        assert isinstance(opening, str)
        lines = [DocLine(opening, self.line, self.column(self.pos), base)]
        # All lines up to the closing `##` (or whatever else ends the block) in one
        # match, split into lines in bulk: doc comments are most of a schema.
        inside = _DOC_INSIDE.match(src, self.cursor)
        assert inside is not None
        chunk = inside.group()
        first_line = self.line
        for offset, text in enumerate(chunk.split("\n")):
            if text[:1] == "#":
                lines.append(DocLine(text, first_line + offset, 1, base))
                continue
            val = text.lstrip()
            if val:
                indent = text[: len(text) - len(val)]
                lines.append(DocLine(val, first_line + offset, _column(indent), base))
        end = inside.end()
        newlines = chunk.count("\n")
        end_error: QAPIError | None = None
        if end == len(src):
            # the input ends inside the block: QEMU points past the last line
            self.line = first_line + newlines - 1
            self.line_pos = src.rfind("\n", 0, end - 1) + 1
            self.pos = self.cursor = end - 1
            self.tok = None
            end_error = self.error("documentation comment must end with '##'")
        else:
            self.line = first_line + newlines
            self.line_pos = self.cursor = end
            start = _LINE_INDENT.match(src, end)
            assert start is not None
            self.pos = start.end()
            if src[self.pos] == "#":
                # a line starting with `##`: the end of the block
                close = src.find("\n", self.pos)
                lines.append(
                    DocLine(
                        src[self.pos : close], self.line, self.column(self.pos), base
                    )
                )
                self.cursor = close
            else:
                try:
                    self.accept()
                except QAPIError as exc:
                    end_error = exc
                else:
                    end_error = self.error("documentation comment must end with '##'")
        docs = parse_doc_block(
            lines, end_error, self.level, self.reader.schema.warnings
        )
        self.accept()
        return docs
