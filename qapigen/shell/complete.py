"""Tab completion from the schema: command names, then argument names (`key=`), then
the values of enum and boolean arguments.

`completions(catalog, line)` is the whole logic (what the tests call); `Completer`
adapts it to readline's one-candidate-at-a-time protocol.
"""

from __future__ import annotations

from ..schema import BuiltinType, EnumType, ObjectMember, ObjectType
from .catalog import Catalog

SHELL_WORDS = ("help", "quit")


def completions(catalog: Catalog, line: str) -> list[str]:
    """The words that may replace the last (partial) word of `line`, the text
    before the cursor; sorted."""
    words = line.split()
    partial = "" if not words or line[-1:].isspace() else words[-1]
    before = words[:-1] if partial else words
    if not before:
        names = [*catalog.command_names(), *SHELL_WORDS]
        return sorted(name for name in names if name.startswith(partial))
    command = before[0]
    if command == "help":
        return (
            sorted(n for n in catalog.command_names() if n.startswith(partial))
            if len(before) == 1
            else []
        )
    key, equals, value = partial.partition("=")
    path = key.split(".")
    if equals:
        return [
            f"{key}={v}" for v in _values(catalog, command, path) if v.startswith(value)
        ]
    given = {word.partition("=")[0] for word in before[1:]}
    members = (
        catalog.arguments(command)
        if len(path) == 1
        else _members(catalog, command, path[:-1])
    )
    prefix = ".".join(path[:-1] + [""]) if len(path) > 1 else ""
    candidates = []
    for member in members:
        name = prefix + member.name
        if name in given or not name.startswith(key):
            continue
        nested = isinstance(member.type, ObjectType) and not member.type.variants
        candidates.append(name + ("." if nested else "="))
    return sorted(candidates)


def _members(catalog: Catalog, command: str, path: list[str]) -> list[ObjectMember]:
    typ = catalog.argument(command, path)
    return list(typ.members) if isinstance(typ, ObjectType) else []


def _values(catalog: Catalog, command: str, path: list[str]) -> list[str]:
    typ = catalog.argument(command, path)
    if isinstance(typ, EnumType):
        return [member.name for member in typ.members]
    if isinstance(typ, BuiltinType) and typ.json_type == "boolean":
        return ["false", "true"]
    return []


class Completer:
    """readline's completer: state 0 computes the candidates, later states walk them."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._candidates: list[str] = []

    def __call__(self, text: str, state: int) -> str | None:
        if state == 0:
            import readline

            line = readline.get_line_buffer()[: readline.get_endidx()]
            self._candidates = completions(self.catalog, line)
        # the session sets readline's delimiters to blanks, so `text` is the
        # partial word the candidates replace
        if state < len(self._candidates):
            return self._candidates[state]
        return None
