"""Names for the types a `query-qmp-schema` answer masks, derived from their uses.

QEMU reports every type by a number ("123"; implicit types likewise), so the names of
a package generated from introspection are made here, from where each type is used.
The rules (also in docs/introspection.md):

- Each use names the type after its user:
  * the return type of command `query-X` is `XInfo` (`query-status` -> `StatusInfo`),
    of any other command `C` it is `CResult` (`qom-list` -> `QomListResult`);
  * the arguments of command `C` are `C` (`migrate-set-parameters` ->
    `MigrateSetParameters`), the data of event `E` is `EEvent` (`MIGRATION` ->
    `MigrationEvent`);
  * member `m` of type `P`, and the branch for tag value `m` of union `P`, is `PM`
    (`StatusInfo`'s `status` -> `StatusInfoStatus`);
  * an alternate `A`'s member is `A` plus the member's kind (`AObject`, `AEnum`...);
  * an array's element is named by the array's use.
  Words are split at `-`, `_` and `.` and capitalized (`query-cpus-fast` ->
  `CpusFastInfo`).
- A type used in several places takes the name of its use nearest to a command or
  event (fewest steps), and among those the first in alphabetical order. So a name
  depends only on the commands and events that reach the type: adding a command or
  event that does not use it never renames it.
- A name that would end in `List` (reserved for arrays) ends in `ListType`.
- Two types that would get the same name (or a name `TList`, the name of the
  array of `T`) are told apart by a number: `Name2`, `Name3`, in the order of their
  other candidate names.
- A type the answer names (anything but a number or a `q_` implicit name, as in an
  answer from qapigen's own `introspection.schema_info()`) keeps its name.
- An object without members that is only used as arguments, a return value or a union
  branch (QEMU's `q_empty`) gets no name: there it means "nothing".
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .reply import InfoEntity

_WORD_BREAK = re.compile(r"[-_.]+")
RESERVED = frozenset({"QType"})  # built into every schema's IR


def is_masked(name: str) -> bool:
    """Whether `name` is QEMU's stand-in (a number, or an implicit `q_...` name)
    rather than a name a schema could define."""
    return name.isdigit() or name.startswith("q_")


def camel(text: str) -> str:
    """`query-cpus-fast` -> `QueryCpusFast`, `BLOCK_JOB_READY` -> `BlockJobReady`,
    `tls-creds` -> `TlsCreds`: each word capitalized, the rest kept unless the
    word is all upper case."""
    words = [word for word in _WORD_BREAK.split(text) if word]
    return "".join(
        (word.capitalize() if word.isupper() else word[0].upper() + word[1:])
        for word in words
    )


def alternative_label(entity: InfoEntity) -> str:
    """What an alternate calls its member of type `entity`: a builtin's name, or the
    meta-type (an alternate takes at most one member per JSON kind, so these
    never repeat within one alternate)."""
    return entity.name if entity.meta == "builtin" else entity.meta


class _Graph:
    def __init__(self, entities: list[InfoEntity]) -> None:
        self.by_name = {entity.name: entity for entity in entities}

    def element(self, name: str) -> InfoEntity:
        """The type behind a reference, looking through arrays."""
        entity = self.by_name[name]
        while entity.meta == "array":
            entity = self.by_name[entity.element_type]
        return entity

    def is_empty_object(self, name: str) -> bool:
        entity = self.by_name[name]
        return entity.meta == "object" and not entity.members and not entity.variants

    def root_uses(self, entity: InfoEntity) -> Iterator[tuple[str, str]]:
        """(type name, proposed name) for what a command or event uses."""
        if entity.meta == "command":
            stem = entity.name
            if not self.is_empty_object(entity.arg_type):
                yield entity.arg_type, camel(stem)
            if not self.is_empty_object(entity.ret_type):
                if stem.startswith("query-") and len(stem) > len("query-"):
                    result = camel(stem.removeprefix("query-")) + "Info"
                else:
                    result = camel(stem) + "Result"
                yield self.element(entity.ret_type).name, result
        elif entity.meta == "event" and not self.is_empty_object(entity.arg_type):
            yield entity.arg_type, camel(entity.name) + "Event"

    def type_uses(self, entity: InfoEntity, name: str) -> Iterator[tuple[str, str]]:
        """(type name, proposed name) for what type `entity`, named `name`, uses."""
        if entity.meta == "object":
            for member in entity.members:
                yield self.element(member.type).name, name + camel(member.name)
            for case, type_name in entity.variants:
                if not self.is_empty_object(type_name):
                    yield type_name, name + camel(case)
        elif entity.meta == "alternate":
            for type_name in entity.alternatives:
                used = self.element(type_name)
                yield used.name, name + camel(
                    alternative_label(self.by_name[type_name])
                )


def derive_names(entities: list[InfoEntity]) -> dict[str, str]:
    """A name for every type that gets one (see the module's rules), by the name
    the answer gives it. Builtins keep theirs; arrays get none (they are `[T]`)."""
    graph = _Graph(entities)
    names: dict[str, str] = {}
    taken: set[str] = set(RESERVED)
    for entity in entities:
        if entity.meta == "builtin":
            names[entity.name] = entity.name
        elif entity.meta not in ("array", "command", "event") and not is_masked(
            entity.name
        ):
            taken.update({entity.name, entity.name + "List"})

    def settle(candidates: dict[str, list[str]]) -> list[str]:
        """Name the types in `candidates` (type -> proposed names); the newly named."""
        chosen: list[tuple[tuple[str, ...], str]] = []
        for type_name, proposals in candidates.items():
            if type_name in names:
                continue
            chosen.append((tuple(sorted(set(proposals))), type_name))
        named = []
        for sorted_proposals, type_name in sorted(chosen):
            if not is_masked(type_name):
                names[type_name] = type_name
            else:
                base = sorted_proposals[0]
                if base.endswith("List"):  # reserved for arrays
                    base += "Type"
                name, number = base, 1
                while name in taken or name + "List" in taken:
                    number += 1
                    name = f"{base}{number}"
                taken.update({name, name + "List"})
                names[type_name] = name
            named.append(type_name)
        return named

    def frontier_from(users: list[str]) -> dict[str, list[str]]:
        candidates: dict[str, list[str]] = {}
        for user in users:
            entity = graph.by_name[user]
            for type_name, proposal in graph.type_uses(entity, names[user]):
                candidates.setdefault(type_name, []).append(proposal)
        return candidates

    roots: dict[str, list[str]] = {}
    for entity in entities:
        for type_name, proposal in graph.root_uses(entity):
            roots.setdefault(type_name, []).append(proposal)
    level = settle(roots)
    while True:
        while level:
            level = settle(frontier_from(level))
        # types the answer names but nothing reaches: start from them too
        unreached = sorted(
            entity.name
            for entity in entities
            if entity.meta in ("enum", "object", "alternate")
            and entity.name not in names
            and not is_masked(entity.name)
        )
        if not unreached:
            break
        level = settle({name: [name] for name in unreached})
    return names
