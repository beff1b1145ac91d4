"""qapigen-vm's QMP commands: the generated `CommandHandler`, served by a `Machine`.

The generated dispatcher has already decoded and checked the arguments with the VM
schema's types, which are QEMU 7.2's (unknown or ill-typed ones are refused with QEMU
7.2's texts); each method here runs the command on the machine and returns the typed
reply. Migration commands go to the migration engine, which raises `VmCommandError`
with QEMU 7.2's class and text; the general commands (query-status, stop, cont, getfd,
...) behave as QEMU 7.2 does on a machine without SPICE or Xen (COLO, capability
x-colo, is the migration engine's). The four commands
QEMU 7.0 removed (migrate_set_downtime, migrate_set_speed, migrate-set-cache-size,
query-migrate-cache-size) keep QEMU 5.2's behaviour, as the VM's schema offers them.

Replies are built by decoding the engine's wire-shaped answers with the generated
decoders, so a member of the wrong type fails loudly here instead of reaching a client.
They are decoded in lenient mode: members the VM sends that its schema (of the QEMU 5.x
era there) predates, such as the enum `members` of query-qmp-schema, are kept and sent,
as QEMU 7.2 sends them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_runtime.qmp.errors import CommandNotFound, GenericError, command_error
from qapigen_runtime.qmp.passed_fds import take_passed_fd
from qapigen_runtime.qmp.protocol import ALREADY_NEGOTIATED
from qapigen_vm_qmp import introspection
from qapigen_vm_qmp.types import (
    COLOStatus,
    CommandInfo,
    MigrateSetParameters,
    MigrationCapabilityStatus,
    MigrationInfo,
    MigrationParameters,
    MigrationStatus,
    QMPCapability,
    ReplicationStatus,
    SchemaInfo,
    StatusInfo,
    VersionInfo,
    VersionTriple,
    decode_schema_info,
)

from .errors import VmCommandError
from .machine import Machine
from .states import RunState

QEMU_VERSION = (7, 2, 0)
PACKAGE = "qapigen-vm"

# Replies keep members newer than the schema (see the module docstring).
_STRICT_REPLIES = False

# What a device-state file holds (QEMU's savevm format: magic "QEVM", version 3,
# then QEMU_VM_EOF, a 0 byte): the reference VM has no device state in between.
_DEVICE_STATE_FILE = b"QEVM\x00\x00\x00\x03\x00"


@contextmanager
def _qmp_errors() -> Iterator[None]:
    """Report the engine's errors with their QMP class and QEMU's text."""
    try:
        yield
    except VmCommandError as exc:
        raise command_error(exc.error_class, exc.desc) from None


class VmCommandHandler:
    """Implements the generated `CommandHandler` for one `Machine`.

    ``command_names`` lists what the dispatcher serves (for query-commands);
    ``request_quit`` ends the process after the reply to ``quit`` has been sent;
    ``policy`` is the `-compat` policy (query-qmp-schema follows it).
    """

    def __init__(
        self,
        machine: Machine,
        *,
        command_names: Callable[[], Sequence[str]],
        request_quit: Callable[[], None],
        policy: CompatPolicy | None = None,
    ) -> None:
        self.machine = machine
        self._policy = policy
        self.engine = machine.engine
        self._command_names = command_names
        self._request_quit = request_quit
        self._schema: list[SchemaInfo] | None = None

    # -- control ------------------------------------------------------------------

    async def qmp_capabilities(
        self, *, enable: list[QMPCapability] | None = None
    ) -> None:
        # The server negotiates itself; a negotiated client calling it again is
        # refused the way QEMU refuses it.
        raise CommandNotFound(ALREADY_NEGOTIATED)

    async def query_version(self) -> VersionInfo:
        major, minor, micro = QEMU_VERSION
        return VersionInfo(
            qemu=VersionTriple(major=major, minor=minor, micro=micro), package=PACKAGE
        )

    async def query_commands(self) -> list[CommandInfo]:
        return [CommandInfo(name=name) for name in self._command_names()]

    async def quit(self) -> None:
        self._request_quit()

    async def query_qmp_schema(self) -> list[SchemaInfo]:
        if self._schema is None:
            self._schema = [
                decode_schema_info(entry, f"[{index}]", _STRICT_REPLIES)
                for index, entry in enumerate(
                    introspection.schema_info(policy=self._policy)
                )
            ]
        return self._schema

    # -- run state ----------------------------------------------------------------

    async def query_status(self) -> StatusInfo:
        return StatusInfo.from_wire(self.engine.query_status(), "", _STRICT_REPLIES)

    async def stop(self) -> None:
        with _qmp_errors():
            self.engine.stop()

    async def cont(self) -> None:
        with _qmp_errors():
            self.engine.cont()

    # -- file descriptors ---------------------------------------------------------

    async def getfd(self, *, fdname: str) -> None:
        fd = take_passed_fd()
        if fd is None:
            raise GenericError("No file descriptor supplied via SCM_RIGHTS")
        if fdname[:1].isdigit():
            os.close(fd)
            raise GenericError(
                "Parameter 'fdname' expects a name not starting with a digit"
            )
        self.engine.getfd(fdname, fd)

    async def closefd(self, *, fdname: str) -> None:
        with _qmp_errors():
            self.engine.closefd(fdname)

    # -- migration: state and control ---------------------------------------------

    async def query_migrate(self) -> MigrationInfo:
        return self.engine.query_migrate()

    async def migrate(
        self,
        *,
        uri: str,
        blk: bool | None = None,
        inc: bool | None = None,
        detach: bool | None = None,
        resume: bool | None = None,
    ) -> None:
        with _qmp_errors():
            self.engine.migrate(
                uri,
                blk=bool(blk),
                inc=bool(inc),
                detach=bool(detach),
                resume=bool(resume),
            )

    async def migrate_incoming(self, *, uri: str) -> None:
        with _qmp_errors():
            self.engine.migrate_incoming(uri)

    async def migrate_cancel(self) -> None:
        with _qmp_errors():
            self.engine.migrate_cancel()

    async def migrate_continue(self, *, state: MigrationStatus) -> None:
        with _qmp_errors():
            self.engine.migrate_continue(state.value)

    async def migrate_start_postcopy(self) -> None:
        with _qmp_errors():
            self.engine.migrate_start_postcopy()

    async def migrate_pause(self) -> None:
        with _qmp_errors():
            self.engine.migrate_pause()

    async def migrate_recover(self, *, uri: str) -> None:
        with _qmp_errors():
            self.engine.migrate_recover(uri)

    async def client_migrate_info(
        self,
        *,
        protocol: str,
        hostname: str,
        port: int | None = None,
        tls_port: int | None = None,
        cert_subject: str | None = None,
    ) -> None:
        with _qmp_errors():
            self.engine.client_migrate_info(protocol, hostname)

    # -- migration: capabilities and parameters -----------------------------------

    async def migrate_set_capabilities(
        self, *, capabilities: list[MigrationCapabilityStatus]
    ) -> None:
        with _qmp_errors():
            self.engine.migrate_set_capabilities(
                (item.capability.value, item.state) for item in capabilities
            )

    async def query_migrate_capabilities(self) -> list[MigrationCapabilityStatus]:
        return [
            MigrationCapabilityStatus.from_wire(item, f"[{index}]", _STRICT_REPLIES)
            for index, item in enumerate(self.engine.query_migrate_capabilities())
        ]

    async def migrate_set_parameters(self, arguments: MigrateSetParameters, /) -> None:
        with _qmp_errors():
            self.engine.migrate_set_parameters(arguments)

    async def query_migrate_parameters(self) -> MigrationParameters:
        return self.engine.query_migrate_parameters()

    # -- the commands QEMU 7.2 dropped, with QEMU 5.2's behaviour -------------------

    async def migrate_set_downtime(self, *, value: float) -> None:
        with _qmp_errors():
            self.engine.migrate_set_downtime(value)

    async def migrate_set_speed(self, *, value: int) -> None:
        with _qmp_errors():
            self.engine.migrate_set_speed(value)

    async def migrate_set_cache_size(self, *, value: int) -> None:
        with _qmp_errors():
            self.engine.migrate_set_cache_size(value)

    async def query_migrate_cache_size(self) -> int:
        return self.engine.query_migrate_cache_size()

    # -- COLO (capability x-colo) and Xen: Xen's commands as on a machine without it --

    async def x_colo_lost_heartbeat(self) -> None:
        with _qmp_errors():
            self.engine.x_colo_lost_heartbeat()

    async def query_colo_status(self) -> COLOStatus:
        mode, last_mode, reason = self.engine.query_colo_status()
        return COLOStatus(mode=mode, last_mode=last_mode, reason=reason)

    async def xen_colo_do_checkpoint(self) -> None:
        """No replication and no COLO filters: nothing to checkpoint."""

    async def query_xen_replication_status(self) -> ReplicationStatus:
        return ReplicationStatus(error=False)

    async def xen_set_replication(
        self, *, enable: bool, primary: bool, failover: bool | None = None
    ) -> None:
        # No replication block driver is attached, so starting or stopping it
        # has nothing to act on; only the argument rule is checked, as QEMU does.
        if enable and failover is not None:
            raise GenericError("Parameter 'failover' is only for stopping replication")

    async def xen_save_devices_state(
        self, *, filename: str, live: bool | None = None
    ) -> None:
        """Stop the guest while its (empty) device state is written, as QEMU does."""
        runctl = self.engine.runctl
        was_running = runctl.vm_stop(RunState.PAUSED)
        try:
            try:
                fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o660)
            except OSError as exc:
                raise GenericError(
                    f"Unable to open {filename}: {exc.strerror}"
                ) from None
            try:
                os.write(fd, _DEVICE_STATE_FILE)
            finally:
                os.close(fd)
        finally:
            if was_running:
                runctl.vm_start()
