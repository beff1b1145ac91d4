"""Compare a live QEMU's ``query-qmp-schema`` answer with what a package was built from.

Both inputs are lists of SchemaInfo objects (QEMU's introspection format). QEMU hides
the names of non-built-in types behind numbers ("123") and maps every integer type to
"int", so types are never matched by name: the walk starts from commands and events
(whose names are ABI), follows ``arg-type``, ``ret-type``, object members, union
variants, array elements and alternate branches through both graphs in step, and
compares what it meets by structure. Built-in types compare by ``json-type``.

Each type is compared once per pair and direction, however many commands reach it, so
cycles in the type graph terminate and a difference is listed once, at the first place
the walk meets it (commands, then events, each in name order); `Difference.used_by`
names every command and event that reaches it.

What "breaking" means (`SchemaComparison.is_compatible` is "nothing is breaking"):
the live QEMU accepts every request the package's typed client can send, and the
package can decode every reply and event the live QEMU can send. In detail:

- arguments (the package sends, QEMU checks strictly): breaking are a command missing
  live, an argument member the package has and QEMU lacks (QEMU rejects unexpected
  members), a member required live but optional in the package or absent from it, an
  enum value or union branch the package has and QEMU lacks, and a type QEMU would
  reject a package value of (``StrOrNull`` in the package, ``str`` live: null is
  refused). Extra optional live members, values and branches are fine.
- replies and events (QEMU sends, the generated decoders keep unknown members and enum
  values): breaking are a member the package requires that QEMU lacks or may omit
  (unless the package deprecates it: its decoders take a deprecated member's absence,
  as they take a conditional one's, which introspection does not show), a
  union branch only QEMU has (the decoder has no class for it), and a type whose live
  values the package cannot decode. Added members and enum values are fine.
- never breaking: events the live QEMU lacks or adds, commands it adds, ``allow-oob``
  (the typed client does not send ``exec-oob`` by itself) and features such as
  ``deprecated`` (informational; a QEMU run with ``-compat deprecated-input=reject``
  would refuse deprecated input, which this comparison does not know about).
- hidden by policy, not breaking: a QEMU run with ``-compat deprecated-output=hide``
  leaves its deprecated commands, events and object members out of
  ``query-qmp-schema`` (and deprecated members out of its replies) while it still
  accepts them. When the live schema shows no deprecated command, event or member
  while the package has deprecated ones and the live QEMU none of them, the
  comparison takes it to run so (``deprecated_hidden`` overrides the guess), and
  lists the package's deprecated items it lacks as `DifferenceKind.HIDDEN_BY_POLICY`.
  Introspection alone cannot tell such an item from one the QEMU removed.

Limits: a union branch is compared by its listed ``variants`` only (a tag value with an
implicitly empty branch counts as no branch), and a type used both in arguments and in
replies is walked once per direction, so its differences can be listed twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .result import Difference, DifferenceKind, SchemaComparison
from .schema_info import LIVE, PACKAGE, SchemaFormatError, Side
from .walk import Walker

__all__ = [
    "Difference",
    "DifferenceKind",
    "SchemaComparison",
    "SchemaFormatError",
    "compare_schemas",
]


def compare_schemas(
    built: Sequence[Mapping[str, object]],
    live: Sequence[Mapping[str, object]],
    *,
    deprecated_hidden: bool | None = None,
) -> SchemaComparison:
    """Compare `built` (what a package was generated from: its
    ``introspection.schema_info()``) with `live` (a QEMU's ``query-qmp-schema``
    answer). SchemaFormatError, naming the side and entry, if either is malformed.

    `deprecated_hidden`: whether the live QEMU runs with ``-compat
    deprecated-output=hide``; None (the default) guesses from the two schemas.
    """
    walker = Walker(Side(PACKAGE, built), Side(LIVE, live), deprecated_hidden)
    return walker.run()
