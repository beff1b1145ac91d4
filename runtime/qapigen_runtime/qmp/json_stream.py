"""Cutting a QMP input stream into JSON values, with QEMU's dialect, limits and errors.

QEMU does not frame QMP input by lines: it lexes the byte stream and hands a value to
its parser as soon as the brackets balance, so ``{...}{...}`` on one line are two
commands and one command may span lines. Its JSON dialect also accepts single-quoted
strings. Errors are answered with fixed texts ("JSON parse error, stray '@'", ...),
after which the lexer skips to the next bracket or control character and carries on.
This module reproduces that behaviour (the texts were observed on QEMU 7.2) with its
own code.

Speed matters only for well-formed input, so a complete line that Python's C JSON
decoder accepts, and that cannot break a limit, is taken whole; anything else goes
through the token-by-token path below.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_NESTING_DEPTH = 1024
"""Deepest nesting QEMU accepts; one level more is refused."""

MAX_VALUE_SIZE = 64 * 1024 * 1024
"""Most bytes of tokens one value may have (QEMU's "token size" limit, counted over
all the tokens of a value, whitespace excluded)."""

MAX_TOKEN_COUNT = 2 * 1024 * 1024
"""Most tokens one value may have."""

# A complete line shorter than this holds fewer tokens and smaller tokens than the
# limits allow, so the fast path never has to count them.
_FAST_LINE_LIMIT = 1024 * 1024

_PARSE_ERROR = "JSON parse error, "


@dataclass(frozen=True, slots=True)
class JsonInputError:
    """Input that produced no value; `desc` is the text QEMU answers it with."""

    desc: str


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


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _integer(text: str) -> int | float:
    value = int(text)
    if _INT64_MIN <= value <= _UINT64_MAX:
        return value
    return float(value)  # QEMU keeps integers beyond 64 bits as doubles


_fast_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs_to_dict,
    parse_constant=_reject_constant,
    parse_int=_integer,
)

# Token kinds.
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET, _COLON, _COMMA = "{", "}", "[", "]", ":", ","
_STRING, _NUMBER, _KEYWORD = "string", "number", "keyword"

_STRUCTURAL = frozenset(b"{}[]:,")
_WHITESPACE = frozenset(b" \t\n\r")
_DIGITS = frozenset(b"0123456789")
_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz")
# Bytes that never occur in UTF-8: QEMU's lexer refuses them outright.
_IMPOSSIBLE_UTF8 = b"\xc0\xc1\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"
_STRING_BODY = {
    quote: re.compile(
        rb"(?:[^\\\x00-\x1f"
        + re.escape(_IMPOSSIBLE_UTF8)
        + quote
        + rb"]|\\[^\x00-\x1f])*"
    )
    for quote in (b'"', b"'")
}
_KEYWORD_RE = re.compile(rb"[a-z]+")
# Where lexing restarts after an error: brackets and control characters (not tab).
_RECOVERY_RE = re.compile(rb"[{}\[\]\x00-\x08\x0a-\x1f\xfe\xff]")

_Token = tuple[str, bytes]


def _stray(text: bytes) -> JsonInputError:
    return JsonInputError(f"{_PARSE_ERROR}stray '{text.decode('utf-8', 'replace')}'")


class JsonStreamParser:
    """Incremental splitter and parser: `feed` bytes, get values and errors back.

    Each item returned is either a parsed JSON value or a `JsonInputError`, in the
    order the input produced them.
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
        self._pos = 0  # next byte to lex
        self._tokens: list[_Token] = []  # tokens of the value being collected
        self._depth = 0
        self._size = 0  # bytes of self._tokens
        self._recovering = False
        self._string_resume = 0  # how far an unfinished string was already checked
        self._fast_ok = max_depth >= 64

    @property
    def pending(self) -> int:
        """Bytes received that have not produced a value yet."""
        return len(self._buf) - self._pos + self._size

    def feed(self, data: bytes) -> list[object]:
        """Take more input; return the values and errors it completed."""
        self._buf += data
        out: list[object] = []
        while True:
            if self._fast_ok and not self._tokens and not self._recovering:
                self._take_fast_lines(out)
            if not self._lex(out):
                break
        # Drop consumed input so the buffer only holds the unfinished token.
        if self._pos:
            del self._buf[: self._pos]
            self._string_resume = max(0, self._string_resume - self._pos)
            self._pos = 0
        return out

    # -- fast path -------------------------------------------------------------

    def _take_fast_lines(self, out: list[object]) -> None:
        buf = self._buf
        while True:
            end = buf.find(b"\n", self._pos)
            if end < 0:
                return
            line = bytes(buf[self._pos : end])
            value = self._decode_line(line)
            if value is _NOT_FAST:
                return
            out.append(value)
            self._pos = end + 1

    def _decode_line(self, line: bytes) -> object:
        stripped = line.strip()
        if (
            not stripped.startswith(b"{")
            or len(line) > _FAST_LINE_LIMIT
            or stripped.count(b"{") + stripped.count(b"[") > self._max_depth
            or b"\\ud" in stripped  # surrogate escapes need QEMU's stricter check
            or b"\\uD" in stripped
        ):
            return _NOT_FAST
        try:
            return _fast_decoder.decode(stripped.decode("utf-8"))
        except (ValueError, RecursionError):
            return _NOT_FAST

    # -- token path ------------------------------------------------------------

    def _lex(self, out: list[object]) -> bool:
        """Lex what the buffer holds; True when the fast path may be tried again."""
        buf = self._buf
        size = len(buf)
        while self._pos < size:
            if self._recovering:
                match = _RECOVERY_RE.search(buf, self._pos)
                if match is None:
                    self._pos = size
                    return False
                self._pos = match.start()
                self._recovering = False
            start = self._pos
            byte = buf[start]
            if byte in _WHITESPACE:
                self._pos += 1
                if byte == 0x0A and not self._tokens:
                    return True
                continue
            if byte in _STRUCTURAL:
                self._pos += 1
                self._token(chr(byte), bytes((byte,)), out)
                continue
            if byte == 0x22 or byte == 0x27:
                token = self._lex_string(start, byte, out)
            elif byte == 0x2D or byte in _DIGITS:
                token = self._lex_number(start, out)
            elif byte in _LOWER:
                match = _KEYWORD_RE.match(buf, start)
                assert match is not None
                if match.end() == size:
                    token = self._partial(start, out)
                else:
                    token = (_KEYWORD, bytes(buf[start : match.end()]))
                    self._pos = match.end()
            else:
                # QEMU reports the one byte it could not lex, even inside UTF-8
                self._pos = start + 1
                self._lexer_error(bytes(buf[start : self._pos]), out)
                continue
            if token is None:
                return False  # wait for the rest of the token
            if token[0]:
                self._token(token[0], token[1], out)
        return False

    def _partial(self, start: int, out: list[object]) -> _Token | None:
        """An unfinished token at the end of the buffer: wait, unless it is too big."""
        if self._size + len(self._buf) - start > self._max_value_size:
            self._pos = len(self._buf)
            self._string_resume = 0
            self._reset()
            self._recovering = True
            out.append(JsonInputError("JSON token size limit exceeded"))
            return ("", b"")
        return None

    def _lex_string(self, start: int, quote: int, out: list[object]) -> _Token | None:
        buf = self._buf
        body = _STRING_BODY[bytes((quote,))]
        resume = max(start + 1, self._string_resume)
        match = body.match(buf, resume)
        assert match is not None
        end = match.end()
        if end >= len(buf) or (buf[end] == 0x5C and end + 1 >= len(buf)):
            self._string_resume = end
            return self._partial(start, out)
        self._string_resume = 0
        if buf[end] == quote:
            self._pos = end + 1
            return (_STRING, bytes(buf[start : end + 1]))
        # A control character or a byte that cannot be UTF-8 inside the string.
        stop = end + (1 if buf[end] != 0x5C else 2)
        self._pos = stop
        self._lexer_error(bytes(buf[start:stop]), out)
        return ("", b"")

    def _lex_number(self, start: int, out: list[object]) -> _Token | None:
        buf = self._buf
        state = _NUMBER_START
        pos = start
        size = len(buf)
        while pos < size:
            step = _number_step(state, buf[pos])
            if step is None:  # the number ended before this byte
                if state not in _NUMBER_FINAL:
                    break
                self._pos = pos
                return (_NUMBER, bytes(buf[start:pos]))
            if step == _NUMBER_ERROR:
                self._pos = pos + 1
                self._lexer_error(bytes(buf[start : pos + 1]), out)
                return ("", b"")
            state = step
            pos += 1
        if pos >= size:
            return self._partial(start, out)
        # A byte that cannot continue an incomplete number ('-', '1.', '1e').
        self._pos = pos + 1
        self._lexer_error(bytes(buf[start : self._pos]), out)
        return ("", b"")

    def _lexer_error(self, text: bytes, out: list[object]) -> None:
        self._reset()
        self._recovering = True
        out.append(_stray(text))

    def _reset(self) -> None:
        self._tokens = []
        self._depth = 0
        self._size = 0

    def _token(self, kind: str, text: bytes, out: list[object]) -> None:
        if kind in (_LBRACE, _LBRACKET):
            self._depth += 1
        elif kind in (_RBRACE, _RBRACKET):
            self._depth -= 1
        self._tokens.append((kind, text))
        self._size += len(text)
        if self._size > self._max_value_size:
            self._reset()
            out.append(JsonInputError("JSON token size limit exceeded"))
            return
        if self._depth > self._max_depth:
            self._reset()
            out.append(JsonInputError("JSON nesting depth limit exceeded"))
            return
        if len(self._tokens) > self._max_token_count:
            self._reset()
            out.append(JsonInputError("JSON token count limit exceeded"))
            return
        if self._depth <= 0:
            tokens = self._tokens
            self._reset()
            out.append(parse_tokens(tokens))


class _NotFast:
    pass


_NOT_FAST = _NotFast()


# Number lexer states (JSON number grammar).
_NUMBER_START, _MINUS, _ZERO, _INT, _DOT, _FRAC, _EXP_MARK, _EXP_SIGN, _EXP = range(9)
_NUMBER_ERROR = -1
_NUMBER_FINAL = frozenset((_ZERO, _INT, _FRAC, _EXP))


def _number_step(state: int, byte: int) -> int | None:
    """Next state, _NUMBER_ERROR, or None when `byte` is not part of the number."""
    digit = byte in _DIGITS
    if state == _NUMBER_START:
        return _MINUS if byte == 0x2D else _ZERO if byte == 0x30 else _INT
    if state == _MINUS:
        return _ZERO if byte == 0x30 else _INT if digit else _NUMBER_ERROR
    if state in (_ZERO, _INT, _FRAC):
        if digit:
            return _NUMBER_ERROR if state == _ZERO else state
        if byte == 0x2E and state != _FRAC:
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


# -- parser --------------------------------------------------------------------


class _ParseError(Exception):
    def __init__(self, desc: str) -> None:
        super().__init__(desc)
        self.desc = desc


def parse_tokens(tokens: list[_Token]) -> object:
    """Parse one balanced token sequence; a `JsonInputError` when it is invalid."""
    try:
        return _Parser(tokens).parse()
    except _ParseError as error:
        return JsonInputError(_PARSE_ERROR + error.desc)


_ESCAPES = {
    ord('"'): '"',
    ord("'"): "'",
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")

_Container = dict[str, object] | list[object]


class _Parser:
    """Iterative descent over tokens (values may nest 1024 deep, deeper than Python's
    recursion limit allows)."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def _next(self) -> _Token:
        if self._index >= len(self._tokens):
            raise _ParseError("expecting value")
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _peek(self) -> str:
        return self._tokens[self._index][0] if self._index < len(self._tokens) else ""

    def parse(self) -> object:
        # Each frame: the open container and, for an object, the key being filled.
        stack: list[tuple[_Container, str]] = []
        while True:
            kind, text = self._next()
            value: object
            if kind == _LBRACE and self._peek() != _RBRACE:
                stack.append(({}, self._key()))
                continue
            if kind == _LBRACKET and self._peek() != _RBRACKET:
                stack.append(([], ""))
                continue
            if kind in (_LBRACE, _LBRACKET):
                self._index += 1
                value = {} if kind == _LBRACE else []
            else:
                value = _scalar(kind, text)
            # Store the value, closing every container it completes.
            while stack:
                container, key = stack[-1]
                separator = self._store(container, key, value)
                if separator == _COMMA:
                    if isinstance(container, dict):
                        stack[-1] = (container, self._key())
                    break
                stack.pop()
                value = container
            else:
                return value

    def _store(self, container: _Container, key: str, value: object) -> str:
        """Add `value`; return the separator that follows (',' or the closer)."""
        kind = self._next()[0]
        if isinstance(container, dict):
            if key in container:
                raise _ParseError("duplicate key")
            container[key] = value
            if kind != _COMMA and kind != _RBRACE:
                raise _ParseError("expected separator in dict")
        else:
            container.append(value)
            if kind != _COMMA and kind != _RBRACKET:
                raise _ParseError("expected separator in list")
        return kind

    def _key(self) -> str:
        kind, text = self._next()
        if kind != _STRING:
            if kind in (_NUMBER, _KEYWORD, _LBRACE, _LBRACKET):
                if kind == _KEYWORD:
                    _scalar(kind, text)  # an invalid keyword is reported as such
                raise _ParseError("key is not a string in object")
            raise _ParseError("expecting value")
        if self._next()[0] != _COLON:
            raise _ParseError("missing : in object pair")
        return _decode_string(text)


def _scalar(kind: str, text: bytes) -> object:
    if kind == _STRING:
        return _decode_string(text)
    if kind == _NUMBER:
        return _decode_number(text)
    if kind == _KEYWORD:
        if text == b"true":
            return True
        if text == b"false":
            return False
        if text == b"null":
            return None
        raise _ParseError(f"invalid keyword '{text.decode()}'")
    raise _ParseError("expecting value")


def _decode_string(token: bytes) -> str:
    body = token[1:-1]
    if b"\\" not in body:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise _ParseError("invalid UTF-8 sequence in string") from None
    parts: list[str] = []
    pos = 0
    while True:
        slash = body.find(b"\\", pos)
        chunk = body[pos : len(body) if slash < 0 else slash]
        try:
            parts.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            raise _ParseError("invalid UTF-8 sequence in string") from None
        if slash < 0:
            return "".join(parts)
        escape = body[slash + 1]
        if escape == ord("u"):
            code, pos = _unicode_escape(token, body, slash)
            parts.append(chr(code))
            continue
        replacement = _ESCAPES.get(escape)
        if replacement is None:
            raise _ParseError("invalid escape sequence in string")
        parts.append(replacement)
        pos = slash + 2


def _unicode_escape(token: bytes, body: bytes, slash: int) -> tuple[int, int]:
    """Decode ``\\uXXXX`` (a surrogate pair takes two); return code point, next pos."""

    def bad() -> _ParseError:
        shown = token[slash + 1 : slash + 7].decode("utf-8", "replace")
        return _ParseError(f"{shown} is not a valid Unicode character")

    if not _HEX4.fullmatch(body, slash + 2, slash + 6):
        raise bad()
    code = int(body[slash + 2 : slash + 6], 16)
    if 0xDC00 <= code <= 0xDFFF:
        raise bad()
    if 0xD800 <= code <= 0xDBFF:
        low_at = slash + 6
        if body[low_at : low_at + 2] != b"\\u" or not _HEX4.fullmatch(
            body, low_at + 2, low_at + 6
        ):
            raise bad()
        low = int(body[low_at + 2 : low_at + 6], 16)
        if not 0xDC00 <= low <= 0xDFFF:
            raise bad()
        return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), low_at + 6
    return code, slash + 6


def _decode_number(text: bytes) -> int | float:
    if b"." in text or b"e" in text or b"E" in text:
        return float(text)
    return _integer(text.decode())
