"""The reference VM: guest RAM, a dirtying workload and a live-migration engine.

Import :class:`MigrationEngine` for the command surface; the other modules are its
parts (RAM, dirty tracking, stream format, transports, parameters, statistics).

The names below are loaded on first use (PEP 562), so importing this package, or a
part that needs none of them such as ``qapigen_vm.tools`` (qapigen-migrate), does not
import numpy: the VM's heavy dependencies come with the ``[vm]`` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what mypy and IDEs see; at run time, __getattr__ below
    from .engine import MigrationEngine
    from .errors import VmCommandError
    from .params import MigrationParameters, MigrationSettings
    from .ram import GuestRam, RamError
    from .runstate import EventSink
    from .states import MigrationStatus, RunState
    from .stats import MigrationInfo, MigrationStats
    from .workload import GuestWorkload

# Each public name and the module that defines it.
_SOURCES: dict[str, str] = {
    "EventSink": ".runstate",
    "GuestRam": ".ram",
    "GuestWorkload": ".workload",
    "MigrationEngine": ".engine",
    "MigrationInfo": ".stats",
    "MigrationParameters": ".params",
    "MigrationSettings": ".params",
    "MigrationStats": ".stats",
    "MigrationStatus": ".states",
    "RamError": ".ram",
    "RunState": ".states",
    "VmCommandError": ".errors",
}

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


def __getattr__(name: str) -> object:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
