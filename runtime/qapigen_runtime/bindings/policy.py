"""QEMU's `-compat` policies, for servers built on a generated package.

QEMU's ``-compat`` option says what its QMP monitor does with the symbols a schema
marks 'deprecated' or 'unstable': ``deprecated-input`` and ``unstable-input``
(``accept``, ``reject``, ``crash``) for what clients send, ``deprecated-output`` and
``unstable-output`` (``accept``, ``hide``) for what it sends. `CompatPolicy` holds
them; a generated `CommandDispatcher(handler, policy=...)` and
`introspection.schema_info(defined, policy)` act on them as QEMU 7.2 does (observed
with tests/interop/test_qemu_compat_policies.py):

- input ``reject``: a deprecated command is refused as ``CommandNotFound`` with
  "Deprecated command NAME disabled by policy"; an argument, or a member at any depth
  of an argument, as ``GenericError`` "Deprecated parameter NAME disabled by policy"
  (the member's own name); an enum value as "Deprecated value VALUE disabled by
  policy". Unstable ones read "Unstable ...". Absent deprecated members are never a
  fault, and accepted input is served as usual.
- input ``crash``: the process aborts (SIGABRT) where ``reject`` would refuse.
- output ``hide``: members with the feature are left out of replies and of event
  data, at any depth, enum values are not; events with the feature are not sent;
  with ``deprecated-output=hide`` query-qmp-schema leaves out deprecated commands,
  events and members, and (since SchemaInfoEnum's own ``values`` member is deprecated
  in QEMU 7.2's schema) the ``values`` of enum entries, but keeps deprecated enum
  values; ``unstable-output=hide`` leaves query-qmp-schema as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ..codec import Refusal

InputPolicy = Literal["accept", "reject", "crash"]
OutputPolicy = Literal["accept", "hide"]

_INPUT: Final = ("accept", "reject", "crash")
_OUTPUT: Final = ("accept", "hide")

# How QEMU's messages name each special feature.
WORDS: Final = {"deprecated": "Deprecated", "unstable": "Unstable"}


class PolicyOptionError(ValueError):
    """A `-compat` setting QEMU would refuse; the message is QEMU's."""


@dataclass(frozen=True)
class CompatPolicy:
    """What a server does with deprecated and unstable symbols (QEMU's defaults:
    accept everything, hide nothing)."""

    deprecated_input: InputPolicy = "accept"
    deprecated_output: OutputPolicy = "accept"
    unstable_input: InputPolicy = "accept"
    unstable_output: OutputPolicy = "accept"

    @classmethod
    def from_settings(cls, settings: Iterable[tuple[str, str]]) -> CompatPolicy:
        """The policy of ``-compat KEY=VALUE,...`` (as key/value pairs, a later one
        winning as with QEMU); raises PolicyOptionError with QEMU's message."""
        chosen: dict[str, str] = {}
        for key, value in settings:
            if key not in _KEYS:
                raise PolicyOptionError(f"Parameter '{key}' is unexpected")
            allowed = _INPUT if key.endswith("-input") else _OUTPUT
            if value not in allowed:
                raise PolicyOptionError(
                    f"Parameter '{key}' does not accept value '{value}'"
                )
            chosen[_KEYS[key]] = value
        return cls(**chosen)  # type: ignore[arg-type]

    def input_policy(self, feature: str) -> InputPolicy:
        return self.unstable_input if feature == "unstable" else self.deprecated_input

    def hides(self, feature: str) -> bool:
        """Whether output leaves out what has `feature`."""
        output = (
            self.unstable_output if feature == "unstable" else self.deprecated_output
        )
        return output == "hide"

    def refusing(self, features: Iterable[str]) -> str | None:
        """The first of `features` ('deprecated' before 'unstable', as QEMU checks)
        whose input policy is not ``accept``, or None."""
        for feature in ("deprecated", "unstable"):
            if feature in features and self.input_policy(feature) != "accept":
                return feature
        return None

    def refused(self, table: Mapping[str, Iterable[str]]) -> dict[str, Refusal]:
        """Of `table` (name -> features), what input refuses: name -> (the word QEMU
        names its feature with, whether the policy crashes rather than rejects)."""
        found: dict[str, Refusal] = {}
        for name, features in table.items():
            feature = self.refusing(list(features))
            if feature is not None:
                crashes = self.input_policy(feature) == "crash"
                found[name] = (WORDS[feature], crashes)
        return found

    def hidden(self, table: Mapping[str, Iterable[str]]) -> frozenset[str]:
        """Of `table` (name -> features), what output leaves out."""
        return frozenset(
            name
            for name, features in table.items()
            if any(self.hides(feature) for feature in features)
        )

    def hidden_members(
        self, table: Mapping[str, Mapping[str, Iterable[str]]]
    ) -> dict[str, frozenset[str]]:
        """Of `table` (owner -> member -> features), the members output leaves out,
        by owner (owners with none left out are not listed): what `codec.HIDDEN`
        holds while a server encodes what it sends."""
        return {
            owner: off
            for owner, features in table.items()
            if (off := self.hidden(features))
        }


_KEYS: Final = {
    "deprecated-input": "deprecated_input",
    "deprecated-output": "deprecated_output",
    "unstable-input": "unstable_input",
    "unstable-output": "unstable_output",
}


def crash() -> None:
    """What QEMU does under an input policy ``crash``: abort the process."""
    os.abort()
