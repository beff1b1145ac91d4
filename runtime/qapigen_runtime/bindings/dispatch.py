"""The command dispatcher of a generated package: QEMU's dispatch, fed by its tables.

A generated package holds one marshal function per command (decode the arguments
strictly, call the handler's method, encode the reply) and tables of what each
command is: its handler method, its `if` conditions, whether it may run out of band.
`SchemaDispatcher` is what QEMU's dispatcher does with them: offer only the commands
whose condition holds and that the handler implements, refuse the rest with
`CommandNotFound`, refuse arguments a build without them would not know, and turn a
decoding fault into QEMU's `GenericError` text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import codec as _c
from ..conditions import disabled, holds
from ..qmp.errors import CommandNotFound, GenericError
from ..qmp.protocol import NO_REPLY
from ..qmp.server import Dispatcher
from .policy import CompatPolicy, crash

Runner = Callable[[Any, dict[str, object]], Awaitable[object]]
"""A marshal function: (handler, wire arguments) -> wire reply. The handler is the
package's CommandHandler, which this module does not know."""


@dataclass(frozen=True)
class CommandTables:
    """What a generated package says about its commands (wire names as keys)."""

    methods: Mapping[str, str]
    """The handler method of each command."""
    command_conditions: Mapping[str, object]
    """The `if` condition of each conditional command (JSON form)."""
    argument_conditions: Mapping[str, Mapping[str, object]]
    """The `if` condition of each conditional argument, by command."""
    member_conditions: Mapping[str, Mapping[str, object]]
    """The `if` condition of each conditional member, by class."""
    value_conditions: Mapping[str, Mapping[str, object]]
    """The `if` condition of each conditional enum value, by enum class."""
    oob_commands: frozenset[str]
    """The commands that may run out of band."""
    command_features: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """The special features ('deprecated', 'unstable') of commands that have any."""
    argument_features: Mapping[str, Mapping[str, Sequence[str]]] = field(
        default_factory=dict
    )
    """The special features of arguments, by command."""
    member_features: Mapping[str, Mapping[str, Sequence[str]]] = field(
        default_factory=dict
    )
    """The special features of members, by class."""
    value_features: Mapping[str, Mapping[str, Sequence[str]]] = field(
        default_factory=dict
    )
    """The special features of enum values, by enum class."""
    no_reply_commands: frozenset[str] = frozenset()
    """The ``'success-response': false`` commands: no reply when they succeed."""


class SchemaDispatcher(Dispatcher):
    """Serves QMP commands with a handler object: arguments are decoded strictly (an
    unknown or ill-typed argument is refused with QEMU's error text), replies encoded.

    `defined` names the condition symbols the server has; commands and arguments whose
    `if` condition does not hold are not offered (None: the whole schema), nor are the
    commands the handler leaves to `placeholder` (the package's CommandHandlerBase,
    whose methods stand for "not implemented"). `policy` is QEMU's `-compat`
    (`qapigen_runtime.bindings.policy`): what its input policies refuse is refused
    with QEMU's texts, what its output policies hide is left out of replies.
    """

    def __init__(
        self,
        handler: object,
        runners: Mapping[str, Runner],
        tables: CommandTables,
        placeholder: type,
        defined: Collection[str] | None = None,
        policy: CompatPolicy | None = None,
    ) -> None:
        self._handler = handler
        policy = policy or CompatPolicy()
        self._refused_commands = policy.refused(tables.command_features)
        refused_arguments = {
            name: refused
            for name, features in tables.argument_features.items()
            if (refused := policy.refused(features))
        }
        self._hidden = policy.hidden_members(tables.member_features) or None
        self._commands = {
            name: run
            for name, run in runners.items()
            if holds(tables.command_conditions.get(name), defined)
            and _implements(handler, tables.methods[name], placeholder)
        }
        self._oob = tables.oob_commands.intersection(self._commands)
        self._no_reply = tables.no_reply_commands
        self._disabled = {
            name: disabled(conditions, defined)
            for name, conditions in tables.argument_conditions.items()
        }
        self._limits: _c.Disabled | None = None
        refused_members = {
            owner: refused
            for owner, features in tables.member_features.items()
            if (refused := policy.refused(features))
        }
        refused_values = {
            owner: refused
            for owner, features in tables.value_features.items()
            if (refused := policy.refused(features))
        }
        if (
            defined is not None
            or refused_members
            or refused_values
            or refused_arguments
        ):
            self._limits = _c.Disabled(
                members={
                    owner: disabled(conditions, defined)
                    for owner, conditions in tables.member_conditions.items()
                },
                values={
                    owner: disabled(conditions, defined)
                    for owner, conditions in tables.value_conditions.items()
                },
                refused_members=refused_members,
                refused_values=refused_values,
            )
        # per command: its own arguments the conditions leave out, which strict
        # decoding then no longer requires, and those the input policy refuses (at
        # the argument's place: `codec.refuse_member` with owner "")
        self._command_limits: dict[str, _c.Disabled] = {}
        if self._limits is not None:
            limits = self._limits
            for name in {*self._disabled, *refused_arguments}:
                off = self._disabled.get(name, frozenset())
                arguments = refused_arguments.get(name)
                if not off and arguments is None:
                    continue
                own = limits._replace(arguments=off)
                if arguments is not None:
                    own = own._replace(
                        refused_members={**limits.refused_members, "": arguments}
                    )
                self._command_limits[name] = own

    def command_names(self) -> list[str]:
        """The commands this dispatcher offers."""
        return sorted(self._commands)

    def oob_command_names(self) -> frozenset[str]:
        """The offered commands that may run out of band ('allow-oob')."""
        return self._oob

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        """Run command `name`; returns its wire reply, raises QMPError."""
        run = self._commands.get(name)
        if run is None:
            raise CommandNotFound(f"The command {name} has not been found")
        refusal = self._refused_commands.get(name)
        if refusal is not None:
            word, crashes = refusal
            if crashes:
                crash()
            raise CommandNotFound(f"{word} command {name} disabled by policy")
        token = _c.DISABLED.set(self._command_limits.get(name, self._limits))
        hiding = _c.HIDDEN.set(self._hidden)
        try:
            result = await run(self._handler, arguments)
        except _c.DecodeError as error:
            raise GenericError(error.qmp_message()) from None
        finally:
            _c.HIDDEN.reset(hiding)
            _c.DISABLED.reset(token)
        return NO_REPLY if name in self._no_reply else result


def _implements(handler: object, method: str, placeholder: type) -> bool:
    """Whether `handler` has command method `method` of its own, not the placeholder
    of `placeholder` (the package's CommandHandlerBase)."""
    return getattr(type(handler), method, None) is not getattr(placeholder, method)
