"""qapigen-migrate's command line: QMP addresses, ``--cap`` and ``--param`` values.

Values are checked against the schema's own types (the generated enum and struct
decoders), so a misspelt capability or a parameter of the wrong type is reported with
its option before anything is sent to QEMU.
"""

from __future__ import annotations

import re

from qapigen_migration.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationCapabilityStatus,
)
from qapigen_runtime.codec import DecodeError
from qapigen_runtime.qmp.address import Address, AddressError
from qapigen_runtime.qmp.address import parse_address as runtime_parse_address

_ON = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
# Binary size suffixes, as QEMU accepts them in sizes (``max-bandwidth=100M``).
_SIZE = re.compile(r"^(\d+)([kKmMgGtT]?)[bB]?$")
_SHIFTS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}


class UsageError(Exception):
    """A bad command line: the message names the option and the value."""


def parse_address(text: str, what: str) -> Address:
    """A QMP address in the syntax every tool shares (see
    :mod:`qapigen_runtime.qmp.address`); ``what`` names it in the error."""
    try:
        return runtime_parse_address(text)
    except AddressError as error:
        raise UsageError(f"{what}: {error}") from None


def _split(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise UsageError(f"{option} {text!r}: expected NAME=VALUE")
    return name, value


def parse_capability(text: str) -> MigrationCapabilityStatus:
    """``NAME=on|off`` as a typed capability status."""
    name, value = _split(text, "--cap")
    try:
        capability = MigrationCapability.from_wire(name, "", True)
    except DecodeError:
        known = ", ".join(c.value for c in MigrationCapability)
        raise UsageError(
            f"--cap {text!r}: unknown capability {name!r} (known: {known})"
        ) from None
    state = _ON.get(value.lower())
    if state is None:
        raise UsageError(f"--cap {text!r}: expected on or off, got {value!r}")
    return MigrationCapabilityStatus(capability=capability, state=state)


def _candidates(value: str) -> list[object]:
    """Readings of a command-line value, tried in turn against the member's type."""
    readings: list[object] = []
    size = _SIZE.match(value)
    if size is not None:
        readings.append(int(size.group(1)) << _SHIFTS[size.group(2).lower()])
    if value.lower() in _ON:
        readings.append(_ON[value.lower()])
    readings.append(value)
    return readings


def parse_parameters(texts: list[str]) -> MigrateSetParameters | None:
    """``NAME=VALUE`` items as one typed `MigrateSetParameters` (None when empty)."""
    wire: dict[str, object] = {}
    for text in texts:
        name, value = _split(text, "--param")
        last_error: DecodeError | None = None
        for reading in _candidates(value):
            try:
                MigrateSetParameters.from_wire({name: reading}, "", True)
            except DecodeError as error:
                last_error = error
                if error.kind == "unexpected":
                    known = ", ".join(sorted(_parameter_names()))
                    raise UsageError(
                        f"--param {text!r}: unknown parameter {name!r} (known: {known})"
                    ) from None
                continue
            wire[name] = reading
            break
        else:
            assert last_error is not None
            raise UsageError(f"--param {text!r}: {last_error}")
    if not wire:
        return None
    return MigrateSetParameters.from_wire(wire, "", True)


def _parameter_names() -> list[str]:
    # The wire names a strict decode accepts: the struct's known members.
    members = MigrateSetParameters._MEMBERS
    return [str(name) for name in members]
