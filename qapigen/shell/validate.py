"""Arguments checked against the schema before they are sent.

The checks are those of a generated package's strict decoders (QEMU's own), walked
over the schema IR so that they work for any server the shell talks to; the faults
are `qapigen_runtime.codec.DecodeError`s, reported with their JSON path
(`downtime-limit: expected int, got str`) and, for the record, the text QEMU would
answer (`Invalid parameter type for 'downtime-limit', expected: integer`).
"""

from __future__ import annotations

from collections.abc import Callable

from qapigen_runtime import codec

from ..schema import (
    AlternateType,
    ArrayType,
    BuiltinType,
    EnumType,
    ObjectType,
    Type,
)
from .catalog import Catalog
from .command_line import Request, ShellError

_BUILTIN_CHECKS: dict[str, Callable[[object, str, bool], object]] = {
    "str": codec.string,
    "number": codec.number,
    "int": codec.int_,
    "int8": codec.int8,
    "int16": codec.int16,
    "int32": codec.int32,
    "int64": codec.int64,
    "uint8": codec.uint8,
    "uint16": codec.uint16,
    "uint32": codec.uint32,
    "uint64": codec.uint64,
    "size": codec.size,
    "bool": codec.boolean,
    "null": codec.null,
    "any": codec.any_value,
}


def check_request(request: Request, catalog: Catalog) -> None:
    """ShellError when `request` names no command of the server, or its arguments
    do not fit the command's (message: the JSON path and what is wrong)."""
    command = catalog.commands.get(request.command)
    if command is None:
        raise ShellError(f"unknown command '{request.command}' (try: help)")
    try:
        if command.arg_type is None:
            if command.gen:
                codec.extra_members(request.arguments, codec.NO_MEMBERS, "", True)
        else:
            _check_object(
                request.arguments, command.arg_type, "", open_=not command.gen
            )
    except codec.DecodeError as error:
        top = error.path.split(".")[0].split("[")[0]
        raise ShellError(
            f"{request.command}: {error}", request.columns.get(top)
        ) from None


def check_value(value: object, typ: Type, path: str) -> None:
    """DecodeError (with `path`) where `value` does not fit `typ`, strictly."""
    if isinstance(typ, BuiltinType):
        check = _BUILTIN_CHECKS.get(typ.name)
        if check is not None:
            check(value, path, True)
    elif isinstance(typ, EnumType):
        text = codec.string(value, path, True)
        if text not in [member.name for member in typ.members]:
            raise codec.DecodeError(
                path, "enum", f"'{text}' is not a value of {typ.name}", "str", text
            )
    elif isinstance(typ, ArrayType):
        for position, element in enumerate(codec.array(value, path, True)):
            check_value(element, typ.element_type, codec.index(path, position))
    elif isinstance(typ, ObjectType):
        _check_object(codec.object_(value, path, True), typ, path)
    elif isinstance(typ, AlternateType):
        _check_alternate(value, typ, path)


def _check_object(
    data: dict[str, object], typ: ObjectType, path: str, open_: bool = False
) -> None:
    """`open_`: members the schema does not list are let through (the arguments of
    a `'gen': false` command such as device_add: the properties of the device)."""
    members = list(typ.members)
    if typ.variants is not None:
        tag = typ.variants.tag_member
        codec.required(
            data, tag.name, path, True, lambda v, p, s: check_value(v, tag.type, p)
        )
        branch = next((v for v in typ.branches if v.name == data[tag.name]), None)
        if branch is not None and isinstance(branch.type, ObjectType):
            members += [m for m in branch.type.members if m not in members]
    for member in members:

        def decode(
            value: object, where: str, strict: bool, member_type: Type = member.type
        ) -> None:
            check_value(value, member_type, where)

        if member.optional:
            codec.optional(data, member.name, path, True, decode)
        else:
            codec.required(data, member.name, path, True, decode)
    if not open_:
        codec.extra_members(data, {m.name for m in members}, path, True)


def _check_alternate(value: object, typ: AlternateType, path: str) -> None:
    """The alternative of `value`'s JSON kind decides (an alternate has at most one
    per kind; `int` and `number` share numbers, so the first that fits wins)."""
    fault: codec.DecodeError | None = None
    for alternative in typ.alternatives:
        try:
            check_value(value, alternative.type, path)
            return
        except codec.DecodeError as error:
            if error.path != path or error.kind != "type":
                fault = fault or error  # the right kind, wrong inside: say what
    if fault is not None:
        raise fault
    kinds = " or ".join(alternative.type.name for alternative in typ.alternatives)
    raise codec.DecodeError(
        path, "type", f"expected {kinds}, got {codec.kind_of(value)}", typ.name
    )
