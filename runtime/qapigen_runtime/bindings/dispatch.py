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

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .. import codec as _c
from ..conditions import disabled, holds
from ..qmp.errors import CommandNotFound, GenericError
from ..qmp.server import Dispatcher

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


class SchemaDispatcher(Dispatcher):
    """Serves QMP commands with a handler object: arguments are decoded strictly (an
    unknown or ill-typed argument is refused with QEMU's error text), replies encoded.

    `defined` names the condition symbols the server has; commands and arguments whose
    `if` condition does not hold are not offered (None: the whole schema), nor are the
    commands the handler leaves to `placeholder` (the package's CommandHandlerBase,
    whose methods stand for "not implemented").
    """

    def __init__(
        self,
        handler: object,
        runners: Mapping[str, Runner],
        tables: CommandTables,
        placeholder: type,
        defined: Collection[str] | None = None,
    ) -> None:
        self._handler = handler
        self._commands = {
            name: run
            for name, run in runners.items()
            if holds(tables.command_conditions.get(name), defined)
            and _implements(handler, tables.methods[name], placeholder)
        }
        self._oob = tables.oob_commands.intersection(self._commands)
        self._disabled = {
            name: disabled(conditions, defined)
            for name, conditions in tables.argument_conditions.items()
        }
        self._limits: _c.Disabled | None = None
        if defined is not None:
            self._limits = _c.Disabled(
                members={
                    owner: disabled(conditions, defined)
                    for owner, conditions in tables.member_conditions.items()
                },
                values={
                    owner: disabled(conditions, defined)
                    for owner, conditions in tables.value_conditions.items()
                },
            )

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
        for argument in self._disabled.get(name, ()):
            if argument in arguments:
                raise GenericError(f"Parameter '{argument}' is unexpected")
        token = _c.DISABLED.set(self._limits)
        try:
            return await run(self._handler, arguments)
        except _c.DecodeError as error:
            raise GenericError(error.qmp_message()) from None
        finally:
            _c.DISABLED.reset(token)


def _implements(handler: object, method: str, placeholder: type) -> bool:
    """Whether `handler` has command method `method` of its own, not the placeholder
    of `placeholder` (the package's CommandHandlerBase)."""
    return getattr(type(handler), method, None) is not getattr(placeholder, method)
