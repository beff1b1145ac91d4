"""Build the checked schema IR from a `query-qmp-schema` answer.

The answer is turned into the definitions a schema file would hold (in the same
dictionary form the parser yields) and then goes through the same expression checks
and IR checks as a schema read from source, so the back ends see nothing new. What
introspection cannot say is settled the way that keeps the wire the same:

- Types are renamed (names.py); definitions come in a fixed order (types by name,
  then commands, then events, each by name), so the output does not depend on the
  order of the answer's entries.
- An object with a `tag` is a union whose base holds all of its members (the
  answer does not say which came from a base type); one without is a struct.
- Command arguments and event data are written inline (keyword arguments, as for
  most commands in QEMU's source), except a union, which must be a named type
  passed `boxed`.
- A member with a `default` (always null) is optional.
- An alternate's members are named after their kind (see names.alternative_label).
- Built-in integer types are reported only as `int`: their ranges are unknown, so
  values are checked as JSON integers.
- Conditions: the answer lists only what the build has, so nothing is conditional.
- Features are kept on every entity, member and enum value that has them.
- `allow-oob` is kept; `allow-preconfig`, `coroutine`, `gen` and `success-response`
  are not in introspection and take their defaults, except that the commands QEMU
  declares `'gen': false` to take arguments its schema does not list (OPEN_COMMANDS:
  `device_add`, and QEMU 5.x's `object-add`, whose arguments were then not a union)
  are marked so again, as from source: they take the properties of what they create.
"""

from __future__ import annotations

from ..expr import check_exprs
from ..level import Level
from ..parser import Expression
from ..pragma import Pragma
from ..schema import Schema
from ..source import QAPIError, QAPIWarning, SourceInfo
from .names import alternative_label, derive_names
from .reply import InfoEntity, InfoMember

OPEN_COMMANDS = frozenset({"device_add", "object-add"})
"""Commands every QEMU release (5.2 to 10.0) that has them with plain (not union)
arguments declares `'gen': false` "so we can get the additional arguments"."""

MODULE_NAME = "qmp-schema"
"""The one module of a schema built from introspection (the answer has no files)."""


class _Writer:
    def __init__(self, entities: list[InfoEntity]) -> None:
        self.by_name = {entity.name: entity for entity in entities}
        self.names = derive_names(entities)

    def type_ref(self, name: str) -> object:
        entity = self.by_name[name]
        if entity.meta == "array":
            return [self.names[self.by_name[entity.element_type].name]]
        return self.names[name]

    def is_empty(self, name: str) -> bool:
        entity = self.by_name[name]
        return entity.meta == "object" and not entity.members and not entity.variants

    @staticmethod
    def features(names: tuple[str, ...]) -> dict[str, object]:
        return {"features": list(names)} if names else {}

    def members(self, members: tuple[InfoMember, ...]) -> dict[str, object]:
        data: dict[str, object] = {}
        for member in members:
            key = ("*" if member.optional else "") + member.name
            ref = self.type_ref(member.type)
            data[key] = (
                {"type": ref, "features": list(member.features)}
                if member.features
                else ref
            )
        return data

    def type_definition(self, entity: InfoEntity) -> dict[str, object]:
        name = self.names[entity.name]
        if entity.meta == "enum":
            values: list[object] = [
                {"name": v.name, "features": list(v.features)} if v.features else v.name
                for v in entity.values
            ]
            return {"enum": name, "data": values, **self.features(entity.features)}
        if entity.meta == "alternate":
            data = {
                alternative_label(self.by_name[t]): self.type_ref(t)
                for t in entity.alternatives
            }
            return {"alternate": name, "data": data, **self.features(entity.features)}
        if entity.tag is None:
            return {
                "struct": name,
                "data": self.members(entity.members),
                **self.features(entity.features),
            }
        return {
            "union": name,
            "base": self.members(entity.members),
            "discriminator": entity.tag,
            "data": {
                case: self.names[type_name]
                for case, type_name in entity.variants
                if not self.is_empty(type_name)
            },
            **self.features(entity.features),
        }

    def arguments(self, type_name: str) -> dict[str, object]:
        """The `data` (and `boxed`) of a command or event taking `type_name`."""
        if self.is_empty(type_name):
            return {}
        entity = self.by_name[type_name]
        if entity.variants or entity.tag is not None:
            return {"data": self.names[type_name], "boxed": True}
        return {"data": self.members(entity.members)}

    def command(self, entity: InfoEntity) -> dict[str, object]:
        expr: dict[str, object] = {"command": entity.name}
        expr.update(self.arguments(entity.arg_type))
        if entity.name in OPEN_COMMANDS and "boxed" not in expr:
            expr["gen"] = False
        if not self.is_empty(entity.ret_type):
            expr["returns"] = self.type_ref(entity.ret_type)
        if entity.allow_oob:
            expr["allow-oob"] = True
        expr.update(self.features(entity.features))
        return expr

    def event(self, entity: InfoEntity) -> dict[str, object]:
        expr: dict[str, object] = {"event": entity.name}
        expr.update(self.arguments(entity.arg_type))
        expr.update(self.features(entity.features))
        return expr

    def definitions(self) -> list[tuple[InfoEntity, dict[str, object]]]:
        types = sorted(
            (
                entity
                for entity in self.by_name.values()
                if entity.meta in ("enum", "object", "alternate")
                and entity.name in self.names
            ),
            key=lambda entity: self.names[entity.name],
        )
        commands = sorted(
            (e for e in self.by_name.values() if e.meta == "command"),
            key=lambda e: e.name,
        )
        events = sorted(
            (e for e in self.by_name.values() if e.meta == "event"),
            key=lambda e: e.name,
        )
        return [
            *((e, self.type_definition(e)) for e in types),
            *((e, self.command(e)) for e in commands),
            *((e, self.event(e)) for e in events),
        ]


def _exempting_pragma(entities: list[InfoEntity], names: dict[str, str]) -> Pragma:
    """The pragma that lets through what QEMU's own schema exempts (commands named
    with `_`, commands returning a non-object, members named with upper case): the
    answer lists what QEMU accepted, and its exceptions are not in it."""
    commands = [e.name for e in entities if e.meta == "command"]
    definitions = [*names.values(), *commands]
    definitions += [e.name for e in entities if e.meta == "event"]
    return Pragma(
        command_name_exceptions=commands,
        command_returns_exceptions=commands,
        member_name_exceptions=definitions,
    )


def schema_from_entities(entities: list[InfoEntity], fname: str) -> Schema:
    """The checked IR of the answer `entities` (read from `fname`). A definition
    that fails the checks is reported at `fname:INDEX`, INDEX being the answer's
    entry (0-based) it came from."""
    writer = _Writer(entities)
    pragma = _exempting_pragma(entities, writer.names)
    exprs = [
        Expression(expr, SourceInfo(MODULE_NAME, entity.index, pragma=pragma))
        for entity, expr in writer.definitions()
    ]
    warnings: list[QAPIWarning] = []
    try:
        checked = check_exprs(exprs, Level.PERMISSIVE, warnings)
        return Schema.build(
            checked,
            Level.PERMISSIVE,
            main_fname=MODULE_NAME,
            docs=[],
            warnings=warnings,
        )
    except QAPIError as error:
        raise QAPIError(
            None, f"{fname}: the answer does not make a valid schema: {error}"
        ) from None
