"""Migration capabilities and parameters: QEMU 7.2's defaults, checks and messages.

What the schema states comes from the package generated from the VM's own schema
(``qapigen_vm_qmp``, from ``schema/vm-migration.json``): the capability names and their
order (`MigrationCapability`), every parameter's name, type and order
(`MigrateSetParameters`, `MigrationParameters`), and the reading of a request with
QEMU 7.2's texts for faults of type and range: member by member in 7.2's order, so
compress-level 265 is refused with "Parameter 'compress-level' expects uint8_t", a
string where a number belongs with "... expects uint64", and -1 for a size is read as
2**64-1.

What stays here is behaviour the schema does not state: QEMU 7.2's defaults, the
rules it checks over the merged parameters (``migrate_params_check``) and between
capabilities (``migrate_caps_check``), each with 7.2's text (names inside the range
messages use underscores, as QEMU prints them), and what the VM itself cannot do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Final

from qapigen_runtime.codec import DecodeError
from qapigen_vm_qmp.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationParameters,
    MultiFDCompression,
)

from .codecs import zstd_available
from .errors import MIGRATION_ACTIVE, VmCommandError, invalid_parameter_value

__all__ = [
    "CAPABILITY_NAMES",
    "PAGE_SIZE",
    "MigrateSetParameters",
    "MigrationParameters",
    "MigrationSettings",
    "check_block_options",
    "check_built_with",
    "check_capabilities",
    "check_parameters",
    "check_supported",
    "merged_parameters",
    "qemu_7_2_defaults",
    "read_request",
]

PAGE_SIZE: Final = 4096
MAX_DOWNTIME_MS: Final = 2000 * 1000
MAX_DOWNTIME_SECONDS: Final = 2000

CAPABILITY_NAMES: Final = tuple(capability.value for capability in MigrationCapability)
"""Every capability the VM has, in the schema's order (query-migrate-capabilities')."""

# Capabilities that change the protocol; the engine does not implement them, so a
# migration with one of them on is refused up front instead of silently doing something
# else. block, zero-blocks and dirty-bitmaps are not here: the VM has no disks and no
# dirty bitmaps, so, as on a disk-less QEMU, they have nothing to send and the migration
# completes as usual. x-colo is implemented (colo_primary.py, colo_secondary.py).
UNSUPPORTED_CAPABILITIES: Final = frozenset({MigrationCapability.RDMA_PIN_ALL.value})

# Members QEMU 7.2 reads (so their type is checked) but never stores: its
# migrate-set-parameters leaves the multifd levels out of both the trial copy it checks
# and the values it applies, so 10 is accepted and the level stays what it was.
IGNORED_ON_SET: Final = frozenset({"multifd-zlib-level", "multifd-zstd-level"})


def qemu_7_2_defaults() -> MigrationParameters:
    """The parameters of a fresh QEMU 7.2 (what its query-migrate-parameters says)."""
    return MigrationParameters(
        announce_initial=50,
        announce_max=550,
        announce_rounds=5,
        announce_step=100,
        compress_level=1,
        compress_threads=8,
        compress_wait_thread=True,
        decompress_threads=2,
        throttle_trigger_threshold=50,
        cpu_throttle_initial=20,
        cpu_throttle_increment=10,
        cpu_throttle_tailslow=False,
        tls_creds="",
        tls_hostname="",
        tls_authz="",
        max_bandwidth=128 * 1024 * 1024,
        downtime_limit=300,
        x_checkpoint_delay=20000,
        block_incremental=False,
        multifd_channels=2,
        xbzrle_cache_size=64 * 1024 * 1024,
        max_postcopy_bandwidth=0,
        max_cpu_throttle=99,
        multifd_compression=MultiFDCompression.NONE,
        multifd_zlib_level=1,
        multifd_zstd_level=1,
    )


def read_request(request: Mapping[str, object]) -> MigrateSetParameters:
    """A migrate-set-parameters request in its wire form (dashed member names), read
    as the VM's QMP dispatcher reads it: faults get QEMU 7.2's texts."""
    try:
        return MigrateSetParameters.from_wire(dict(request), "", True)
    except DecodeError as error:
        raise VmCommandError(error.qmp_message()) from None


def merged_parameters(
    current: MigrationParameters, request: MigrateSetParameters
) -> MigrationParameters:
    """`current` with the members `request` sets, not yet checked.

    Merged in the wire form, so every member of the request lands on the member of
    the same name; a null StrOrNull (tls-creds, ...) resets the string to "".
    """
    wire = current.to_wire()
    for name, value in request.to_wire().items():
        if name not in IGNORED_ON_SET:
            wire[name] = "" if value is None else value
    return MigrationParameters.from_wire(wire, "", True)


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


def check_built_with(request: MigrateSetParameters) -> None:
    """Without the zstandard package the VM is a QEMU built without zstd, whose
    MultiFDCompression has no 'zstd'. The VM's QMP dispatcher already refuses it while
    reading (it knows the build's conditions); this covers requests made in Python."""
    if request.multifd_compression is MultiFDCompression.ZSTD and not zstd_available():
        raise VmCommandError(
            "Parameter 'multifd-compression' does not accept value 'zstd'"
        )


class MigrationSettings:
    """One VM's capabilities and parameters, with QEMU's set/query semantics.

    The engine reads the current objects afresh while migrating, so a parameter set
    mid-migration (max-bandwidth, downtime-limit) takes effect at the next window.
    """

    def __init__(self) -> None:
        self.parameters = qemu_7_2_defaults()
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

    def set_parameters(
        self, request: MigrateSetParameters | Mapping[str, object]
    ) -> MigrateSetParameters:
        """migrate-set-parameters: typed, or in the wire form (see `read_request`).
        Returns the request as read.

        Works while migrating, as in QEMU; the engine reads max-bandwidth and
        downtime-limit afresh at every rate-limit window.
        """
        if not isinstance(request, MigrateSetParameters):
            request = read_request(request)
        check_built_with(request)
        merged = merged_parameters(self.parameters, request)
        check_parameters(merged)
        self.parameters = merged
        return request

    # -- the 5.2 deprecated commands (plain wrappers around the parameters) -----------

    def set_downtime(self, seconds: float) -> None:
        """migrate_set_downtime: seconds as a float; 0.12345 becomes 123 ms."""
        if math.isnan(seconds) or not 0 <= seconds <= MAX_DOWNTIME_SECONDS:
            raise invalid_parameter_value(
                "downtime_limit", "an integer in the range of 0 to 2000 seconds"
            )
        self.set_parameters(MigrateSetParameters(downtime_limit=int(seconds * 1000)))

    def set_speed(self, bytes_per_second: int) -> None:
        """migrate_set_speed: sets max-bandwidth (a negative int64 read as a size)."""
        self.set_parameters({"max-bandwidth": bytes_per_second})

    def set_cache_size(self, size: int) -> None:
        """migrate-set-cache-size: sets xbzrle-cache-size (read as for set_speed)."""
        self.set_parameters({"xbzrle-cache-size": size})

    def query_cache_size(self) -> int:
        """query-migrate-cache-size: reads xbzrle-cache-size."""
        return self.parameters.xbzrle_cache_size


def check_capabilities(caps: Mapping[str, bool]) -> None:
    """QEMU 7.2's conflicts between the capabilities the VM has."""
    # 7.2 lets postcopy-ram and compress be set together (only its postcopy-preempt,
    # which the VM lacks, conflicts with compress).
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
