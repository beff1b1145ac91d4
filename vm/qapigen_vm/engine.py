"""The reference VM's migration command surface, one method per QMP command.

``MigrationEngine`` owns the guest RAM, the dirty log, the optional guest workload, the
run state and the migration settings; it starts an :class:`OutgoingMigration` per
``migrate`` and an :class:`IncomingMigration` per incoming URI. Methods return plain
values or the schema-shaped dataclasses of :mod:`.stats` (``to_wire()`` gives the JSON
members), and raise :class:`VmCommandError` with QEMU 7.2's class and text.

Events go to ``sink(name, data)`` from engine threads (see :data:`EventSink`).

QMP command -> method (arguments keep the schema's names, dashes as underscores):

    migrate                     migrate(uri, blk=, inc=, detach=, resume=)
    migrate_cancel              migrate_cancel()
    query-colo-status           query_colo_status() -> (mode, last-mode, reason)
    x-colo-lost-heartbeat       x_colo_lost_heartbeat()
    migrate-continue            migrate_continue(state)
    migrate-incoming            migrate_incoming(uri)
    query-migrate               query_migrate() -> MigrationInfo (.to_wire())
    migrate-set-capabilities    migrate_set_capabilities([(name, state), ...])
    query-migrate-capabilities  query_migrate_capabilities() -> [{capability, state}]
    migrate-set-parameters      migrate_set_parameters(MigrateSetParameters or
                                                       {wire-name: value, ...})
    query-migrate-parameters    query_migrate_parameters() -> MigrationParameters
    migrate_set_downtime        migrate_set_downtime(value)
    migrate_set_speed           migrate_set_speed(value)
    migrate-set-cache-size      migrate_set_cache_size(value)
    query-migrate-cache-size    query_migrate_cache_size() -> int
    migrate-start-postcopy      migrate_start_postcopy()
    migrate-pause               migrate_pause()
    migrate-recover             migrate_recover(uri)
    client_migrate_info         client_migrate_info(protocol, hostname)
    query-status / stop / cont  query_status() / stop() / cont()
    getfd / closefd             getfd(name, fd) / closefd(name)
"""

from __future__ import annotations

import sys
import uuid as uuid_mod
from collections.abc import Callable, Iterable, Mapping

from qapigen_vm_qmp.types import COLOExitReason, COLOMode

from .colo_failover import last_failover
from .colo_primary import ColoPrimary
from .colo_secondary import ColoSecondary
from .destination import IncomingMigration, IncomingTimeouts
from .dirty import DirtyLog
from .errors import (
    DEVICE_NOT_ACTIVE,
    MIGRATION_ACTIVE,
    VmCommandError,
    invalid_parameter_value,
)
from .params import (
    MigrateSetParameters,
    MigrationParameters,
    MigrationSettings,
    check_block_options,
    check_supported,
)
from .ram import GuestRam
from .runstate import EventSink, RunControl, discard_event
from .source import OutgoingMigration
from .states import RUNNING_STATES, MigrationStatus, RunState
from .stats import MigrationInfo, SocketAddress_Inet
from .tls import (
    PendingTlsError,
    TlsClient,
    TlsError,
    TlsServer,
    UserObject,
    resolve_authz,
    resolve_creds,
)
from .transport import (
    Connector,
    FdTable,
    Listener,
    MigrationUri,
    SocketWrapper,
    TransportError,
    UriError,
    parse_uri,
)
from .workload import GuestWorkload, Pattern

S = MigrationStatus


class MigrationEngine:
    """One reference VM: its RAM, run state and migrations in both directions.

    ``incoming`` is the -incoming argument ("defer" waits for migrate_incoming);
    ``start_paused`` is -S. ``on_incoming_failure`` is called (from the loading
    thread) when an incoming stream fails; the VM process exits with status 1 there.
    """

    def __init__(
        self,
        ram: GuestRam,
        *,
        vm_uuid: uuid_mod.UUID | None = None,
        incoming: str | None = None,
        start_paused: bool = False,
        sink: EventSink = discard_event,
        on_incoming_failure: Callable[[str], None] | None = None,
        objects: Mapping[str, UserObject] | None = None,
        on_tls_rejected: Callable[[str], None] | None = None,
    ) -> None:
        self.ram = ram
        self.vm_uuid = vm_uuid
        self.sink = sink
        self.settings = MigrationSettings()
        self.log = DirtyLog(ram.page_count)
        self.fds = FdTable()
        # -object tls-creds-x509 / authz-simple, by id (tls-creds, tls-authz name them)
        self.objects: dict[str, UserObject] = dict(objects or {})
        # Incoming connections refused for TLS reasons; QEMU 7.2 prints them and keeps
        # listening. Default: to stderr, as the VM process does.
        self.tls_rejections: list[str] = []
        self._on_tls_rejected = on_tls_rejected or _print_tls_rejection
        if incoming is not None:
            initial = RunState.INMIGRATE
        elif start_paused:
            initial = RunState.PRELAUNCH
        else:
            initial = RunState.RUNNING
        self.runctl = RunControl(sink, initial, autostart=not start_paused)
        self._incoming_uri = incoming
        self._on_incoming_failure = on_incoming_failure or (lambda text: None)
        self.source: OutgoingMigration | None = None
        self.incoming: IncomingMigration | None = None
        # How long an incoming migration waits on a source that went silent.
        self.incoming_timeouts = IncomingTimeouts()

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start listening for -incoming URI (not for "defer")."""
        uri = self._incoming_uri
        if uri is not None and uri != "defer":
            self._start_incoming(uri)

    def start_workload(
        self,
        *,
        rate: int,
        first_page: int = 0,
        pages: int | None = None,
        pattern: Pattern = "random",
        seed: int = 0,
        bytes_per_page: int | None = None,
    ) -> GuestWorkload:
        """Attach a dirtying guest; it runs whenever the VM runs."""
        workload = GuestWorkload(
            self.ram,
            self.log,
            rate=rate,
            first_page=first_page,
            pages=pages,
            pattern=pattern,
            seed=seed,
            bytes_per_page=bytes_per_page,
        )
        self.runctl.workload = workload
        workload.start()
        if self.runctl.running:
            workload.resume()
        return workload

    def close(self) -> None:
        """Shut the VM down: cancel and join migrations, stop the workload."""
        if self.source is not None:
            self.source.cancel()
            # a cancelled paused postcopy waits in cancelling until shutdown: end it
            self.source.teardown()
            self.source.join(10)
        if self.incoming is not None:
            self.incoming.close()
        if self.runctl.workload is not None:
            self.runctl.workload.close()
        self.fds.close_all()

    # -- run state ----------------------------------------------------------------------

    def query_status(self) -> dict[str, object]:
        return self.runctl.query_status()

    def stop(self) -> None:
        self.runctl.stop()

    def cont(self) -> None:
        self.runctl.cont()

    def getfd(self, name: str, fd: int) -> None:
        """getfd: the QMP layer receives ``fd`` over SCM_RIGHTS and hands it here."""
        self.fds.add(name, fd)

    def closefd(self, name: str) -> None:
        try:
            self.fds.close(name)
        except TransportError as exc:
            raise VmCommandError(str(exc)) from None

    # -- migration state ----------------------------------------------------------------

    def _source_status(self) -> MigrationStatus:
        return S.NONE if self.source is None else self.source.state.value

    def migration_is_running(self) -> bool:
        """QEMU's migration_is_running(): about the outgoing migration only, so a
        destination may still change capabilities while its incoming one runs."""
        return self._source_status() in RUNNING_STATES

    def query_migrate(self) -> MigrationInfo:
        """The source's view when it has one, else the destination's (as QEMU)."""
        if self.source is not None and self.source.state.value is not S.NONE:
            return self.source.info()
        if self.incoming is not None:
            return self.incoming.info()
        return MigrationInfo()

    def listening_port(self) -> str | None:
        """The TCP port an incoming migration listens on, as query-migrate's
        socket-address shows it (None: not listening on TCP)."""
        for address in self.query_migrate().socket_address or ():
            if isinstance(address, SocketAddress_Inet):
                return address.port
        return None

    # -- outgoing -----------------------------------------------------------------------

    def migrate(
        self,
        uri: str,
        *,
        blk: bool = False,
        inc: bool = False,
        detach: bool = False,
        resume: bool = False,
    ) -> None:
        """Start an outgoing migration; connection errors arrive later as failed."""
        del detach  # HMP leftover, ignored by QEMU too
        if resume:
            self._resume_postcopy(uri)
            return
        if self.migration_is_running():
            raise VmCommandError(MIGRATION_ACTIVE)
        if self.runctl.state is RunState.INMIGRATE:
            raise VmCommandError("Guest is waiting for an incoming migration")
        if self.runctl.state is RunState.POSTMIGRATE:
            raise VmCommandError(
                "Can't migrate the vm that was paused due to previous migration"
            )
        if blk or inc:
            check_block_options(self.settings)
        check_supported(self.settings.capabilities)
        source = self.source
        if source is not None and source.restart_over_colo():
            # QEMU 7.2 checks the URI only after this (any URI gets this error).
            raise VmCommandError("duplicate yank instance")
        try:
            parsed = parse_uri(uri)
        except UriError:
            failed = self._new_source(None)
            failed.fail_before_start()
            raise invalid_parameter_value("uri", "a valid migration protocol") from None
        connector = Connector(parsed, self.fds)
        connector.tls = self._tls_client(parsed)
        if self.settings.capability("multifd") and not connector.multi_channel:
            raise VmCommandError(
                "multifd needs a tcp: or unix: migration URI (it opens several "
                "connections to the destination)"
            )
        source = self._new_source(connector)
        try:
            connector.prepare()
        except TransportError as exc:
            source.state.cmpxchg(S.NONE, S.SETUP)
            source.error_desc = str(exc)
            source.state.cmpxchg(S.SETUP, S.FAILED)
            raise VmCommandError(str(exc)) from None
        source.start()

    def _new_source(self, connector: Connector | None) -> OutgoingMigration:
        self.source = OutgoingMigration(
            ram=self.ram,
            log=self.log,
            settings=self.settings,
            runctl=self.runctl,
            sink=self.sink,
            vm_uuid=self.vm_uuid,
            connector=connector,
        )
        return self.source

    def migrate_cancel(self) -> None:
        source = self.source
        if source is None:
            return
        if source.colo is not None and source.state.value is S.COLO:
            source.colo.cut()  # QEMU 7.2: the channel goes, the status stays colo
            return
        source.cancel()

    # -- COLO (x-colo: see colo_primary.py and colo_secondary.py) -------------------

    def _colo_side(self) -> ColoPrimary | ColoSecondary | None:
        """The COLO session this VM is in right now, if any."""
        source, incoming = self.source, self.incoming
        if source is not None and source.colo and source.state.value is S.COLO:
            return source.colo
        if incoming is not None and incoming.colo and incoming.state.value is S.COLO:
            return incoming.colo
        return None

    def query_colo_status(self) -> tuple[COLOMode, COLOMode, COLOExitReason]:
        """(mode, last-mode, reason), as QEMU 7.2's query-colo-status."""
        side = self._colo_side()
        mode = COLOMode.NONE if side is None else side.failover.mode
        source, incoming = self.source, self.incoming
        last_mode, reason = last_failover(
            source.colo.failover if source is not None and source.colo else None,
            incoming.colo.failover if incoming is not None and incoming.colo else None,
        )
        return mode, last_mode, reason

    def x_colo_lost_heartbeat(self) -> None:
        """Fail over to this side: it goes on alone (asynchronously, as in QEMU)."""
        side = self._colo_side()
        if side is None:
            raise VmCommandError("The feature 'colo' is not enabled")
        side.request_failover()

    def migrate_continue(self, state: str) -> None:
        current = self._source_status()
        if state != current.value:
            raise VmCommandError(f"Migration not in expected state: {current.value}")
        assert self.source is not None
        self.source.resume_from_pause()

    def migrate_start_postcopy(self) -> None:
        caps = self.settings.capabilities
        if not (caps["postcopy-ram"] or caps["dirty-bitmaps"]):
            raise VmCommandError(
                "Enable postcopy with migrate_set_capability before the start of "
                "migration"
            )
        if self._source_status() is S.NONE:
            raise VmCommandError(
                "Postcopy must be started after migration has been started"
            )
        assert self.source is not None
        self.source.request_postcopy()

    def migrate_pause(self) -> None:
        """Cut a postcopy-active migration (either side): it goes postcopy-paused."""
        if self._source_status() is S.POSTCOPY_ACTIVE:
            assert self.source is not None
            self.source.pause_postcopy()
            return
        incoming = self.incoming
        if incoming is not None and incoming.state.value is S.POSTCOPY_ACTIVE:
            incoming.pause()
            return
        raise VmCommandError(
            "migrate-pause is currently only supported during postcopy-active state"
        )

    def migrate_recover(self, uri: str) -> None:
        """Destination: listen on ``uri`` for the source's postcopy recovery."""
        incoming = self.incoming
        if incoming is None or incoming.state.value is not S.POSTCOPY_PAUSED:
            raise VmCommandError(
                "Migrate recover can only be run when postcopy is paused."
            )
        try:
            listener = Listener(parse_uri(uri), self.fds)
        except UriError:
            raise VmCommandError(f"unknown migration protocol: {uri}") from None
        except TransportError as exc:
            raise VmCommandError(str(exc)) from None
        self._secure_listener(listener)
        incoming.recover(listener)

    def _resume_postcopy(self, uri: str) -> None:
        """migrate with resume=true: reconnect a paused postcopy migration."""
        source = self.source
        if source is None or source.state.value is not S.POSTCOPY_PAUSED:
            raise VmCommandError("Cannot resume if there is no paused migration")
        if self.settings.capability("release-ram"):
            raise VmCommandError(
                "Postcopy recovery cannot work when release-ram capability is set"
            )
        try:
            connector = Connector(parse_uri(uri), self.fds)
        except UriError:
            raise invalid_parameter_value("uri", "a valid migration protocol") from None
        connector.tls = self._tls_client(connector.uri)
        try:
            connector.prepare()
        except TransportError as exc:
            raise VmCommandError(str(exc)) from None
        source.resume_postcopy(connector)

    def client_migrate_info(self, protocol: str, hostname: str) -> None:
        """The reference VM has no SPICE display, as a QEMU without -spice."""
        del hostname
        if protocol != "spice":
            raise invalid_parameter_value("protocol", "'spice'")
        raise VmCommandError("SPICE is not in use", DEVICE_NOT_ACTIVE)

    # -- incoming -----------------------------------------------------------------------

    def migrate_incoming(self, uri: str) -> None:
        if self.incoming is not None:
            raise VmCommandError("The incoming migration has already been started")
        if self.runctl.state is not RunState.INMIGRATE:
            raise VmCommandError("'-incoming' was not specified on the command line")
        # QEMU 7.2 has no special case for "defer" here: it is an unknown protocol.
        self._start_incoming(uri)

    def _start_incoming(self, uri: str) -> None:
        try:
            listener = Listener(parse_uri(uri), self.fds)
        except (UriError, TransportError) as exc:
            # QEMU announces setup before it looks at the URI, so a start that
            # fails still sends it (and the destination may try again).
            self.sink("MIGRATION", {"status": S.SETUP.value})
            if isinstance(exc, UriError):
                raise VmCommandError(f"unknown migration protocol: {uri}") from None
            raise VmCommandError(str(exc)) from None
        self.incoming = IncomingMigration(
            ram=self.ram,
            settings=self.settings,
            runctl=self.runctl,
            sink=self.sink,
            vm_uuid=self.vm_uuid,
            on_failure=self._on_incoming_failure,
            timeouts=self.incoming_timeouts,
        )
        self._secure_listener(listener)
        self.incoming.start(listener)

    # -- TLS (tls-creds, tls-hostname, tls-authz) ---------------------------------------

    def _tls_client(self, uri: MigrationUri) -> SocketWrapper | None:
        """The source's TLS end for ``uri`` (None without tls-creds). As in QEMU 7.2,
        a bad tls-creds or a missing hostname fails the migration once connected, not
        the migrate command."""
        p = self.settings.parameters
        if not p.tls_creds:
            return None
        try:
            creds = resolve_creds(self.objects, p.tls_creds, "client")
            hostname = p.tls_hostname
            if not hostname and uri.scheme == "tcp":
                hostname = uri.host_port()[0]
            if not hostname:
                raise TlsError("No hostname available for TLS")
            return TlsClient(creds, hostname)
        except TransportError as exc:
            return PendingTlsError(TlsError(str(exc)))

    def _tls_server(self) -> SocketWrapper | None:
        """The destination's TLS end, built per connection from the parameters then
        in force (QEMU reads them when the source connects)."""
        p = self.settings.parameters
        if not p.tls_creds:
            return None
        creds = resolve_creds(self.objects, p.tls_creds, "server")
        authz = resolve_authz(self.objects, p.tls_authz) if p.tls_authz else None
        return TlsServer(creds, authz)

    def _secure_listener(self, listener: Listener) -> None:
        listener.tls = self._tls_server
        listener.on_rejected = self._tls_rejected

    def _tls_rejected(self, text: str) -> None:
        self.tls_rejections.append(text)
        self._on_tls_rejected(text)

    # -- capabilities and parameters ----------------------------------------------------

    def migrate_set_capabilities(
        self, capabilities: Iterable[tuple[str, bool]]
    ) -> None:
        self.settings.set_capabilities(
            capabilities, is_running=self.migration_is_running()
        )

    def query_migrate_capabilities(self) -> list[dict[str, object]]:
        return self.settings.query_capabilities()

    def migrate_set_parameters(
        self, parameters: MigrateSetParameters | Mapping[str, object]
    ) -> None:
        request = self.settings.set_parameters(parameters)
        colo = self._colo_side()
        if isinstance(colo, ColoPrimary) and request.x_checkpoint_delay is not None:
            colo.checkpoint_now()  # as QEMU 7.2: a new delay checkpoints at once

    def query_migrate_parameters(self) -> MigrationParameters:
        return self.settings.query_parameters()

    def migrate_set_downtime(self, value: float) -> None:
        self.settings.set_downtime(value)

    def migrate_set_speed(self, value: int) -> None:
        self.settings.set_speed(value)

    def migrate_set_cache_size(self, value: int) -> None:
        self.settings.set_cache_size(value)

    def query_migrate_cache_size(self) -> int:
        return self.settings.query_cache_size()


def _print_tls_rejection(text: str) -> None:
    print(f"qapigen-vm: {text}", file=sys.stderr, flush=True)
