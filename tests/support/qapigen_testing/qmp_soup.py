"""Token soup for QMP servers: random garbage made of JSON pieces, a raw connection that
runs one soup at a time, and the comparison of two servers' answers.

QMP clients match in-band replies by their order, so a server must answer garbage
with exactly the replies QEMU gives, in number and in text. The soups here are fed to
a live QEMU 7.2 and to QMPServer, and their replies compared one by one
(tests/interop/test_qmp_token_soup.py); `OBSERVED_SOUP` records what QEMU 7.2 answered
to the cases that once differed, so QMPServer is held to them without a QEMU too.

Connections are negotiated without ``oob``: with it, QEMU 7.2 queues up to 8
requests and aborts (``Assertion `mon->qmp_requests->length <
QMP_REQ_QUEUE_LEN_MAX' failed``) when one input byte completes two values while 7
wait, which garbage does easily (``0.1-{"execute":"nonexistent","id":1}`` is enough).
Without it, QEMU reads nothing more until each request is answered.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from hypothesis import strategies as st

from qapigen_runtime.qmp.address import Address, open_socket

RESET = b"\xff\n"
"""Ends whatever the garbage left open (a string, a value, error recovery): 0xFF is
an error in every lexer state, after which a newline restarts lexing. It always
adds exactly one error reply (merged into the text of an unfinished string's)."""

SYNC = b'{"execute":"nonexistent","id":"soup-sync"}\n'
"""Answered with an error that carries this id: every reply before it is the soup's."""

PIECES: tuple[bytes, ...] = (
    # structure, whitespace, quotes and escapes
    *(bytes((c,)) for c in b"{}[]:,\"'\\ \n\t\r"),
    # number and keyword fragments
    *(b"1", b"0", b"-", b"+", b".", b"e", b"E", b"9", b"-0", b"1E5", b"0e1", b"1.5e+3"),
    *(b"true", b"false", b"null", b"nul", b"x", b"NaN", b"A", b"@", b"#"),
    *(b"-0.0e-400", b"1e400", b"1.0", b"0.1", b"123456789012345678901234567890"),
    *(b"-9223372036854775809", b"18446744073709551615"),
    # escapes, good and bad
    *(b"\\u0000", b"\\ud800", b"\\udc00", b"\\u12", b"\\n", b'"\\u0041"'),
    *(b'"\\ud83d\\ude00"', b'"\\ufffe"', b'"\\ud83f\\udfff"', b'"\\uFDD0"'),
    *(b'"\\u00e9"', b"'it\\'s'", b'"a\\/b"'),
    # control characters, and bytes that are not (or not always) UTF-8
    *(b"\x00", b"\x01", b"\x7f", b"\xff", b"\xfe", b"\xc0", b"\xc0\x80", b"\x80"),
    *(b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xc3\xa9", b"\xe2\x82\xac", b"\xc3"),
    *(b"\xf0\x9f\x98\x80", b"\xf4\x90\x80\x80"),
    *(b'"\xef\xbf\xbe"', b'"\xef\xb7\x90"', b'"\xc0\x80"', b'"\xf4\x8f\xbf\xbf"'),
    # strings, members and requests
    *(b'"execute"', b'"query-status"', b'"id"', b'"arguments"', b'"exec-oob"'),
    *(b"'execute'", b'"arguments":', b'"execute":', b'"' + b"y" * 300 + b'"'),
    *(b'{"execute":"query-status"}', b'{"execute":"nonexistent","id":1}'),
    *(b'{"execute":"query-status","id":', b'{"exec-oob":"query-status","id":2}'),
    *(b'{"execute":"qmp_capabilities"}', b'{"execute":"query-status","arguments":{}}'),
    b'{"execute":"query-status","arguments":{"x":1}}',
    b'{"execute":"query-status","id":{"a":[1,2.5,null,true]}}',
    *(b"{'execute':'query-status','id':'x'}", b'{"id":1', b'{"execute":5}'),
    *(b'{"foo":1}', b"[[[[", b"]]]]", b"{{", b"}}"),
)
"""What soups are made of. Commands are limited to ones every server under test
answers the same way: query-status (the test's server copies QEMU's answer),
qmp_capabilities (already negotiated) and nonexistent."""


def soup(rng: random.Random, max_pieces: int = 12) -> bytes:
    """A random soup of 1 to `max_pieces` pieces."""
    return b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, max_pieces)))


soups = st.lists(st.sampled_from(PIECES), min_size=1, max_size=16).map(b"".join)
"""The same soups, drawn by hypothesis (which shrinks a failing one to its core)."""


class SoupConnection:
    """A raw QMP connection, negotiated without oob, that runs soups."""

    def __init__(self, address: Address, timeout: float = 10.0) -> None:
        self.sock = open_socket(address, timeout)
        self._buffer = b""
        self.greeting = self.read_line()
        self.sock.sendall(b'{"execute":"qmp_capabilities"}\n')
        negotiated = self.read_line()
        if json.loads(negotiated) != {"return": {}}:
            raise AssertionError(f"negotiation failed: {negotiated!r}")

    def close(self) -> None:
        self.sock.close()

    def read_line(self) -> bytes:
        """The next message, without its CRLF."""
        while b"\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.rstrip(b"\r")

    def run(self, data: bytes) -> list[bytes]:
        """Send `data`, `RESET` and `SYNC`; the replies before SYNC's, as sent."""
        self.sock.sendall(data + RESET + SYNC)
        replies: list[bytes] = []
        while True:
            line = self.read_line()
            if b'"soup-sync"' in line and b'"error"' in line:
                return replies
            if not line.startswith(b'{"timestamp"'):  # an event
                replies.append(line)


def _number_text(text: str) -> tuple[str, str]:
    return ("number", text)


def canonical(line: bytes) -> object:
    """A reply as clients see it, for comparing servers: members in any order,
    strings by value (escaped in any case), numbers by their text (QEMU writes
    doubles with 17 digits, so 1.0 goes out as ``1``). A line that is not JSON
    (QEMU writes an infinite double as ``inf``) stands for itself."""
    try:
        return json.loads(line, parse_float=_number_text, parse_int=_number_text)
    except ValueError:
        return line


@dataclass(frozen=True)
class ObservedSoup:
    """A soup and the replies QEMU 7.2 sent for it (with RESET's), as sent."""

    label: str
    data: bytes
    replies: tuple[bytes, ...]


def _error(desc: str) -> bytes:
    return b'{"error": {"class": "GenericError", "desc": "' + desc.encode() + b'"}}'


_RESET_ERROR = _error("JSON parse error, stray '\\uFFFD'")
_NOT_OBJECT = _error("QMP input must be a JSON object")
_EXPECTING = _error("JSON parse error, expecting value")
_BAD_UTF8 = _error("JSON parse error, invalid UTF-8 sequence in string")


def _not_found_with_id(id_text: bytes) -> bytes:
    """The reply to command "nonexistent" with this id (ids are echoed first)."""
    return (
        b'{"id": '
        + id_text
        + b', "error": {"class": "CommandNotFound", '
        + b'"desc": "The command nonexistent has not been found"}}'
    )


def _parse_error(what: str) -> bytes:
    return _error("JSON parse error, " + what)


# Observed on QEMU 7.2 (negotiated without oob).
OBSERVED_SOUP: list[ObservedSoup] = [
    ObservedSoup(
        "a plus sign, then lexing restarts at the colon",
        b"+1:",
        (_parse_error("stray '+'"), _EXPECTING, _RESET_ERROR),
    ),
    ObservedSoup(
        "recovery also stops at colons and commas",
        b"@1:2,3",
        (
            _parse_error("stray '@'"),
            _EXPECTING,
            _NOT_OBJECT,
            _EXPECTING,
            _NOT_OBJECT,
            _RESET_ERROR,
        ),
    ),
    ObservedSoup(
        "an overlong UTF-8 sequence in a string",
        b'{"execute":"query-status","id":"\xe0\x80\x80"}',
        (_BAD_UTF8, _RESET_ERROR),
    ),
    ObservedSoup(
        "an overlong UTF-8 sequence alone: one stray byte, the rest skipped",
        b"\xe0\x80\x80",
        (_parse_error("stray '\\uFFFD'"), _RESET_ERROR),
    ),
    ObservedSoup(
        "C0 80 in a string is U+0000",
        b'{"execute":"nonexistent","id":"\xc0\x80"}',
        (_not_found_with_id(b'"\\u0000"'), _RESET_ERROR),
    ),
    ObservedSoup(
        "a 5-byte sequence in a string",
        b'{"execute":"query-status","id":"\xf8\x88\x80\x80\x80"}',
        (_BAD_UTF8, _RESET_ERROR),
    ),
    ObservedSoup(
        "a noncharacter in a string",
        b'{"execute":"query-status","id":"\xef\xbf\xbe"}',
        (_BAD_UTF8, _RESET_ERROR),
    ),
    ObservedSoup(
        "an escaped noncharacter",
        b'{"execute":"query-status","id":"\\ufffe"}',
        (_parse_error("\\\\ufffe is not a valid Unicode character"), _RESET_ERROR),
    ),
    ObservedSoup(
        "a surrogate pair that makes a noncharacter is quoted whole",
        b'{"execute":"query-status","id":"\\udbff\\udfff"}',
        (
            _parse_error("\\\\udbff\\\\udfff is not a valid Unicode character"),
            _RESET_ERROR,
        ),
    ),
    ObservedSoup(
        "a NUL byte is shown as nothing",
        b"\x00",
        (_parse_error("stray ''"), _RESET_ERROR),
    ),
    ObservedSoup(
        "a NUL byte ends the text of a string",
        b'"a\x00b"',
        (_parse_error("stray '\\\"a'"), _RESET_ERROR),
    ),
    ObservedSoup(
        "an undecodable sequence is one replacement character",
        b"'\xf4\x90\x80\x80\x01",
        (_parse_error("stray ''\\uFFFD\\u0001'"), _RESET_ERROR),
    ),
    ObservedSoup(
        "no exponent right after a lone zero",
        b"[0e1]",
        (_parse_error("expected separator in list"), _RESET_ERROR),
    ),
    ObservedSoup(
        "a capital exponent after a lone zero is stray",
        b"[0E1]",
        (_parse_error("stray 'E'"), _EXPECTING, _RESET_ERROR),
    ),
    ObservedSoup(
        "an object key is parsed as a whole value first",
        b'{{"a"}:1}',
        (_parse_error("missing : in object pair"), _RESET_ERROR),
    ),
    ObservedSoup(
        "braces and brackets are counted apart",
        b"{{]",
        (_EXPECTING, _RESET_ERROR),
    ),
    ObservedSoup(
        "an id that underflows to -0.0 is echoed as -0",
        b'{"execute":"nonexistent","id":-0.0e-400}',
        (_not_found_with_id(b"-0"), _RESET_ERROR),
    ),
    ObservedSoup(
        "a whole double is echoed without a fraction",
        b'{"execute":"nonexistent","id":1.0}',
        (_not_found_with_id(b"1"), _RESET_ERROR),
    ),
    ObservedSoup(
        "doubles are echoed with 17 digits",
        b'{"execute":"nonexistent","id":0.1}',
        (_not_found_with_id(b"0.10000000000000001"), _RESET_ERROR),
    ),
    ObservedSoup(
        "an integer beyond 64 bits is a double",
        b'{"execute":"nonexistent","id":123456789012345678901234567890}',
        (_not_found_with_id(b"1.2345678901234568e+29"), _RESET_ERROR),
    ),
    ObservedSoup(
        "an infinite double is echoed as inf (not JSON)",
        b'{"execute":"nonexistent","id":1e400}',
        (_not_found_with_id(b"inf"), _RESET_ERROR),
    ),
    ObservedSoup(
        "nine replies to one line (QEMU 7.2 aborts on it when oob is enabled)",
        b'0.1-{"execute":"nonexistent","id":1}',
        (
            _NOT_OBJECT,
            _parse_error("stray '-{'"),
            *(_EXPECTING, _NOT_OBJECT) * 3,
            _EXPECTING,
            _RESET_ERROR,
        ),
    ),
]
