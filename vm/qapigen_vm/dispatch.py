"""The VM's QMP dispatcher: the one generated from the VM's own schema, for the QEMU
build the VM stands for.

The schema states QEMU 7.2's member types (migrate-set-parameters' uint8, uint32,
uint64 and size members among them), so the generated dispatcher reads every request
as QEMU 7.2 does and refuses a bad one with QEMU 7.2's text before a handler sees it.
What the VM adds is its build's `if` symbols: QEMU built for Linux with replication,
and with zstd only where the zstandard package is there (without it, MultiFDCompression
has no 'zstd', as in a QEMU built without zstd).
"""

from __future__ import annotations

from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_vm_qmp.commands import CommandDispatcher, CommandHandler

from .codecs import zstd_available


def build_symbols() -> frozenset[str]:
    """The `if` condition symbols the VM's build defines."""
    symbols = {"CONFIG_LINUX", "CONFIG_REPLICATION"}
    if zstd_available():
        symbols.add("CONFIG_ZSTD")
    return frozenset(symbols)


def vm_dispatcher(
    handler: CommandHandler, policy: CompatPolicy | None = None
) -> CommandDispatcher:
    """The generated dispatcher over `handler`, limited to the VM's build, with the
    `-compat` policy the VM was started with."""
    return CommandDispatcher(handler, defined=build_symbols(), policy=policy)
