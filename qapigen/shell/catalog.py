"""What the shell knows about the server's commands: from the schema IR.

The IR comes from the server's own `query-qmp-schema` (qapigen.from_introspection),
or from a generated package's `introspection.schema_info()` when the server cannot
describe itself (qemu-ga) or when the package has what introspection lacks: doc
comments. `help COMMAND` shows the package's docstring of the command when there is
one, and otherwise what the schema says (arguments, types, return type, features).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from ..from_introspection.build import schema_from_entities
from ..from_introspection.reply import read_entities
from ..schema import (
    AlternateType,
    ArrayType,
    Command,
    EnumType,
    ObjectMember,
    Schema,
    Type,
)


class Catalog:
    """The commands of one server, with their arguments and help texts."""

    def __init__(self, schema: Schema, docs: Mapping[str, str] | None = None) -> None:
        self.schema = schema
        self.commands: dict[str, Command] = {c.name: c for c in schema.commands()}
        self.docs = dict(docs or {})

    @classmethod
    def from_introspection(
        cls, answer: object, source: str, docs: Mapping[str, str] | None = None
    ) -> Catalog:
        """The catalog of a `query-qmp-schema` answer (QAPIError if malformed)."""
        return cls(schema_from_entities(read_entities(answer, source), source), docs)

    @classmethod
    def from_package(cls, package: str) -> Catalog:
        """The catalog of an importable generated package, with its docstrings.
        ImportError when it cannot be imported."""
        introspection = importlib.import_module(f"{package}.introspection")
        commands = importlib.import_module(f"{package}.commands")
        docs: dict[str, str] = {}
        for wire_name, method in commands.METHODS.items():
            doc = getattr(commands.SyncClient, method).__doc__
            if doc:
                docs[wire_name] = doc
        return cls.from_introspection(
            list(introspection.schema_info()), f"{package}.introspection", docs
        )

    def command_names(self) -> list[str]:
        return sorted(self.commands)

    def arguments(self, command: str) -> list[ObjectMember]:
        """The arguments of `command` (none for an unknown command)."""
        found = self.commands.get(command)
        if found is None or found.arg_type is None:
            return []
        return list(found.arg_type.members)

    def argument(self, command: str, path: list[str]) -> Type | None:
        """The type at dotted argument path `path` (`['a', 'b']` for `a.b=`), or
        None when the schema has no such member."""
        members = self.arguments(command)
        found: Type | None = None
        for name in path:
            member = next((m for m in members if m.name == name), None)
            if member is None:
                return None
            found = member.type
            members = _members_of(found)
        return found

    def help(self, command: str) -> str:
        """The help text of `command`: the package's docstring, else the schema's
        signature (arguments, types, return type, features)."""
        found = self.commands[command]
        lines = [self._signature(found)]
        doc = self.docs.get(command)
        if doc:
            lines += ["", _dedent(doc)]
        elif found.features:
            lines.append("features: " + ", ".join(f.name for f in found.features))
        return "\n".join(lines)

    def _signature(self, command: Command) -> str:
        words = [command.name]
        for member in self.arguments(command.name):
            text = f"{member.name}={type_text(member.type)}"
            words.append(f"[{text}]" if member.optional else text)
        returns = "" if command.ret_type is None else type_text(command.ret_type)
        return " ".join(words) + (f" -> {returns}" if returns else "")


def _members_of(typ: Type | None) -> list[ObjectMember]:
    from ..schema import ObjectType

    if isinstance(typ, ObjectType):
        return list(typ.members)
    return []


def type_text(typ: Type) -> str:
    """A type as help shows it: `int`, `[str]`, `on|off` (a short enum), a name."""
    if isinstance(typ, ArrayType):
        return f"[{type_text(typ.element_type)}]"
    if isinstance(typ, EnumType) and len(typ.members) <= 4:
        return "|".join(member.name for member in typ.members)
    if isinstance(typ, AlternateType):
        return "|".join(type_text(v.type) for v in typ.alternatives)
    return typ.name


def _dedent(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)
