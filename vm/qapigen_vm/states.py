"""Migration and run states: the VM schema's own enums, from its generated package.

The engine keeps its state in the generated types, so what it reports on the wire is the
schema's spelling by construction.
"""

from __future__ import annotations

from qapigen_vm_qmp.types import MigrationStatus, RunState

__all__ = ["RUNNING_STATES", "MigrationStatus", "RunState"]

# QEMU's migration_is_running(): the states in which another migrate, or a capability
# change, is refused.
RUNNING_STATES = frozenset(
    {
        MigrationStatus.SETUP,
        MigrationStatus.ACTIVE,
        MigrationStatus.POSTCOPY_ACTIVE,
        MigrationStatus.POSTCOPY_PAUSED,
        MigrationStatus.POSTCOPY_RECOVER,
        MigrationStatus.PRE_SWITCHOVER,
        MigrationStatus.DEVICE,
        MigrationStatus.WAIT_UNPLUG,
        MigrationStatus.CANCELLING,
    }
)
