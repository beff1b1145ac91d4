"""QEMU's JSON parser, over the tokens of one complete value.

QEMU parses by recursive descent and reports the first error it meets, in this
order: a value is expected where a token is not one; an object key is parsed as a
whole value before it is found not to be a string; a member's value is parsed
before its key is found to be a duplicate. The texts are QEMU 7.2's. The descent is
iterative here, since values may nest 1024 deep.

The tokens come as `json_stream` keeps them: their bytes back to back, well-formed
(the lexer checked them), with a NUL between two adjacent numbers or keywords.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .json_text import JsonTextError, decode_number, decode_string

_TOKEN = re.compile(
    rb"""[{}\[\]:,]"""
    rb'''|"(?:[^"\\]|\\.)*"'''
    rb"""|'(?:[^'\\]|\\.)*'"""
    rb"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
    rb"|[a-z]+"
    rb"|\x00",
    re.DOTALL,
)

_LBRACE, _RBRACE, _LBRACKET, _RBRACKET, _COLON, _COMMA = b"{}[]:,"
_QUOTES = frozenset(b"\"'")
_NUMBER_START = frozenset(b"-0123456789")


class ParseError(Exception):
    """The value is not valid JSON; `desc` is QEMU's text (without its prefix)."""

    def __init__(self, desc: str) -> None:
        super().__init__(desc)
        self.desc = desc


class _Tokens:
    """The token texts of a value, one at a time, with one token of lookahead."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._matches: Iterator[re.Match[bytes]] = _TOKEN.finditer(data)
        self._next: bytes | None = self._read()

    def _read(self) -> bytes | None:
        for match in self._matches:
            text = match.group()
            if text != b"\x00":
                return text
        return None

    def peek(self) -> bytes:
        if self._next is None:
            raise ParseError("premature EOI")
        return self._next

    def pop(self) -> bytes:
        text = self.peek()
        self._next = self._read()
        return text


def _scalar(text: bytes) -> object:
    first = text[0]
    if first in _QUOTES:
        try:
            return decode_string(text)
        except JsonTextError as error:
            raise ParseError(str(error)) from None
    if first in _NUMBER_START:
        return decode_number(text)
    if text == b"true":
        return True
    if text == b"false":
        return False
    if text == b"null":
        return None
    raise ParseError(f"invalid keyword '{text.decode('ascii')}'")


class _Object:
    __slots__ = ("key", "members", "want_key")

    def __init__(self) -> None:
        self.members: dict[str, object] = {}
        self.key = ""
        self.want_key = True


def parse(data: bytes | bytearray) -> object:
    """The value of one complete token sequence; ParseError when it is invalid."""
    tokens = _Tokens(data)
    stack: list[_Object | list[object]] = []
    while True:
        # parse a value
        text = tokens.peek()
        first = text[0]
        value: object
        if first in (_LBRACE, _LBRACKET):
            tokens.pop()
            close = _RBRACE if first == _LBRACE else _RBRACKET
            if tokens.peek()[0] == close:
                tokens.pop()
                value = {} if first == _LBRACE else []
            else:
                stack.append(_Object() if first == _LBRACE else [])
                continue
        elif first in (_RBRACE, _RBRACKET, _COLON, _COMMA):
            raise ParseError("expecting value")
        else:
            tokens.pop()
            value = _scalar(text)
        # hand it to the containers it completes
        while stack:
            top = stack[-1]
            if isinstance(top, _Object):
                if top.want_key:
                    if not isinstance(value, str):
                        raise ParseError("key is not a string in object")
                    if tokens.pop()[0] != _COLON:
                        raise ParseError("missing : in object pair")
                    top.key = value
                    top.want_key = False
                    break
                if top.key in top.members:
                    raise ParseError("duplicate key")
                top.members[top.key] = value
                separator = tokens.pop()[0]
                if separator == _COMMA:
                    top.want_key = True
                    break
                if separator != _RBRACE:
                    raise ParseError("expected separator in dict")
                value = top.members
            else:
                top.append(value)
                separator = tokens.pop()[0]
                if separator == _COMMA:
                    break
                if separator != _RBRACKET:
                    raise ParseError("expected separator in list")
                value = top
            stack.pop()
        else:
            return value
