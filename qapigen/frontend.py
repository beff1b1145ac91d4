"""The front end in one call: parse → expression checks → schema IR (checked).

`load_schema(fname, level)` returns the checked `Schema`; its `warnings` holds what
the default level let through with a warning (from the parser, the doc comments,
the expression and the IR checks: rules only some releases enforce, see
qapigen.rules, whose `report_warnings` groups them rule by rule). Anything wrong
raises `QAPIError` with a location.
"""

from __future__ import annotations

from .expr import check_exprs
from .level import Level
from .parser import ParsedSchema, parse_schema
from .schema import Schema
from .source import QAPIError


def schema_from_parsed(parsed: ParsedSchema, fname: str, level: Level) -> Schema:
    """Check the expressions of an already parsed schema and build the IR."""
    checked = check_exprs(parsed.exprs, level, parsed.warnings)
    try:
        return Schema.build(
            checked, level, main_fname=fname, docs=parsed.docs, warnings=parsed.warnings
        )
    except RecursionError:
        # only a pathological chain of thousands of bases/branches gets here
        raise QAPIError(
            None, f"{fname}: types nest too deeply (base or branch chains)"
        ) from None


def load_schema(fname: str, level: Level = Level.PERMISSIVE) -> Schema:
    """Read, check and resolve the schema in `fname` (and what it includes)."""
    return schema_from_parsed(parse_schema(fname, level), fname, level)
