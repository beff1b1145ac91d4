"""QEMU's reading of JSON text: modified UTF-8, how bytes are shown in messages, string
escapes, numbers, and how doubles are written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qapigen_runtime.qmp.json_text import (
    JsonTextError,
    decode_number,
    decode_string,
    format_double,
    might_differ_in_python,
    shown,
)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"plain", "plain"),
        (b"a\x00b", "a"),  # a C string ends at its NUL
        (b"\xc3\xa9", "\u00e9"),
        (b"\xc0\x80", "\x00"),  # modified UTF-8's NUL
        (b"\xc1\xbf", "\ufffd"),  # overlong: one replacement for the pair
        (b"\xe0\x80\x80", "\ufffd"),
        (b"\xf4\x90\x80\x80", "\ufffd"),  # beyond U+10FFFF, consumed whole
        (b"\xef\xbf\xbe", "\ufffd"),  # a noncharacter
        (b"\xed\xa0\x80", "\ufffd"),  # a surrogate
        (b"\xe2\x82A", "\ufffdA"),  # the byte that is no continuation is kept
        (b"\x80\x80", "\ufffd\ufffd"),
        (b"\xff\xfe", "\ufffd\ufffd"),
        (b"\xfd\x80", "\ufffd"),  # a 6-byte lead, cut short
        (b"\xf0\x9f\x98\x80", "\U0001f600"),
    ],
)
def test_bytes_are_shown_as_qemu_shows_them(raw: bytes, text: str) -> None:
    assert shown(raw) == text


@pytest.mark.parametrize(
    ("token", "value"),
    [
        (b'"abc"', "abc"),
        (b"'it\\'s'", "it's"),
        (b'"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\/\b\f\n\r\t'),
        (b'"\\u00e9\\u0000"', "\u00e9\x00"),
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"\xc0\x80"', "\x00"),
        (b'"caf\xc3\xa9"', "caf\u00e9"),
    ],
)
def test_strings_qemu_accepts(token: bytes, value: str) -> None:
    assert decode_string(token) == value


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (b'"\\q"', "invalid escape sequence in string"),
        (b'"\\u12"', '\\u12" is not a valid Unicode character'),
        (b'"\\ud800x"', "\\ud800 is not a valid Unicode character"),
        (b'"\\ud800\\u0041"', "\\ud800 is not a valid Unicode character"),
        (b'"\\udc00"', "\\udc00 is not a valid Unicode character"),
        (b'"\\ufdd0"', "\\ufdd0 is not a valid Unicode character"),
        (b'"\\uFFFF"', "\\uFFFF is not a valid Unicode character"),
        (b'"\\udbff\\udfff"', "\\udbff\\udfff is not a valid Unicode character"),
        (b'"\xef\xb7\x90"', "invalid UTF-8 sequence in string"),
        (b'"\xf0\x9f\xbf\xbf"', "invalid UTF-8 sequence in string"),  # U+1FFFF
        (b'"\xe0\x80"', "invalid UTF-8 sequence in string"),
        (b'"\xfd"', "invalid UTF-8 sequence in string"),
    ],
)
def test_strings_qemu_refuses(token: bytes, error: str) -> None:
    with pytest.raises(JsonTextError) as refused:
        decode_string(token)
    assert str(refused.value) == error


def test_numbers() -> None:
    assert decode_number(b"-0") == 0 and type(decode_number(b"-0")) is int
    assert decode_number(b"18446744073709551615") == 2**64 - 1
    big = decode_number(b"18446744073709551616")
    assert type(big) is float and big == 2.0**64
    assert repr(decode_number(b"-0.0e-400")) == "-0.0"
    assert decode_number(b"1E2") == 100.0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "-0"),
        (0.1, "0.10000000000000001"),
        (1e20, "1e+20"),
        (float("inf"), "inf"),
        (5e-324, "4.9406564584124654e-324"),
    ],
)
def test_doubles_are_written_with_17_digits(value: float, text: str) -> None:
    assert format_double(value) == text


@given(st.text())
def test_python_and_qemu_agree_unless_flagged(text: str) -> None:
    """Where Python's UTF-8 decoding keeps a string QEMU would refuse, the fast path's
    guard sends the line to QEMU's rules instead."""
    raw = text.encode("utf-8", "surrogatepass")
    token = b'"' + raw.replace(b"\\", b"").replace(b'"', b"") + b'"'
    if any(ord(c) < 0x20 for c in text):
        return  # the lexer refuses control characters before any decoding
    try:
        qemu = decode_string(token)
    except JsonTextError:
        qemu = None
    try:
        python: str | None = token[1:-1].decode("utf-8")
    except UnicodeDecodeError:
        python = None
    if qemu != python:
        assert might_differ_in_python(token) or python is None
