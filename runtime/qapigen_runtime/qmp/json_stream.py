"""Cutting a QMP input stream into JSON values, with QEMU's dialect, limits and errors.

QEMU does not frame QMP input by lines: it lexes the byte stream and hands a value to
its parser as soon as its brackets balance, so ``{...}{...}`` on one line are two
commands and one command may span lines. Its JSON dialect also accepts single-quoted
strings. Errors are answered with fixed texts ("JSON parse error, stray '@'", ...),
after which the lexer skips input up to a structural character, a control character
other than tab, or a byte 0xFE/0xFF, and carries on. This module reproduces that
behaviour (observed on QEMU 7.2: the texts, the recovery points, when a value is
complete, the order of the limit checks) with its own code.

Memory: the tokens of an unfinished value are kept as their bytes, back to back
(whitespace dropped, a NUL between two adjacent numbers or keywords), so a value
costs what its tokens weigh on the wire; `max_value_size` bounds that, plus the
token being read. A value that would need more is answered as QEMU answers a value
over its own limit (64 MiB): "JSON token size limit exceeded". The value is parsed
when it is complete.

Values are pulled one at a time (`take`), so a reader that stops taking them (a
server whose client does not read its replies) holds no more than the bytes it was
given. Speed matters only for well-formed input: a complete line that Python's C
JSON decoder reads the way QEMU would, and that cannot break a limit, is taken whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .json_parser import ParseError, parse
from .json_text import integer, might_differ_in_python, shown

MAX_NESTING_DEPTH = 1024
"""Deepest nesting QEMU accepts; one level more is refused."""

MAX_VALUE_SIZE = 64 * 1024 * 1024
"""QEMU's limit on the bytes of one value's tokens (whitespace excluded)."""

MAX_TOKEN_COUNT = 2 * 1024 * 1024
"""Most tokens one value may have (QEMU's limit)."""

# A complete line shorter than this holds fewer tokens than the count limit allows.
_FAST_LINE_LIMIT = 1024 * 1024

_PARSE_ERROR = "JSON parse error, "
TOO_LARGE = "JSON token size limit exceeded"


@dataclass(frozen=True, slots=True)
class JsonInputError:
    """Input that produced no value; `desc` is the text QEMU answers it with."""

    desc: str


class StreamItem:
    """One value (or `JsonInputError`) and where it lay in the stream: `start` is the
    offset of its first byte, `end` the offset just past its last."""

    __slots__ = ("end", "start", "value")

    def __init__(self, value: object, start: int, end: int) -> None:
        self.value = value
        self.start = start
        self.end = end

    @property
    def size(self) -> int:
        return self.end - self.start


class _DuplicateKey(ValueError):
    pass


class _BadConstant(ValueError):
    pass


def _pairs_to_dict(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def _reject_constant(name: str) -> object:
    raise _BadConstant(name)


_fast_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs_to_dict,
    parse_constant=_reject_constant,
    parse_int=lambda text: integer(int(text)),
)

_STRUCTURAL = frozenset(b"{}[]:,")
_WHITESPACE = frozenset(b" \t\n\r")
_DIGITS = frozenset(b"0123456789")
_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz")
# Inside a string: any byte from 0x20 to 0xFD but the quote and the backslash, or a
# backslash and any byte from 0x20 to 0xFD (the parser checks the escape later).
_STRING_BODY = {
    quote: re.compile(
        rb"(?:[^\\\x00-\x1f\xfe\xff" + quote + rb"]|\\[^\x00-\x1f\xfe\xff])*"
    )
    for quote in (b'"', b"'")
}
_KEYWORD_RE = re.compile(rb"[a-z]*")
# One whole token (after whitespace) that needs no byte-by-byte care: a structural
# character, a complete string, or a number or keyword with the byte after it in
# the buffer and not one that would continue it or make it an error (QEMU takes no
# exponent right after a lone zero). Anything else goes through `_start_token`.
_SIMPLE_TOKEN = re.compile(
    rb"[ \t\r\n]*(?:"
    rb"([{}\[\]:,])"
    rb'|("(?:[^"\\\x00-\x1f\xfe\xff]|\\[^\x00-\x1f\xfe\xff])*"'
    rb"|'(?:[^'\\\x00-\x1f\xfe\xff]|\\[^\x00-\x1f\xfe\xff])*')"
    rb"|(-?(?:0(?![0-9.])|[1-9][0-9]*(?![0-9.eE])|(?:0|[1-9][0-9]*)\.[0-9]+(?![0-9eE])"
    rb"|(?:0\.[0-9]+|[1-9][0-9]*(?:\.[0-9]+)?)[eE][+-]?[0-9]+(?![0-9]))(?=[\s\S]))"
    rb"|([a-z]+(?=[^a-z]))"
    rb")"
)
_NOT_WHITESPACE = re.compile(rb"[^ \t\n\r]")
# Where lexing restarts after an error.
_RECOVERY_RE = re.compile(rb"[{}\[\]:,\x00-\x08\x0a-\x1f\xfe\xff]")

# Token kinds: a structural token is its byte; the others (the group numbers of
# _SIMPLE_TOKEN for the scalars).
_STRING, _NUMBER, _KEYWORD, _ERROR = 2, 3, 4, -1
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET = b"{}[]"

# Lexer modes.
_START, _RECOVERY, _IN_STRING, _IN_NUMBER, _IN_KEYWORD = range(5)


def _stray(text: bytes) -> JsonInputError:
    return JsonInputError(f"{_PARSE_ERROR}stray '{shown(text)}'")


class JsonStreamParser:
    """Incremental splitter and parser: `push` bytes, `take` values.

    Each item taken is a parsed JSON value or a `JsonInputError`, in the order the
    input produced them. `feed` does both for callers that want every value at once.
    """

    def __init__(
        self,
        *,
        max_depth: int = MAX_NESTING_DEPTH,
        max_value_size: int = MAX_VALUE_SIZE,
        max_token_count: int = MAX_TOKEN_COUNT,
    ) -> None:
        self._max_depth = max_depth
        self._max_value_size = max_value_size
        self._max_token_count = max_token_count
        self._buf = bytearray()
        self._base = 0  # stream offset of self._buf[0]
        self._pos = 0  # next byte to lex
        self._mode = _START
        # the token being read: where it began, how far it was checked
        self._token_start = 0
        self._scan = 0
        self._number_state = 0
        self._quote = 0x22
        self._dropped = 0  # bytes of a refused token already let go
        self._refused = False  # the token being read was refused for its size
        self._slow_until = -1  # the fast path failed on the line ending here
        # the value being collected
        self._value = bytearray()  # its tokens, see the module docstring
        self._value_start: int | None = None
        self._braces = 0
        self._brackets = 0
        self._tokens = 0
        self._last_scalar = False

    # -- public ----------------------------------------------------------------

    def push(self, data: bytes | bytearray | memoryview) -> None:
        """Append input (it is lexed by `take`)."""
        self._buf += data

    def take(self) -> StreamItem | None:
        """The next value or error the input holds, or None until more is pushed."""
        if (
            self._mode == _START
            and not self._tokens
            and self._slow_until < self._pos < len(self._buf)
        ):
            fast = self._take_fast_line()  # a request on a line of its own, at once
            if fast is not None:
                return fast
        while True:
            mode = self._mode
            item: StreamItem | _NeedMore | None
            if mode == _START:
                item = self._simple_tokens()
                if item is None:
                    item = self._start_token()
            elif mode == _RECOVERY:
                match = _RECOVERY_RE.search(self._buf, self._pos)
                if match is None:
                    self._pos = len(self._buf)
                    return self._need_more()
                self._pos = match.start()
                self._mode = _START
                continue
            else:
                item = self._continue_token()
            if item is _NEED_MORE:
                return self._need_more()
            if item is not None:
                assert isinstance(item, StreamItem)
                return item

    def feed(self, data: bytes) -> list[object]:
        """Push `data` and take every value it completes."""
        self.push(data)
        out: list[object] = []
        while (item := self.take()) is not None:
            out.append(item.value)
        return out

    @property
    def held_bytes(self) -> int:
        """Bytes held: input not lexed yet, the token being read, and the tokens of
        the unfinished value."""
        return len(self._buf) - self._keep_from() + len(self._value)

    @property
    def stream_offset(self) -> int:
        """Offset of the end of the input pushed so far."""
        return self._base + len(self._buf)

    def value_start(self) -> int | None:
        """Offset where the unfinished value (or token) began; None when none is."""
        if self._value_start is not None:
            return self._value_start
        if self._mode in (_IN_STRING, _IN_NUMBER, _IN_KEYWORD):
            return self._base + self._token_start
        return None

    def next_start(self) -> int | None:
        """Offset of the next byte pushed but not lexed that is not whitespace."""
        match = _NOT_WHITESPACE.search(self._buf, self._pos)
        return None if match is None else self._base + match.start()

    # -- lexing ----------------------------------------------------------------

    def _keep_from(self) -> int:
        """The first byte still needed: the token being read, or the next byte."""
        if self._mode in (_IN_STRING, _IN_NUMBER, _IN_KEYWORD):
            return self._token_start
        return self._pos

    def _need_more(self) -> StreamItem | None:
        """At the end of the input: refuse a token that outgrew the budget, drop
        what was consumed, and wait."""
        item = None
        if self._mode in (_IN_STRING, _IN_NUMBER, _IN_KEYWORD):
            item = self._check_token_size(self._scan)
        keep = self._keep_from()
        if keep:
            del self._buf[:keep]
            self._base += keep
            self._pos = max(0, self._pos - keep)  # inside a token it is unused
            self._scan = max(0, self._scan - keep)
            self._token_start -= keep
            self._slow_until -= keep
        return item

    def _start_token(self) -> StreamItem | _NeedMore | None:
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            return _NEED_MORE
        if not self._tokens and pos > self._slow_until:
            item = self._take_fast_line()
            if item is not None:
                return item
        byte = buf[pos]
        if byte in _WHITESPACE:
            match = _NOT_WHITESPACE.search(buf, pos)
            self._pos = len(buf) if match is None else match.start()
            return None
        if byte in _STRUCTURAL:
            self._pos = pos + 1
            return self._token(byte, bytes((byte,)), pos)
        self._token_start = self._scan = pos
        self._dropped = 0
        self._refused = False
        if byte == 0x22 or byte == 0x27:
            self._mode = _IN_STRING
            self._quote = byte
            self._scan = pos + 1
        elif byte == 0x2D or byte in _DIGITS:
            self._mode = _IN_NUMBER
            self._number_state = _NUMBER_START
        elif byte in _LOWER:
            self._mode = _IN_KEYWORD
        else:
            # QEMU reports the one byte it could not lex, even inside UTF-8
            self._pos = pos + 1
            self._mode = _RECOVERY
            return self._error(bytes((byte,)), pos)
        return self._continue_token()

    def _continue_token(self) -> StreamItem | _NeedMore | None:
        """Lex on in the token being read; a token that ends is processed."""
        mode = self._mode
        if mode == _IN_STRING:
            end, outcome = self._scan_string()
        elif mode == _IN_NUMBER:
            end, outcome = self._scan_number()
        else:
            match = _KEYWORD_RE.match(self._buf, self._scan)
            assert match is not None
            end = match.end()
            outcome = _NEED_MORE if end == len(self._buf) else _KEYWORD
        cut = self._qemu_cut(end)
        if not isinstance(cut, _NotCut):
            return cut
        if outcome is _NEED_MORE:
            self._scan = end
            return _NEED_MORE
        start = self._token_start
        self._pos = end
        self._mode = _START if outcome != _ERROR else _RECOVERY
        if self._refused:  # already answered with the size error
            return None
        text = bytes(self._buf[start:end])
        if outcome == _ERROR:
            return self._error(text, start)
        assert isinstance(outcome, int)
        return self._token(outcome, text, start)

    def _scan_string(self) -> tuple[int, int | _NeedMore]:
        buf = self._buf
        quote = self._quote
        match = _STRING_BODY[bytes((quote,))].match(buf, self._scan)
        assert match is not None
        end = match.end()
        if end >= len(buf) or (buf[end] == 0x5C and end + 1 >= len(buf)):
            return end, _NEED_MORE
        if buf[end] == quote:
            return end + 1, _STRING
        # a control character or 0xFE/0xFF, alone or after a backslash
        return end + (2 if buf[end] == 0x5C else 1), _ERROR

    def _scan_number(self) -> tuple[int, int | _NeedMore]:
        buf = self._buf
        state = self._number_state
        pos = self._scan
        size = len(buf)
        while pos < size:
            step = _number_step(state, buf[pos])
            if step is None:  # the number ended before this byte
                return pos, _NUMBER
            if step == _NUMBER_ERROR:
                return pos + 1, _ERROR
            state = step
            pos += 1
        self._number_state = state
        return pos, _NEED_MORE

    def _qemu_cut(self, end: int) -> StreamItem | _NotCut | None:
        """QEMU's lexer hands a token over as soon as it outgrows the size limit,
        then starts afresh with the next byte: do the same."""
        length = self._dropped + end - self._token_start
        if length <= self._max_value_size:
            return _NOT_CUT
        cut = self._token_start + self._max_value_size + 1 - self._dropped
        refused = self._refused
        start = self._base + self._token_start
        self._pos = cut
        self._mode = _START
        self._refused = False
        if refused:
            return None
        return self._refuse(start, self._base + cut)

    def _check_token_size(self, end: int) -> StreamItem | None:
        """Refuse the unfinished token once the value cannot take it any more; its
        remaining bytes are then skipped without being kept."""
        if self._refused:
            self._dropped += end - self._token_start
            self._token_start = self._scan = end
            return None
        length = end - self._token_start
        if len(self._value) + length + 1 <= self._max_value_size:
            return None
        item = self._refuse(self._base + self._token_start, self._base + end)
        self._refused = True
        self._dropped = length
        self._token_start = self._scan = end
        return item

    # -- the fast path ---------------------------------------------------------

    def _take_fast_line(self) -> StreamItem | None:
        buf = self._buf
        pos = self._pos
        newline = buf.find(b"\n", pos)
        if newline < 0:
            self._slow_until = len(buf)  # this line goes the token path
            return None
        line = bytes(buf[pos:newline])
        stripped = line.strip()
        if (
            not stripped.startswith(b"{")
            or len(stripped)
            >= min(_FAST_LINE_LIMIT, self._max_value_size, self._max_token_count)
            or stripped.count(b"{") + stripped.count(b"[") > self._max_depth
            or might_differ_in_python(stripped)
        ):
            self._slow_until = newline
            return None
        try:
            value = _fast_decoder.decode(stripped.decode("utf-8"))
        except (ValueError, RecursionError):
            self._slow_until = newline
            return None
        self._pos = newline + 1
        start = self._base + pos + line.find(b"{")
        return StreamItem(value, start, self._base + newline)

    # -- the streamer: tokens to values ----------------------------------------

    def _error(self, text: bytes, start: int) -> StreamItem:
        """A lexer error: the value being collected is dropped with it."""
        return self._emit(_stray(text), start, start + len(text))

    def _refuse(self, start: int, end: int) -> StreamItem:
        return self._emit(JsonInputError(TOO_LARGE), start, end, absolute=True)

    def _emit(
        self, value: object, start: int, end: int, *, absolute: bool = False
    ) -> StreamItem:
        if not absolute:
            start += self._base
            end += self._base
        if self._value_start is not None:
            start = self._value_start
        self._reset()
        return StreamItem(value, start, end)

    def _reset(self) -> None:
        self._value = bytearray()
        self._value_start = None
        self._braces = self._brackets = self._tokens = 0
        self._last_scalar = False

    def _simple_tokens(self) -> StreamItem | None:
        """Take the tokens `_SIMPLE_TOKEN` matches, up to the first item."""
        if not self._tokens and self._pos > self._slow_until:
            return None  # let `_start_token` try the whole line first
        buf = self._buf
        match_token = _SIMPLE_TOKEN.match
        value = self._value
        # with room for a separator (see _token's checks)
        max_size = self._max_value_size - 1
        max_tokens = self._max_token_count - 1
        pos = self._pos
        while (match := match_token(buf, pos)) is not None:
            kind = match.lastindex
            assert kind is not None
            text = match.group(kind)
            pos = self._pos = match.end()
            tokens = self._tokens
            if (
                tokens
                and tokens < max_tokens
                and len(value) + len(text) <= max_size
                and (kind != 1 or text == b"," or text == b":")
            ):
                # Inside a value, a scalar, comma or colon changes no count and
                # completes nothing: _token's work, inlined (most tokens are these).
                scalar = kind >= _NUMBER
                if scalar and self._last_scalar:
                    value.append(0)
                value += text
                self._last_scalar = scalar
                self._tokens = tokens + 1
                continue
            item = self._token(text[0] if kind == 1 else kind, text, match.start(kind))
            if item is not None:
                return item
            value = self._value
        return None

    def _token(self, kind: int, text: bytes, start: int) -> StreamItem | None:
        """Add a token to the value; the value, or an error, once it is complete."""
        if kind == _LBRACE:
            self._braces += 1
        elif kind == _RBRACE:
            self._braces -= 1
        elif kind == _LBRACKET:
            self._brackets += 1
        elif kind == _RBRACKET:
            self._brackets -= 1
        end = start + len(text)
        # QEMU's checks, in its order (a scalar's separator counts as its byte)
        if len(self._value) + len(text) + 1 > self._max_value_size:
            return self._emit(JsonInputError(TOO_LARGE), start, end)
        if self._tokens + 1 > self._max_token_count:
            return self._emit(
                JsonInputError("JSON token count limit exceeded"), start, end
            )
        if self._braces + self._brackets > self._max_depth:
            return self._emit(
                JsonInputError("JSON nesting depth limit exceeded"), start, end
            )
        scalar = kind in (_NUMBER, _KEYWORD)
        if scalar and self._last_scalar:
            self._value.append(0)
        self._last_scalar = scalar
        self._value += text
        self._tokens += 1
        if self._value_start is None:
            self._value_start = self._base + start
        braces, brackets = self._braces, self._brackets
        if (braces > 0 or brackets > 0) and braces >= 0 and brackets >= 0:
            return None
        try:
            value = parse(self._value)
        except ParseError as error:
            value = JsonInputError(_PARSE_ERROR + error.desc)
        return self._emit(value, start, end)


class _NeedMore:
    pass


_NEED_MORE = _NeedMore()


class _NotCut:
    pass


_NOT_CUT = _NotCut()


# Number lexer states (the JSON number grammar, as QEMU's lexer walks it).
_NUMBER_START, _MINUS, _ZERO, _INT, _DOT, _FRAC, _EXP_MARK, _EXP_SIGN, _EXP = range(9)
_NUMBER_ERROR = -1


def _number_step(state: int, byte: int) -> int | None:
    """Next state, _NUMBER_ERROR, or None when `byte` is not part of the number."""
    digit = byte in _DIGITS
    if state == _NUMBER_START:
        return _MINUS if byte == 0x2D else _ZERO if byte == 0x30 else _INT
    if state == _MINUS:
        return _ZERO if byte == 0x30 else _INT if digit else _NUMBER_ERROR
    if state == _ZERO:  # QEMU takes no exponent right after a lone zero
        return _NUMBER_ERROR if digit else _DOT if byte == 0x2E else None
    if state in (_INT, _FRAC):
        if digit:
            return state
        if byte == 0x2E and state == _INT:
            return _DOT
        if byte in (0x65, 0x45):
            return _EXP_MARK
        return None
    if state == _DOT:
        return _FRAC if digit else _NUMBER_ERROR
    if state == _EXP_MARK:
        return _EXP_SIGN if byte in (0x2B, 0x2D) else _EXP if digit else _NUMBER_ERROR
    if state == _EXP_SIGN:
        return _EXP if digit else _NUMBER_ERROR
    return _EXP if digit else None
