"""The reference VM: guest RAM, a dirtying workload and a live-migration engine.

Import :class:`MigrationEngine` for the command surface; the other modules are its
parts (RAM, dirty tracking, stream format, transports, parameters, statistics).
"""

from .engine import MigrationEngine
from .errors import VmCommandError
from .params import MigrationParameters, MigrationSettings
from .ram import GuestRam, RamError
from .runstate import EventSink
from .states import MigrationStatus, RunState
from .stats import MigrationInfo, MigrationStats
from .workload import GuestWorkload

__all__ = [
    "EventSink",
    "GuestRam",
    "GuestWorkload",
    "MigrationEngine",
    "MigrationInfo",
    "MigrationParameters",
    "MigrationSettings",
    "MigrationStats",
    "MigrationStatus",
    "RamError",
    "RunState",
    "VmCommandError",
]
