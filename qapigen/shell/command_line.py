"""One line of shell input -> a command name and its JSON arguments.

Syntax (qmp-shell's): `COMMAND [KEY=VALUE ...]`; `a.b=1` sets member `b` of
argument `a`; a value may be quoted ('...' or "..."), and a JSON object or array may
hold spaces (`bitmaps=[{"node": "n", "name": "b"}]`). A line that starts with `{` is
a whole request (`{"execute": ..., "arguments": {...}}`).

Values are typed by the schema, which is what makes the shell typed: a `str` argument
takes `id=123` as the string "123", an `int` one as the number 123, a `bool` one
takes true/false (also on/off, yes/no as QEMU's command line does), `null` where the
schema allows it. Arguments the schema does not know, and values that do not parse
as the schema's type, are passed on as JSON (or text), so that the validation step
reports them with the schema's words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..schema import AlternateType, BuiltinType, EnumType, Type
from .catalog import Catalog

_BOOLEANS = {
    "true": True,
    "on": True,
    "yes": True,
    "false": False,
    "off": False,
    "no": False,
}


class ShellError(Exception):
    """Input the shell refuses; `column` (1-based) is where, when known."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def located(self, where: str) -> str:
        """`WHERE:COL: message` (`WHERE: message` without a column)."""
        if self.column is None:
            return f"{where}: {self.message}"
        return f"{where}:{self.column}: {self.message}"


@dataclass
class Request:
    command: str
    arguments: dict[str, object] = field(default_factory=dict)
    columns: dict[str, int] = field(default_factory=dict)
    """Where each top-level argument was typed (1-based column), for messages."""


@dataclass(frozen=True)
class Word:
    text: str
    column: int  # 1-based, of the word's first character


def split_words(line: str) -> list[Word]:
    """The words of `line`, split at blanks outside quotes and JSON brackets;
    quotes are removed (inside JSON brackets they are kept: they are JSON's)."""
    words: list[Word] = []
    i = 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        start = i
        text: list[str] = []
        depth = 0
        while i < len(line) and (depth > 0 or not line[i].isspace()):
            char = line[i]
            if char in "'\"" and depth == 0:
                end = line.find(char, i + 1)
                if end < 0:
                    raise ShellError(f"unterminated {char} quote", i + 1)
                text.append(line[i + 1 : end])
                i = end + 1
                continue
            if char == '"':  # a JSON string inside brackets: keep it whole
                end = i + 1
                while end < len(line) and line[end] != '"':
                    end += 2 if line[end] == "\\" else 1
                if end >= len(line):
                    raise ShellError('unterminated " quote', i + 1)
                text.append(line[i : end + 1])
                i = end + 1
                continue
            if char in "{[":
                depth += 1
            elif char in "}]" and depth > 0:
                depth -= 1
            text.append(char)
            i += 1
        if depth > 0:
            raise ShellError("unclosed bracket", start + 1)
        words.append(Word("".join(text), start + 1))
    return words


def typed_value(text: str, typ: Type | None) -> object:
    """`text` as the JSON value the schema's type `typ` wants (see the module)."""
    if isinstance(typ, EnumType):
        return text
    if isinstance(typ, BuiltinType):
        kind = typ.json_type
        if kind == "string":
            return text
        if kind == "boolean":
            return _BOOLEANS.get(text.lower(), text)
        if kind == "null" and text == "null":
            return None
        if kind in ("int", "number"):
            try:
                return int(text, 0) if kind == "int" else _number(text)
            except ValueError:
                return text
    if isinstance(typ, AlternateType):
        kinds = {_json_kind(v.type) for v in typ.alternatives}
        value = _json_or_text(text)
        return value if _kind_of(value) in kinds else text
    return _json_or_text(text)


def _number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _json_or_text(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_kind(typ: Type) -> str:
    if isinstance(typ, EnumType):
        return "string"
    if isinstance(typ, BuiltinType):
        return {"int": "number", "value": "any"}.get(typ.json_type, typ.json_type)
    from ..schema import ArrayType

    return "array" if isinstance(typ, ArrayType) else "object"


def _kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def parse_line(line: str, catalog: Catalog) -> Request:
    """The request `line` asks for; ShellError (with a column) when it cannot be
    read. Whether the command and its arguments fit the schema is validate's job."""
    stripped = line.strip()
    if stripped.startswith("{"):
        return _parse_json_request(stripped, line.index("{") + 1)
    words = split_words(line)
    if not words:
        raise ShellError("empty command")
    command = words[0].text
    request = Request(command)
    for word in words[1:]:
        key, equals, text = word.text.partition("=")
        if not equals or not key:
            raise ShellError(f"expected KEY=VALUE, got {word.text!r}", word.column)
        path = key.split(".")
        if any(not part for part in path):
            raise ShellError(f"empty member name in {key!r}", word.column)
        value = typed_value(text, catalog.argument(command, path))
        _assign(request.arguments, path, value, word.column)
        request.columns.setdefault(path[0], word.column)
    return request


def _assign(
    arguments: dict[str, object], path: list[str], value: object, column: int
) -> None:
    target = arguments
    for depth, name in enumerate(path[:-1]):
        inner = target.setdefault(name, {})
        if not isinstance(inner, dict):
            shown = ".".join(path[: depth + 1])
            raise ShellError(f"{shown} is set already, not an object", column)
        target = inner
    if path[-1] in target:
        raise ShellError(f"{'.'.join(path)} is given twice", column)
    target[path[-1]] = value


def _parse_json_request(text: str, column: int) -> Request:
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise ShellError(f"not JSON: {error.msg}", column + error.pos) from None
    if not isinstance(message, dict) or not isinstance(message.get("execute"), str):
        raise ShellError('a JSON request needs "execute": "COMMAND"', column)
    arguments = message.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ShellError('"arguments" must be a JSON object', column)
    return Request(message["execute"], arguments)
