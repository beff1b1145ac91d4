"""The query-qmp-schema answer of a generated package, for a server with given
condition symbols."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from ..conditions import holds
from .policy import CompatPolicy

Entry = tuple[str, object, dict[str, object] | None]
"""A SchemaInfo entry as JSON text, the entry's `if` condition, and the conditions of
its members, enum values and branches (by name; None when none is conditional)."""


def schema_info(
    entries: Iterable[Entry],
    defined: Collection[str] | None = None,
    policy: CompatPolicy | None = None,
) -> list[dict[str, object]]:
    """The query-qmp-schema answer: a list of SchemaInfo objects.

    With `defined` (the condition symbols a server has), entries, members, values and
    branches whose `if` condition does not hold are left out, as QEMU built without
    them would; None answers for the whole schema. A `policy` with
    ``deprecated-output=hide`` leaves out what QEMU 7.2 then leaves out (see
    `qapigen_runtime.bindings.policy`).
    """
    hide = policy is not None and policy.deprecated_output == "hide"
    answer: list[dict[str, object]] = []
    for text, condition, member_conditions in entries:
        if not holds(condition, defined):
            continue
        entry: dict[str, object] = json.loads(text)
        if member_conditions is not None and defined is not None:
            _drop_disabled(entry, member_conditions, defined)
        if hide and not _hide_deprecated(entry):
            continue
        answer.append(entry)
    return answer


def _hide_deprecated(entry: dict[str, object]) -> bool:
    """Leave out of `entry` what ``deprecated-output=hide`` hides; False when that is
    the whole entry (a deprecated command or event). Deprecated members go (of every
    object type, arguments included); an enum entry loses ``values``, since the answer
    is laid out as QEMU 7.2's SchemaInfo, whose SchemaInfoEnum.values is itself
    deprecated; deprecated enum values stay listed in ``members``, as with QEMU."""
    if _deprecated(entry):
        return False
    members = entry.get("members")
    if entry.get("meta-type") == "object" and isinstance(members, list):
        entry["members"] = [member for member in members if not _deprecated(member)]
    if entry.get("meta-type") == "enum":
        entry.pop("values", None)
    return True


def _deprecated(item: object) -> bool:
    features = item.get("features") if isinstance(item, dict) else None
    return isinstance(features, list) and "deprecated" in features


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
