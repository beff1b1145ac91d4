"""The VM's QMP dispatcher: the generated one, except where QEMU 7.2 reads arguments
differently from the bundled schema.

The bundled (5.0-era) schema types most of migrate-set-parameters' members as 'int',
so its generated decoder would accept compress-level 265 and word a wrong JSON type as
an 'int' fault. QEMU 7.2 types those members uint8, uint32, uint64 or size, and its
errors follow from that ("Parameter 'compress-level' expects uint8_t", "... expects
uint64"). That command's raw arguments therefore go to the handler, which reads them
with 7.2's member types (see :func:`.params.read_set_parameters`); every other command
goes through the generated dispatcher unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from qapigen_vm_qmp.commands import CommandDispatcher

from .handlers import VmCommandHandler


class VmDispatcher:
    """Implements the QMP server's `Dispatcher` over the generated dispatcher."""

    def __init__(self, generated: CommandDispatcher, handler: VmCommandHandler) -> None:
        self._generated = generated
        self._handler = handler

    def command_names(self) -> Sequence[str]:
        return self._generated.command_names()

    def oob_command_names(self) -> Collection[str]:
        return self._generated.oob_command_names()

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        if name == "migrate-set-parameters":
            await self._handler.migrate_set_parameters_as_qemu_7_2(arguments)
            return {}
        return await self._generated.dispatch(name, arguments)
