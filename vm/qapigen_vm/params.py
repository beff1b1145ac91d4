"""Migration capabilities and parameters: QEMU 7.2's defaults, checks and messages.

The checks reproduce QEMU 7.2's observable behaviour (``migrate_params_check`` and
``migrate_caps_check``). A set request is first read the way 7.2's input visitor reads
its ``MigrateSetParameters``, member by member in 7.2's order with 7.2's member types
(uint8, uint32, uint64, size), which the bundled 5.0-era schema types as plain 'int':
compress-level 265 is refused ("expects uint8_t"), a string where a number belongs
"expects uint64", and -1 is read as 2**64-1. The values are then merged into the current
ones and every rule runs over the merged set in QEMU's order; the first failure wins.
Names inside the range messages use underscores, as QEMU prints them; the type messages
name the wire member.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Final

from .codecs import zstd_available
from .errors import MIGRATION_ACTIVE, VmCommandError, invalid_parameter_value

PAGE_SIZE: Final = 4096
MAX_DOWNTIME_MS: Final = 2000 * 1000
MAX_DOWNTIME_SECONDS: Final = 2000

# The bundled schema's MigrationCapability, in schema order.
CAPABILITY_NAMES: Final = (
    "xbzrle",
    "rdma-pin-all",
    "auto-converge",
    "zero-blocks",
    "compress",
    "events",
    "postcopy-ram",
    "x-colo",
    "release-ram",
    "block",
    "return-path",
    "pause-before-switchover",
    "multifd",
    "dirty-bitmaps",
    "postcopy-blocktime",
    "late-block-activate",
    "x-ignore-shared",
    "validate-uuid",
)

# Capabilities that change the protocol; the engine does not implement them, so a
# migration with one of them on is refused up front instead of silently doing something
# else. block, zero-blocks and dirty-bitmaps are not here: the VM has no disks and no
# dirty bitmaps, so, as on a disk-less QEMU, they have nothing to send and the migration
# completes as usual. x-colo is implemented (colo_primary.py, colo_secondary.py).
UNSUPPORTED_CAPABILITIES: Final = frozenset({"rdma-pin-all"})

_U8: Final = 0xFF
_U32: Final = 0xFFFFFFFF
_U64: Final = 0xFFFFFFFFFFFFFFFF


@dataclasses.dataclass(slots=True)
class MigrationParameters:
    """Current migration parameters (QEMU 7.2 defaults). Field names are the wire
    names with dashes turned into underscores."""

    announce_initial: int = 50
    announce_max: int = 550
    announce_rounds: int = 5
    announce_step: int = 100
    compress_level: int = 1
    compress_threads: int = 8
    compress_wait_thread: bool = True
    decompress_threads: int = 2
    throttle_trigger_threshold: int = 50
    cpu_throttle_initial: int = 20
    cpu_throttle_increment: int = 10
    cpu_throttle_tailslow: bool = False
    tls_creds: str = ""
    tls_hostname: str = ""
    tls_authz: str = ""
    max_bandwidth: int = 128 * 1024 * 1024
    downtime_limit: int = 300
    x_checkpoint_delay: int = 20000
    block_incremental: bool = False
    multifd_channels: int = 2
    xbzrle_cache_size: int = 64 * 1024 * 1024
    max_postcopy_bandwidth: int = 0
    max_cpu_throttle: int = 99
    multifd_compression: str = "none"
    multifd_zlib_level: int = 1
    multifd_zstd_level: int = 1

    def to_wire(self) -> dict[str, object]:
        """The query-migrate-parameters answer, keyed by the schema's member names."""
        return {
            field.name.replace("_", "-"): getattr(self, field.name)
            for field in dataclasses.fields(self)
        }


# QEMU 7.2's MigrateSetParameters: each member's type, in 7.2's member order (which is
# the order its input visitor reads, and so reports, them in). "StrOrNull" is a string
# or JSON null (null resets the string); "compression" the MultiFDCompression enum.
SET_PARAMETER_TYPES: Final[Mapping[str, str]] = {
    "announce-initial": "size",
    "announce-max": "size",
    "announce-rounds": "size",
    "announce-step": "size",
    "compress-level": "uint8",
    "compress-threads": "uint8",
    "compress-wait-thread": "bool",
    "decompress-threads": "uint8",
    "throttle-trigger-threshold": "uint8",
    "cpu-throttle-initial": "uint8",
    "cpu-throttle-increment": "uint8",
    "cpu-throttle-tailslow": "bool",
    "tls-creds": "StrOrNull",
    "tls-hostname": "StrOrNull",
    "tls-authz": "StrOrNull",
    "max-bandwidth": "size",
    "downtime-limit": "uint64",
    "x-checkpoint-delay": "uint32",
    "block-incremental": "bool",
    "multifd-channels": "uint8",
    "xbzrle-cache-size": "size",
    "max-postcopy-bandwidth": "size",
    "max-cpu-throttle": "uint8",
    "multifd-compression": "compression",
    "multifd-zlib-level": "uint8",
    "multifd-zstd-level": "uint8",
}

# Members QEMU 7.2 reads (so their type is checked) but never stores: its
# migrate-set-parameters leaves the multifd levels out of both the trial copy it checks
# and the values it applies, so 10 is accepted and the level stays what it was.
IGNORED_ON_SET: Final = frozenset({"multifd-zlib-level", "multifd-zstd-level"})

# The C type names 7.2 prints when a number does not fit ("expects uint8_t").
_NARROW_LIMITS: Final[Mapping[str, tuple[int, str]]] = {
    "uint8": (_U8, "uint8_t"),
    "uint32": (_U32, "uint32_t"),
}
# A JSON integer outside int64 and uint64 is a double to QEMU's parser: not a number
# the unsigned visitor takes.
_JSON_INT_LOW: Final = -(2**63)
_COMPRESSION_METHODS: Final = ("none", "zlib", "zstd")


def _read_unsigned(wire: str, qapi_type: str, value: object) -> int:
    """7.2's unsigned visitor: any integer in int64 or uint64 (a negative one read as
    its two's complement), then the narrow types' upper bound."""
    if type(value) is not int or not _JSON_INT_LOW <= value <= _U64:
        raise invalid_parameter_value(wire, "uint64")
    number = value & _U64
    limit = _NARROW_LIMITS.get(qapi_type)
    if limit is not None and number > limit[0]:
        raise invalid_parameter_value(wire, limit[1])
    return number


def read_set_parameter(wire: str, value: object) -> object:
    """One member of a migrate-set-parameters request, read as QEMU 7.2 reads it."""
    kind = SET_PARAMETER_TYPES[wire]
    if kind in ("uint8", "uint32", "uint64", "size"):
        return _read_unsigned(wire, kind, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise VmCommandError(
                f"Invalid parameter type for '{wire}', expected: boolean"
            )
        return value
    if kind == "StrOrNull":
        if value is None:
            return ""
        if not isinstance(value, str):
            raise VmCommandError(
                f"Invalid parameter type for '{wire}', expected: StrOrNull"
            )
        return value
    if not isinstance(value, str):
        raise VmCommandError(f"Invalid parameter type for '{wire}', expected: string")
    if value not in _COMPRESSION_METHODS or (value == "zstd" and not zstd_available()):
        # Without the zstandard package the VM is a QEMU built without zstd, whose
        # MultiFDCompression enum has no 'zstd' member.
        raise VmCommandError(f"Parameter '{wire}' does not accept value '{value}'")
    return value


def read_set_parameters(request: Mapping[str, object]) -> dict[str, object]:
    """A whole request read as 7.2's visitor reads it: known members in 7.2's order
    (the first bad one is reported), then an unknown member is refused. Keys may use
    dashes (wire) or underscores; the result is keyed by field name (underscores)."""
    by_wire = {key.replace("_", "-"): key for key in request}
    values: dict[str, object] = {}
    for wire in SET_PARAMETER_TYPES:
        if wire in by_wire:
            values[wire] = read_set_parameter(wire, request[by_wire[wire]])
    for wire, key in by_wire.items():
        if wire not in SET_PARAMETER_TYPES:
            raise VmCommandError(f"Parameter '{key}' is unexpected")
    return {
        wire.replace("-", "_"): value
        for wire, value in values.items()
        if wire not in IGNORED_ON_SET
    }


def check_parameters(params: MigrationParameters) -> None:
    """QEMU's parameter rules over a merged set, in QEMU's order."""
    p = params
    if p.compress_level > 9:
        raise invalid_parameter_value("compress_level", "a value between 0 and 9")
    if p.compress_threads < 1:
        raise invalid_parameter_value("compress_threads", "a value between 1 and 255")
    if p.decompress_threads < 1:
        raise invalid_parameter_value("decompress_threads", "a value between 1 and 255")
    if not 1 <= p.throttle_trigger_threshold <= 100:
        raise invalid_parameter_value(
            "throttle_trigger_threshold", "an integer in the range of 1 to 100"
        )
    if not 1 <= p.cpu_throttle_initial <= 99:
        raise invalid_parameter_value(
            "cpu_throttle_initial", "an integer in the range of 1 to 99"
        )
    if not 1 <= p.cpu_throttle_increment <= 99:
        raise invalid_parameter_value(
            "cpu_throttle_increment", "an integer in the range of 1 to 99"
        )
    if p.downtime_limit > MAX_DOWNTIME_MS:
        raise invalid_parameter_value(
            "downtime_limit", "an integer in the range of 0 to (2000 * 1000) ms"
        )
    if p.multifd_channels < 1:
        raise invalid_parameter_value("multifd_channels", "a value between 1 and 255")
    # 7.2 keeps these two checks, but a set request never reaches the levels (see
    # IGNORED_ON_SET): they guard the stored values only.
    if p.multifd_zlib_level > 9:
        raise invalid_parameter_value("multifd_zlib_level", "a value between 0 and 9")
    if p.multifd_zstd_level > 20:
        raise invalid_parameter_value("multifd_zstd_level", "a value between 0 and 20")
    size = p.xbzrle_cache_size
    if size < PAGE_SIZE or size & (size - 1):
        raise invalid_parameter_value(
            "xbzrle_cache_size", "a power of two no less than the target page size"
        )
    if not p.cpu_throttle_initial <= p.max_cpu_throttle <= 99:
        raise invalid_parameter_value(
            "max_cpu_throttle", "an integer in the range of cpu_throttle_initial to 99"
        )
    if p.announce_initial > 100000:
        raise invalid_parameter_value(
            "announce_initial", "a value between 0 and 100000"
        )
    if p.announce_max > 100000:
        raise invalid_parameter_value("announce_max", "a value between 0 and 100000")
    if p.announce_rounds > 1000:
        raise invalid_parameter_value("announce_rounds", "a value between 0 and 1000")
    if not 1 <= p.announce_step <= 10000:
        raise invalid_parameter_value("announce_step", "a value between 0 and 10000")


class MigrationSettings:
    """One VM's capabilities and parameters, with QEMU's set/query semantics.

    The engine reads the current objects afresh while migrating, so a parameter set
    mid-migration (max-bandwidth, downtime-limit) takes effect at the next window.
    """

    def __init__(self) -> None:
        self.parameters = MigrationParameters()
        self.capabilities: dict[str, bool] = dict.fromkeys(CAPABILITY_NAMES, False)

    # -- capabilities ---------------------------------------------------------------

    def capability(self, name: str) -> bool:
        return self.capabilities[name]

    def query_capabilities(self) -> list[dict[str, object]]:
        """query-migrate-capabilities: every capability with its state, schema order."""
        return [
            {"capability": name, "state": self.capabilities[name]}
            for name in CAPABILITY_NAMES
        ]

    def set_capabilities(
        self, changes: Iterable[tuple[str, bool]], *, is_running: bool
    ) -> None:
        """migrate-set-capabilities: all or nothing, checked on the merged set."""
        if is_running:
            raise VmCommandError(MIGRATION_ACTIVE)
        merged = dict(self.capabilities)
        for name, state in changes:
            if name not in merged:
                raise VmCommandError(
                    f"Parameter 'capability' does not accept value '{name}'"
                )
            merged[name] = bool(state)
        check_capabilities(merged)
        self.capabilities = merged

    # -- parameters -----------------------------------------------------------------

    def query_parameters(self) -> MigrationParameters:
        return dataclasses.replace(self.parameters)

    def set_parameters(self, request: Mapping[str, object]) -> None:
        """migrate-set-parameters. Keys may use dashes (wire) or underscores.

        Works while migrating, as in QEMU; the engine reads max-bandwidth and
        downtime-limit afresh at every rate-limit window.
        """
        merged = dataclasses.replace(self.parameters)
        for name, value in read_set_parameters(request).items():
            setattr(merged, name, value)
        check_parameters(merged)
        self.parameters = merged

    # -- the 5.2 deprecated commands (plain wrappers around the parameters) -----------

    def set_downtime(self, seconds: float) -> None:
        """migrate_set_downtime: seconds as a float; 0.12345 becomes 123 ms."""
        if math.isnan(seconds) or not 0 <= seconds <= MAX_DOWNTIME_SECONDS:
            raise invalid_parameter_value(
                "downtime_limit", "an integer in the range of 0 to 2000 seconds"
            )
        self.set_parameters({"downtime-limit": int(seconds * 1000)})

    def set_speed(self, bytes_per_second: int) -> None:
        """migrate_set_speed: sets max-bandwidth."""
        self.set_parameters({"max-bandwidth": bytes_per_second})

    def set_cache_size(self, size: int) -> None:
        """migrate-set-cache-size: sets xbzrle-cache-size."""
        self.set_parameters({"xbzrle-cache-size": size})

    def query_cache_size(self) -> int:
        """query-migrate-cache-size: reads xbzrle-cache-size."""
        return self.parameters.xbzrle_cache_size


def check_capabilities(caps: Mapping[str, bool]) -> None:
    """QEMU 7.2's capability conflicts that the bundled schema can express."""
    # 7.2 lets postcopy-ram and compress be set together (only its postcopy-preempt,
    # which the bundled schema lacks, conflicts with compress).
    if caps["postcopy-ram"] and caps["x-ignore-shared"]:
        raise VmCommandError("Postcopy is not compatible with ignore-shared")
    if caps["multifd"] and caps["compress"]:
        raise VmCommandError("Multifd is not compatible with compress")


def check_supported(caps: Mapping[str, bool]) -> None:
    """Refuse a migration that needs a capability this engine does not implement."""
    for name in CAPABILITY_NAMES:
        if caps[name] and name in UNSUPPORTED_CAPABILITIES:
            raise VmCommandError(
                f"Capability '{name}' is not supported by the reference VM yet"
            )


def check_block_options(settings: MigrationSettings) -> None:
    """migrate's blk/inc options (block migration for one migration), refused as QEMU
    7.2 refuses them: in COLO mode, and on top of the block capability or the
    block-incremental parameter. Accepted, they copy nothing: the VM has no disks."""
    if settings.capability("x-colo"):
        raise VmCommandError("No disk migration is required in COLO mode")
    if settings.capability("block") or settings.parameters.block_incremental:
        raise VmCommandError(
            "Command options are incompatible with current migration capabilities"
        )
