"""Evaluate the `if` conditions generated packages keep as metadata.

A condition is the JSON form of QAPI's modern spelling: a symbol name (``"CONFIG_X"``),
``{"all": [...]}``, ``{"any": [...]}`` or ``{"not": ...}``; None means unconditional.
A server built on a generated package is told which symbols are defined and offers
only what they enable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def holds(condition: object, defined: Collection[str] | None) -> bool:
    """True when `condition` holds with exactly the symbols in `defined` (None: every
    condition holds, i.e. the full schema)."""
    if condition is None or defined is None:
        return True
    if isinstance(condition, str):
        return condition in defined
    if isinstance(condition, Mapping) and len(condition) == 1:
        ((operator, operand),) = condition.items()
        if operator == "not":
            return not holds(operand, defined)
        if isinstance(operand, list):
            if operator == "all":
                return all(holds(item, defined) for item in operand)
            if operator == "any":
                return any(holds(item, defined) for item in operand)
    raise ValueError(f"not a condition: {condition!r}")


def disabled(
    conditions: Mapping[str, object], defined: Collection[str] | None
) -> frozenset[str]:
    """The names in `conditions` whose condition does not hold."""
    if defined is None:
        return frozenset()
    return frozenset(
        name for name, cond in conditions.items() if not holds(cond, defined)
    )
