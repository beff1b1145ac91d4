"""The query-qmp-schema answer of a generated package, for a server with given
condition symbols."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from ..conditions import holds

Entry = tuple[str, object, dict[str, object] | None]
"""A SchemaInfo entry as JSON text, the entry's `if` condition, and the conditions of
its members, enum values and branches (by name; None when none is conditional)."""


def schema_info(
    entries: Iterable[Entry], defined: Collection[str] | None = None
) -> list[dict[str, object]]:
    """The query-qmp-schema answer: a list of SchemaInfo objects.

    With `defined` (the condition symbols a server has), entries, members, values and
    branches whose `if` condition does not hold are left out, as QEMU built without
    them would; None answers for the whole schema.
    """
    answer: list[dict[str, object]] = []
    for text, condition, member_conditions in entries:
        if not holds(condition, defined):
            continue
        entry: dict[str, object] = json.loads(text)
        if member_conditions is not None and defined is not None:
            _drop_disabled(entry, member_conditions, defined)
        answer.append(entry)
    return answer


def _drop_disabled(
    entry: dict[str, object], conditions: dict[str, object], defined: Collection[str]
) -> None:
    off = {name for name, cond in conditions.items() if not holds(cond, defined)}
    for key, field in (("members", "name"), ("variants", "case")):
        items = entry.get(key)
        if isinstance(items, list):
            entry[key] = [
                item
                for item in items
                if not (isinstance(item, dict) and item.get(field) in off)
            ]
    values = entry.get("values")
    if isinstance(values, list):
        entry["values"] = [value for value in values if value not in off]
