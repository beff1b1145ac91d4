"""QEMU's reading of JSON text: its string and number literals, and how it shows bytes.

QEMU checks and stores text as "modified UTF-8": well-formed UTF-8 without the
Unicode noncharacters (U+FDD0..U+FDEF and every code point ending in FFFE or FFFF),
where the overlong pair C0 80 stands for U+0000. Its messages are C strings, so a
NUL byte ends them, and when QEMU writes a message out, every byte sequence it cannot
decode becomes one U+FFFD. The rules here were observed on QEMU 7.2
(tests/interop/test_qmp_token_soup.py re-checks them against a live one).
"""

from __future__ import annotations

import re

_MODIFIED_UTF8_NUL = b"\xc0\x80"

# Noncharacters as UTF-8: U+FDD0..U+FDEF, U+FFFE, U+FFFF, U+nFFFE and U+nFFFF.
_RAW_NONCHARACTER = re.compile(
    rb"\xef\xb7[\x90-\xaf]|\xef\xbf[\xbe\xbf]|[\xf0-\xf4][\x8f\x9f\xaf\xbf]\xbf[\xbe\xbf]"
)

# Smallest code point of a sequence of 2, 3, 4, 5 and 6 bytes (smaller is overlong).
_SHORTEST = (0x80, 0x800, 0x10000, 0x200000, 0x4000000)

REPLACEMENT = "\ufffd"


class JsonTextError(ValueError):
    """A literal QEMU refuses; the message is QEMU's text (without its prefix)."""


def is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def valid_code_point(code: int) -> bool:
    """Whether QEMU stores code point `code` (U+0000 included)."""
    return (
        0 <= code <= 0x10FFFF
        and not 0xD800 <= code <= 0xDFFF
        and not is_noncharacter(code)
    )


def _code_point_at(data: bytes, index: int) -> tuple[int, int]:
    """QEMU's decoding of the sequence at `index`: (code point or -1, next index).

    An invalid sequence is consumed up to the first byte that is not a continuation
    byte (which starts the next sequence), or whole when it is complete but stands
    for an overlong form, a surrogate, a noncharacter or a value beyond U+10FFFF.
    """
    lead = data[index]
    if lead < 0x80:
        return lead, index + 1
    if lead >= 0xFE or not lead & 0x40:
        return -1, index + 1  # impossible byte, or a continuation byte alone
    length = 2
    while lead & (0x80 >> length):
        length += 1
    code = lead & ((0x80 >> length) - 1)
    end = index + 1
    for _ in range(length - 1):
        if end >= len(data) or data[end] & 0xC0 != 0x80:
            return -1, end
        code = (code << 6) | (data[end] & 0x3F)
        end += 1
    overlong = code < _SHORTEST[length - 2] and (code, length) != (0, 2)
    if overlong or not valid_code_point(code):
        return -1, end
    return code, end


def shown(raw: bytes) -> str:
    """How QEMU shows `raw` in a message: cut at the first NUL, undecodable
    sequences replaced by U+FFFD each, C0 80 shown as U+0000."""
    raw = raw.split(b"\x00", 1)[0]
    if raw.isascii():
        return raw.decode("ascii")
    chars: list[str] = []
    index = 0
    while index < len(raw):
        code, index = _code_point_at(raw, index)
        chars.append(REPLACEMENT if code < 0 else chr(code))
    return "".join(chars)


def _decode_chunk(chunk: bytes) -> str:
    """Text without escapes, as QEMU accepts it inside a string literal."""
    if chunk.isascii():
        return chunk.decode("ascii")
    # C0 80 cannot be part of any other sequence (C0 is never valid UTF-8), and
    # otherwise strict UTF-8 accepts what QEMU accepts, noncharacters aside.
    try:
        text = chunk.replace(_MODIFIED_UTF8_NUL, b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        raise JsonTextError("invalid UTF-8 sequence in string") from None
    if _RAW_NONCHARACTER.search(chunk):
        raise JsonTextError("invalid UTF-8 sequence in string")
    return text


_SIMPLE_ESCAPES = {
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


def _hex4(token: bytes, at: int) -> int:
    """The four hex digits at `at` as a number, or -1."""
    if _HEX4.fullmatch(token, at, at + 4):
        return int(token[at : at + 4], 16)
    return -1


def _unicode_escape(token: bytes, backslash: int) -> tuple[str, int]:
    r"""Decode ``\uXXXX`` (or a surrogate pair) at `backslash`: (text, next index).

    A high surrogate followed by ``\u`` takes both escapes; whatever does not give a
    valid code point is refused, quoting the escape(s) read as QEMU does.
    """
    end = backslash + 6
    code = _hex4(token, backslash + 2)
    if 0xD800 <= code <= 0xDBFF and token[end : end + 2] == b"\\u":
        low = _hex4(token, end + 2)
        if 0xDC00 <= low <= 0xDFFF:
            code = 0x10000 + ((code & 0x3FF) << 10) + (low & 0x3FF)
            end += 6
        else:
            code = -1
    if not valid_code_point(code):
        quoted = shown(token[backslash:end])
        raise JsonTextError(f"{quoted} is not a valid Unicode character")
    return chr(code), end


def decode_string(token: bytes) -> str:
    """The value of a string token (quotes included, either quote character).

    Raises JsonTextError with QEMU's message for a bad escape or bad UTF-8.
    """
    end = len(token) - 1
    first = token.find(b"\\", 1, end)
    if first < 0:
        return _decode_chunk(token[1:end])
    parts: list[str] = []
    pos = 1
    backslash = first
    while backslash >= 0:
        parts.append(_decode_chunk(token[pos:backslash]))
        escape = token[backslash + 1]
        if escape == 0x75:  # u
            text, pos = _unicode_escape(token, backslash)
            parts.append(text)
        else:
            simple = _SIMPLE_ESCAPES.get(escape)
            if simple is None:
                raise JsonTextError("invalid escape sequence in string")
            parts.append(simple)
            pos = backslash + 2
        backslash = token.find(b"\\", pos, end)
    parts.append(_decode_chunk(token[pos:end]))
    return "".join(parts)


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def integer(value: int) -> int | float:
    """An integer as QEMU keeps it: within int64 or uint64, else a double."""
    if _INT64_MIN <= value <= _UINT64_MAX:
        return value
    return float(value)


def decode_number(token: bytes) -> int | float:
    """The value of a number token (already lexed, so well-formed)."""
    if b"." in token or b"e" in token or b"E" in token:
        return float(token)
    text = token.decode("ascii")
    value = int(text)
    if _INT64_MIN <= value <= _UINT64_MAX:
        return value
    return float(text)  # rounded from the text, as strtod does


def might_differ_in_python(line: bytes) -> bool:
    r"""Whether Python's JSON decoder could accept `line` with a value QEMU would
    refuse or read differently: ``\u`` escapes of surrogates or of code points
    FDxx/FFxx (noncharacters among them), or raw noncharacters."""
    if b"\\u" in line and re.search(rb"\\u[dDfF]", line):
        return True
    return not line.isascii() and _RAW_NONCHARACTER.search(line) is not None


def format_double(value: float) -> str:
    """A double as QEMU writes it: 17 significant digits (``-0`` for -0.0, ``inf``)."""
    return f"{value:.17g}"
