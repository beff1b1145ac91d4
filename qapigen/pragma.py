"""Pragma directives: `{ 'pragma': { NAME: VALUE, ... } }`.

The parser validates each pragma as it meets it and records the values in one `Pragma`
object per schema. Every `SourceInfo` of that schema points at the same object through
its `pragma` field, so the expression checks can read `info.pragma.doc_required` and
friends wherever they are. QEMU 5.2 through 10.0 all give a pragma schema-wide scope
("Setting the same pragma to different values in parts of the schema doesn't work"):
the value read at check time is the last one set anywhere in the schema.

Names changed in QEMU 6.0. The values are stored under the modern names, whatever
spelling the schema used:

========================  ==================================================
5.2 name                  stored in
========================  ==================================================
doc-required              doc_required
returns-whitelist         command_returns_exceptions
name-case-whitelist       command_name_exceptions and member_name_exceptions
========================  ==================================================

(5.2's single name-case list exempted both command names and member names.)
`documentation-exceptions` is a QEMU 9.1+ pragma: accepted under 10.0 and PERMISSIVE.
The default level (PERMISSIVE) takes every name, with a warning for a name some
release does not know (see qapigen.rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import rules
from .level import Level
from .source import QAPIError, QAPIWarning, SourceInfo, excerpt


@dataclass(eq=False)
class Pragma:
    """The pragma values of one schema (shared by all its files)."""

    doc_required: bool = False
    command_name_exceptions: list[str] = field(default_factory=list)
    command_returns_exceptions: list[str] = field(default_factory=list)
    member_name_exceptions: list[str] = field(default_factory=list)
    documentation_exceptions: list[str] = field(default_factory=list)


# pragma name -> (attribute names it sets, is boolean); per language generation
_Spec = dict[str, tuple[tuple[str, ...], bool]]
_LEGACY: _Spec = {
    "doc-required": (("doc_required",), True),
    "returns-whitelist": (("command_returns_exceptions",), False),
    "name-case-whitelist": (
        ("command_name_exceptions", "member_name_exceptions"),
        False,
    ),
}
_MODERN: _Spec = {
    "doc-required": (("doc_required",), True),
    "command-name-exceptions": (("command_name_exceptions",), False),
    "command-returns-exceptions": (("command_returns_exceptions",), False),
    "member-name-exceptions": (("member_name_exceptions",), False),
}
_LATEST: _Spec = {
    **_MODERN,
    "documentation-exceptions": (("documentation_exceptions",), False),
}


def known_pragmas(level: Level) -> _Spec:
    """The pragma names `level` accepts, with what each sets."""
    if level is Level.V5_2:
        return _LEGACY
    if level is Level.V7_2:
        return _MODERN
    if level is Level.V10_0:
        return _LATEST
    return {**_LEGACY, **_LATEST}


_MODERN_NAMES = {
    "returns-whitelist": "'command-returns-exceptions'",
    "name-case-whitelist": "'command-name-exceptions' and 'member-name-exceptions'",
}


def _warn_unknown_somewhere(
    name: str, info: SourceInfo, warnings: list[QAPIWarning]
) -> None:
    """The default level takes every release's pragma names; say which ones some
    release does not know ('doc-required' is the same in all of them)."""
    if name in _MODERN_NAMES:
        message = f"pragma '{name}' is QEMU 5.x's name for {_MODERN_NAMES[name]}"
        warnings.append(QAPIWarning(info, message, rules.LEGACY_PRAGMA))
    elif name in _LATEST and name not in _MODERN:
        message = f"pragma '{name}' is new in QEMU 9.1"
        warnings.append(QAPIWarning(info, message, rules.NEW_PRAGMA))
    elif name not in _LEGACY:
        old = next(k for k, v in _MODERN_NAMES.items() if f"'{name}'" in v)
        message = f"pragma '{name}' is QEMU 6.0's name for QEMU 5.x's '{old}'"
        warnings.append(QAPIWarning(info, message, rules.MODERN_PRAGMA))


def apply_pragma(
    pragma: Pragma,
    name: str,
    value: object,
    info: SourceInfo,
    level: Level,
    warnings: list[QAPIWarning] | None = None,
) -> None:
    """Check one `name: value` pair of a pragma directive and record it.

    Raises QAPIError at `info` (the directive) for an unknown name or a bad value;
    at the default level, a name only some releases know is added to `warnings`.
    """
    spec = known_pragmas(level).get(name)
    if spec is None:
        raise QAPIError(info, f"unknown pragma '{excerpt(name)}'")
    if level is Level.PERMISSIVE and warnings is not None:
        _warn_unknown_somewhere(name, info, warnings)
    attrs, is_bool = spec
    if is_bool:
        if not isinstance(value, bool):
            raise QAPIError(info, f"pragma '{name}' must be boolean")
        setattr(pragma, attrs[0], value)
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QAPIError(info, f"pragma {name} must be a list of strings")
    for attr in attrs:
        setattr(pragma, attr, list(value))
