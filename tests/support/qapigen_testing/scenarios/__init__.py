"""Migration scenarios written once, run against any pair of peers.

A `Scenario` names the extra command-line arguments its two peers need (built from the
pair's `Site`: private directory, free port) and the steps it takes. `observe` runs
it over QMP with the generated typed clients and returns an `Observation`; a pair of
real QEMU 7.2 processes and a pair of qapigen-vm processes must give equal ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from qapigen_testing.peers import PeerArgs, Site

from . import (
    capabilities,
    colo,
    control,
    flows,
    multifd_channels,
    postcopy_cancel,
    postcopy_recovery,
    refusals,
)
from .observation import ErrorSeen, MigrationView, Observation, PassFacts
from .session import Run, ScenarioBody, observe

__all__ = [
    "SCENARIOS",
    "ErrorSeen",
    "MigrationView",
    "Observation",
    "PassFacts",
    "Run",
    "Scenario",
    "observe",
]

SOURCE_UUID = uuid.UUID("6a2e4fd2-3d7c-4b0e-9a51-0c9f8e1d2b34")
OTHER_UUID = uuid.UUID("0b8c1f35-7e2d-4a69-8d40-5e3f2a1c9b67")


@dataclass(frozen=True)
class Scenario:
    name: str
    arguments: Callable[[Site], PeerArgs]
    body: ScenarioBody


def idle(site: Site) -> PeerArgs:
    return PeerArgs()


def incoming_tcp(site: Site) -> PeerArgs:
    return PeerArgs(destination=("-incoming", f"tcp:127.0.0.1:{site.port}"))


def incoming_unix(site: Site) -> PeerArgs:
    return PeerArgs(
        destination=("-incoming", f"unix:{site.directory / 'migration.sock'}")
    )


def incoming_defer(site: Site) -> PeerArgs:
    return PeerArgs(destination=("-incoming", "defer"))


def uuids(source: uuid.UUID, destination: uuid.UUID) -> Callable[[Site], PeerArgs]:
    def arguments(site: Site) -> PeerArgs:
        return PeerArgs(
            source=("-uuid", str(source)),
            destination=(
                "-uuid",
                str(destination),
                "-incoming",
                f"tcp:127.0.0.1:{site.port}",
            ),
        )

    return arguments


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("precopy-tcp", incoming_tcp, flows.precopy_tcp),
    Scenario("precopy-unix", incoming_unix, flows.precopy_unix),
    Scenario("precopy-quiet", incoming_tcp, flows.precopy_quiet),
    Scenario("precopy-xbzrle", incoming_defer, flows.precopy_xbzrle),
    Scenario("precopy-multifd", incoming_defer, flows.precopy_multifd),
    Scenario("multifd-4-defer", incoming_defer, multifd_channels.multifd_4_defer),
    Scenario("capability-settings", idle, capabilities.capability_settings),
    Scenario(
        "precopy-harmless-capabilities",
        incoming_tcp,
        capabilities.precopy_with_capabilities,
    ),
    Scenario(
        "precopy-return-path", incoming_tcp, capabilities.precopy_with_return_path
    ),
    Scenario("incoming-defer", incoming_defer, flows.incoming_defer),
    Scenario("commands-while-active", incoming_tcp, control.commands_while_active),
    Scenario("cancel-active", incoming_tcp, control.cancel_active),
    Scenario(
        "extra-connection-while-loading",
        incoming_tcp,
        flows.extra_connection_while_loading,
    ),
    Scenario("bad-destination", idle, control.bad_destination),
    Scenario("bad-uri", idle, control.bad_uri),
    Scenario("parameter-errors", idle, refusals.parameter_errors),
    Scenario("capability-errors", idle, refusals.capability_errors),
    Scenario("state-errors", incoming_defer, refusals.state_errors),
    Scenario("malformed-requests", idle, refusals.malformed_requests),
    Scenario("pause-before-switchover", incoming_tcp, flows.pause_before_switchover),
    Scenario("postcopy", incoming_tcp, flows.postcopy),
    Scenario("postcopy-recovery", incoming_tcp, postcopy_recovery.postcopy_recovery),
    Scenario("postcopy-blocktime", incoming_tcp, postcopy_recovery.postcopy_blocktime),
    Scenario(
        "postcopy-cancel-active", incoming_tcp, postcopy_cancel.cancel_postcopy_active
    ),
    Scenario(
        "postcopy-cancel-paused", incoming_tcp, postcopy_cancel.cancel_paused_by_source
    ),
    Scenario(
        "postcopy-cancel-after-cut", incoming_tcp, postcopy_cancel.cancel_paused_by_cut
    ),
    Scenario(
        "postcopy-cancel-recovering", incoming_tcp, postcopy_cancel.cancel_recovering
    ),
    Scenario("cancel-at-pre-switchover", incoming_tcp, flows.cancel_at_pre_switchover),
    Scenario(
        "validate-uuid-match",
        uuids(SOURCE_UUID, SOURCE_UUID),
        flows.validate_uuid_match,
    ),
    Scenario(
        "validate-uuid-mismatch",
        uuids(SOURCE_UUID, OTHER_UUID),
        flows.validate_uuid_mismatch,
    ),
    Scenario("colo-primary-failover", incoming_tcp, colo.colo_primary_failover),
    Scenario("colo-secondary-failover", incoming_tcp, colo.colo_secondary_failover),
    Scenario("colo-cancel", incoming_tcp, colo.colo_cancel),
    Scenario("colo-secondary-killed", incoming_tcp, colo.colo_secondary_killed),
    Scenario("colo-migrate-again", incoming_tcp, colo.colo_migrate_again),
    Scenario("colo-over-exec", idle, colo.colo_over_exec),
    Scenario("colo-stopped-failover", incoming_tcp, colo.colo_stopped_failover),
    Scenario("colo-capability-off", incoming_tcp, colo.colo_capability_off),
)
