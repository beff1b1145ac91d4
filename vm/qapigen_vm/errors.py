"""The error the engine's commands raise: a QMP error class plus QEMU's exact text.

The QMP layer turns it into ``{"error": {"class": ..., "desc": ...}}`` unchanged, so the
message strings in this package are part of the contract and are tested verbatim.
"""

from __future__ import annotations

GENERIC_ERROR = "GenericError"
COMMAND_NOT_FOUND = "CommandNotFound"
DEVICE_NOT_FOUND = "DeviceNotFound"
DEVICE_NOT_ACTIVE = "DeviceNotActive"

MIGRATION_ACTIVE = "There's a migration process in progress"


class VmCommandError(Exception):
    """A command of the reference VM failed the way QEMU's would."""

    def __init__(self, desc: str, error_class: str = GENERIC_ERROR) -> None:
        super().__init__(desc)
        self.desc = desc
        self.error_class = error_class

    def __repr__(self) -> str:
        return f"VmCommandError({self.desc!r}, error_class={self.error_class!r})"


def invalid_parameter_value(name: str, expected: str) -> VmCommandError:
    """QEMU's QERR_INVALID_PARAMETER_VALUE: "Parameter '%s' expects %s"."""
    return VmCommandError(f"Parameter '{name}' expects {expected}")
