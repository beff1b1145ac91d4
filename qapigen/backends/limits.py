"""How far a schema may nest before the generated package stops growing in proportion.

The package spells every class out: a struct's class lists every member it has, its
base's included (slots, typed keyword-only `__init__`, inline codec), and a union has a
class per branch, a branch that is itself a union a class per branch of that union,
each with every member on the way. So the code of one definition grows with the members
it gathers from its bases and nested branches, not with its own text: a chain of N
structs each adding a member is N lines of schema but N*N/2 members of code, and unions
nested N deep dispatch N levels deep (Python refuses more than 100 indentation levels).

So each definition may gather a bounded amount, which keeps the output within a constant
of the schema's size (every definition is at least a line of schema, and costs at most
`MAX_FLAT_MEMBERS` members of code); deeper structures are refused here, before anything
is generated, with an error at the definition that says why. The bounds are far above
what QEMU's schemas use (5.2 to 10.0: bases 2 deep, unions nested 1 deep, at most 617
members gathered, by BlockdevOptions) and far below what breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import ObjectType, Schema
from ..source import QAPIError

# A struct's base chain (its base, the base's base...).
MAX_BASE_DEPTH = 16
# Unions as branches of unions, counting from the outermost.
MAX_UNION_NESTING = 8
# The members one definition's classes hold in all (every branch class counted).
MAX_FLAT_MEMBERS = 4096

_WHY = "each generated class repeats the members it gathers"


@dataclass(frozen=True)
class _Flat:
    """What one object type's classes hold: branch classes, members in all, and how
    deep unions nest in its branches (with the path that nests deepest)."""

    classes: int
    members: int
    nesting: tuple[str, ...]


def check_limits(schema: Schema) -> None:
    """QAPIError at the first definition past a bound (see the module docstring)."""
    flat: dict[str, _Flat] = {}
    for typ in schema.types():
        if isinstance(typ, ObjectType):
            _check_base_depth(typ)
            _check_flat(typ, _flatten(typ, flat))


def _check_base_depth(typ: ObjectType) -> None:
    chain = [typ.name]
    base = typ.base
    while base is not None:
        chain.append(base.name)
        base = base.base
    depth = len(chain) - 1
    if depth > MAX_BASE_DEPTH:
        shown = " -> ".join(chain[:3] + ["..."] + chain[-1:])
        raise QAPIError(
            typ.info,
            f"{typ.describe()} has a base chain {depth} deep ({shown}); qapigen"
            f" generates at most {MAX_BASE_DEPTH}: {_WHY}, so a deeper chain makes"
            " the package grow with the square of its length",
        )


def _check_flat(typ: ObjectType, flat: _Flat) -> None:
    nesting = len(flat.nesting) - 1
    if nesting > MAX_UNION_NESTING:
        shown = " -> ".join(flat.nesting[:3] + ("...",) + flat.nesting[-1:])
        raise QAPIError(
            typ.info,
            f"{typ.describe()} nests unions {nesting} deep through its branches"
            f" ({shown}); qapigen generates at most {MAX_UNION_NESTING}: {_WHY}"
            " and decodes each level inside the one before",
        )
    if flat.members > MAX_FLAT_MEMBERS:
        raise QAPIError(
            typ.info,
            f"{typ.describe()} gathers {flat.members} members in its"
            f" {flat.classes} generated class(es) through its base and branches;"
            f" qapigen generates at most {MAX_FLAT_MEMBERS} per definition: {_WHY},"
            " so the package would grow faster than the schema",
        )


def _flatten(typ: ObjectType, memo: dict[str, _Flat]) -> _Flat:
    """What `typ`'s classes hold (memoized: a nested union is counted once)."""
    known = memo.get(typ.name)
    if known is not None:
        return known
    own = len(typ.members)
    if typ.variants is None:
        result = _Flat(1, own, (typ.name,))
    else:
        classes = members = 0
        nesting: tuple[str, ...] = (typ.name,)
        for variant in typ.variants.variants:
            vtype = variant.type
            assert isinstance(vtype, ObjectType)
            if vtype.variants is None:
                classes += 1
                members += own + len(vtype.members)
                continue
            inner = _flatten(vtype, memo)
            classes += inner.classes
            members += inner.members + inner.classes * own
            if len(inner.nesting) + 1 > len(nesting):
                nesting = (typ.name, *inner.nesting)
        result = _Flat(classes, members, nesting)
    memo[typ.name] = result
    return result
