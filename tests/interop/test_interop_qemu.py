"""The generated typed clients against a real QEMU 7.2, async and sync.

The bundled schema is QEMU 5.0-era; QEMU 7.2 answers with capability names, members and
statistics that schema lacks. These tests prove that the generated bindings decode 7.2's
replies and events to typed objects, keep what is new (and send it back unchanged),
make settings take effect, follow a real migration between two QEMU processes, and raise
QEMU's errors as the runtime's exception classes; over this runtime's own clients and
over `qemu.qmp`'s QMPClient.

Every QEMU is started by `qemu_launcher` (tests/conftest.py, on
qapigen_testing.qemu_fixtures) and stopped when the test ends. Expected values are
facts observed on QEMU 7.2 (see ../shared/notes/qemu-migration-behaviour.md), compared
with what the same QEMU sends raw.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from qapigen_migration.commands import AsyncClient, SyncClient
from qapigen_migration.events import (
    MigrationEvent,
    MigrationPassEvent,
    decode_event,
    wait_for,
    wait_for_sync,
)
from qapigen_migration.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationCapabilityStatus,
    MigrationInfo,
    MigrationParameters,
    MigrationStatus,
    MultiFDCompression,
    SocketAddress_Inet,
)
from qapigen_runtime.qmp import (
    CommandNotFound,
    GenericError,
    QMPClient,
    QMPCommandError,
    SyncQMPClient,
)
from qapigen_runtime.qmp.qemu_qmp_adapter import QemuQmpTransport
from qapigen_testing.qemu_fixtures import (
    QemuLauncher,
    QemuProcess,
    QemuStartError,
    qemu_version,
    running_qemu_count,
)

REPO = Path(__file__).resolve().parents[2]

# Every wait below has its own timeout; this bounds a test that hangs anyway.
pytestmark = pytest.mark.timeout(180)

T = TypeVar("T")

# A migration of the 64 MiB idle guest takes well under a second on loopback; the
# generous bound only matters on a loaded machine.
MIGRATION_TIMEOUT = 60.0

# Capabilities QEMU 7.2 reports that the 5.0-era schema does not list.
CAPABILITIES_NEWER_THAN_SCHEMA = {
    "background-snapshot",
    "zero-copy-send",
    "postcopy-preempt",
}

# Facts observed on QEMU 7.2 (its defaults and error texts).
DEFAULT_MAX_BANDWIDTH = 134217728
DEFAULT_DOWNTIME_LIMIT = 300
COMPRESS_LEVEL_ERROR = "Parameter 'compress_level' expects a value between 0 and 9"
BAD_URI_ERROR = "Parameter 'uri' expects a valid migration protocol"
IN_PROGRESS_ERROR = "There's a migration process in progress"
SET_DOWNTIME_NOT_FOUND = "The command migrate_set_downtime has not been found"


@pytest.fixture
def qemu72(qemu_launcher: QemuLauncher) -> QemuLauncher:
    """The launcher, when the installed QEMU is the 7.2 whose replies are expected."""
    version = qemu_version()
    if version != (7, 2):
        pytest.skip(
            f"these expectations are QEMU 7.2's; the installed QEMU is {version}"
        )
    return qemu_launcher


def run(coroutine: Coroutine[object, object, T]) -> T:
    return asyncio.run(coroutine)


# -- connections ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def async_session(
    qemu: QemuProcess,
) -> AsyncIterator[tuple[QMPClient, AsyncClient]]:
    """A negotiated async connection and the typed client over it."""
    transport = QMPClient()
    await transport.connect(qemu.qmp_address)
    try:
        yield transport, AsyncClient(transport)
    finally:
        await transport.close()


@contextlib.contextmanager
def sync_session(qemu: QemuProcess) -> Iterator[tuple[SyncQMPClient, SyncClient]]:
    """A negotiated blocking connection and the typed client over it."""
    transport = SyncQMPClient()
    transport.connect(qemu.qmp_address)
    with transport:
        yield transport, SyncClient(transport)


def capability_settings(**states: bool) -> list[MigrationCapabilityStatus]:
    """Capability changes by wire name (``postcopy_preempt=True``...)."""
    return [
        MigrationCapabilityStatus(
            capability=MigrationCapability(name.replace("_", "-")), state=state
        )
        for name, state in states.items()
    ]


def states_by_name(caps: list[MigrationCapabilityStatus]) -> dict[str, bool]:
    return {cap.capability.value: cap.state for cap in caps}


# -- shared checks ---------------------------------------------------------------


def check_greeting(transport: QMPClient | SyncQMPClient) -> None:
    greeting = transport.greeting
    assert greeting is not None
    qemu_version = greeting.version["qemu"]
    assert isinstance(qemu_version, dict)
    assert (qemu_version["major"], qemu_version["minor"]) == (7, 2)
    assert "oob" in greeting.capabilities
    assert transport.oob_enabled  # negotiated, since QEMU offered it


def check_capabilities(caps: list[MigrationCapabilityStatus], raw: object) -> None:
    """Typed capabilities: complete, newer names kept as enum values, round-trip."""
    assert all(isinstance(cap, MigrationCapabilityStatus) for cap in caps)
    assert all(isinstance(cap.capability, MigrationCapability) for cap in caps)
    names = [cap.capability.value for cap in caps]
    assert set(names) >= CAPABILITIES_NEWER_THAN_SCHEMA
    schema_names = {member.value for member in MigrationCapability}
    assert CAPABILITIES_NEWER_THAN_SCHEMA.isdisjoint(schema_names)
    # Every name the schema knows decodes to the schema's own member.
    for cap in caps:
        if cap.capability.value in schema_names:
            assert cap.capability is MigrationCapability(cap.capability.value)
    # A fresh QEMU has every capability off; the reply round-trips unchanged.
    assert not any(cap.state for cap in caps)
    assert [cap.to_wire() for cap in caps] == raw


def check_parameters(params: MigrationParameters, raw: object) -> None:
    """Typed parameters: 7.2's defaults, 7.2's extra member kept, round-trip."""
    assert isinstance(params, MigrationParameters)
    assert params.max_bandwidth == DEFAULT_MAX_BANDWIDTH
    assert params.downtime_limit == DEFAULT_DOWNTIME_LIMIT
    assert params.multifd_compression is MultiFDCompression.NONE
    assert params.extra == {"cpu-throttle-tailslow": False}
    assert params.to_wire() == raw


NEW_SETTINGS = MigrateSetParameters(
    downtime_limit=123,
    max_bandwidth=1 << 30,
    multifd_channels=4,
    multifd_compression=MultiFDCompression.ZLIB,
    xbzrle_cache_size=1 << 24,
    # A member QEMU 7.2 added after the schema: sent through `extra`.
    extra={"cpu-throttle-tailslow": True},
)


def check_new_settings(params: MigrationParameters) -> None:
    assert params.downtime_limit == 123
    assert params.max_bandwidth == 1 << 30
    assert params.multifd_channels == 4
    assert params.multifd_compression is MultiFDCompression.ZLIB
    assert params.xbzrle_cache_size == 1 << 24
    assert params.extra == {"cpu-throttle-tailslow": True}


def as_settings(params: MigrationParameters) -> MigrateSetParameters:
    """What was read, as arguments of migrate-set-parameters (extra members too)."""
    return MigrateSetParameters.from_wire(params.to_wire())


CAPABILITY_CHANGES = {
    "xbzrle": True,
    "events": True,
    "postcopy_ram": True,
    # Newer than the schema: an open enum value, accepted by QEMU 7.2.
    "postcopy_preempt": True,
}


def check_migration_info(info: MigrationInfo, raw: object) -> None:
    """The source's final MigrationInfo: completed, RAM statistics, 7.2's extras."""
    assert info.status is MigrationStatus.COMPLETED
    assert info.ram is not None
    assert info.ram.total >= 64 << 20  # the guest's RAM (plus ROMs)
    assert info.ram.transferred > 0
    assert info.ram.remaining == 0
    assert info.ram.page_size == 4096
    assert info.ram.dirty_sync_count >= 2
    assert info.downtime is not None and info.setup_time is not None
    # Statistics QEMU 7.2 added after the schema, kept rather than dropped.
    assert {"downtime-bytes", "precopy-bytes", "postcopy-bytes"} <= set(info.ram.extra)
    assert isinstance(info.ram.extra["precopy-bytes"], int)
    # Round-trip of one reply (two queries may differ: QEMU still updates total-time
    # and downtime for a moment after it reports completed).
    again = MigrationInfo.from_wire(raw)
    assert again.status is MigrationStatus.COMPLETED
    assert again.to_wire() == raw


def check_source_events(events: list[object]) -> None:
    """Source events before `completed`, in order: setup, pass 1, active, last pass."""
    assert events[:3] == [
        MigrationEvent(status=MigrationStatus.SETUP),
        MigrationPassEvent(pass_=1),
        MigrationEvent(status=MigrationStatus.ACTIVE),
    ]
    last = events[-1]
    assert isinstance(last, MigrationPassEvent) and last.pass_ >= 2


# -- negotiation ------------------------------------------------------------------


@pytest.mark.qemu
def test_async_client_negotiates_with_qemu(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")

    async def scenario() -> None:
        async with async_session(qemu) as (transport, client):
            check_greeting(transport)
            info = await client.query_migrate()
            assert info == MigrationInfo()  # nothing has migrated yet: {}

    run(scenario())


@pytest.mark.qemu
def test_sync_client_negotiates_with_qemu(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")
    with sync_session(qemu) as (transport, client):
        check_greeting(transport)
        assert client.query_migrate() == MigrationInfo()


# -- queries decode 7.2's newer replies -------------------------------------------------


@pytest.mark.qemu
def test_async_queries_decode_newer_qemu(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")

    async def scenario() -> None:
        async with async_session(qemu) as (transport, client):
            caps = await client.query_migrate_capabilities()
            check_capabilities(
                caps, await transport.execute("query-migrate-capabilities")
            )
            params = await client.query_migrate_parameters()
            check_parameters(
                params, await transport.execute("query-migrate-parameters")
            )

    run(scenario())


@pytest.mark.qemu
def test_sync_queries_decode_newer_qemu(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")
    with sync_session(qemu) as (transport, client):
        caps = client.query_migrate_capabilities()
        check_capabilities(caps, transport.execute("query-migrate-capabilities"))
        params = client.query_migrate_parameters()
        check_parameters(params, transport.execute("query-migrate-parameters"))


# -- settings take effect ---------------------------------------------------------------


@pytest.mark.qemu
def test_async_settings_take_effect(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")

    async def scenario() -> None:
        async with async_session(qemu) as (_, client):
            await client.migrate_set_capabilities(
                capabilities=capability_settings(**CAPABILITY_CHANGES)
            )
            states = states_by_name(await client.query_migrate_capabilities())
            changed = {name.replace("_", "-") for name in CAPABILITY_CHANGES}
            assert {name for name, on in states.items() if on} == changed

            await client.migrate_set_parameters(NEW_SETTINGS)
            params = await client.query_migrate_parameters()
            check_new_settings(params)
            # Everything read back (7.2's extra member included) is accepted as is.
            await client.migrate_set_parameters(as_settings(params))
            assert await client.query_migrate_parameters() == params

    run(scenario())


@pytest.mark.qemu
def test_sync_settings_take_effect(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")
    with sync_session(qemu) as (_, client):
        client.migrate_set_capabilities(
            capabilities=capability_settings(**CAPABILITY_CHANGES)
        )
        states = states_by_name(client.query_migrate_capabilities())
        changed = {name.replace("_", "-") for name in CAPABILITY_CHANGES}
        assert {name for name, on in states.items() if on} == changed

        client.migrate_set_parameters(NEW_SETTINGS)
        params = client.query_migrate_parameters()
        check_new_settings(params)
        client.migrate_set_parameters(as_settings(params))
        assert client.query_migrate_parameters() == params


# -- a real migration, followed through typed events -------------------------------------


@pytest.mark.qemu
def test_async_migration_with_typed_events(qemu72: QemuLauncher) -> None:
    source = qemu72.start("src")
    destination = qemu72.start_destination("dst")

    async def scenario() -> None:
        async with (
            async_session(source) as (src_transport, src),
            async_session(destination) as (dst_transport, dst),
        ):
            # A listening destination reports its address: a typed union branch.
            listening = (await dst.query_migrate()).socket_address
            assert listening is not None and len(listening) == 1
            address = listening[0]
            assert isinstance(address, SocketAddress_Inet)
            assert (address.host, address.port) == (
                "127.0.0.1",
                str(destination.incoming_port),
            )

            events_on = capability_settings(events=True)
            await src.migrate_set_capabilities(capabilities=events_on)
            await dst.migrate_set_capabilities(capabilities=events_on)
            await src.migrate(uri=destination.incoming_uri)

            completed = await wait_for(
                src_transport,
                MigrationEvent,
                lambda event: event.status is MigrationStatus.COMPLETED,
                MIGRATION_TIMEOUT,
            )
            assert completed == MigrationEvent(status=MigrationStatus.COMPLETED)
            # What wait_for skipped stays queued, in order; STOP is not in the schema.
            skipped = [
                decode_event(event.name, event.data)
                for event in src_transport.clear_events()
            ]
            check_source_events([event for event in skipped if event is not None])

            info = await src.query_migrate()
            check_migration_info(info, await src_transport.execute("query-migrate"))

            await wait_for(
                dst_transport,
                MigrationEvent,
                lambda event: event.status is MigrationStatus.COMPLETED,
                MIGRATION_TIMEOUT,
            )
            dst_info = await dst.query_migrate()
            assert dst_info.status is MigrationStatus.COMPLETED
            status = await dst_transport.execute("query-status")
            assert isinstance(status, dict) and status["status"] == "running"

    run(scenario())


@pytest.mark.qemu
def test_sync_migration_with_typed_events(qemu72: QemuLauncher) -> None:
    source = qemu72.start("src")
    destination = qemu72.start_destination("dst")
    with (
        sync_session(source) as (src_transport, src),
        sync_session(destination) as (dst_transport, dst),
    ):
        events_on = capability_settings(events=True)
        src.migrate_set_capabilities(capabilities=events_on)
        dst.migrate_set_capabilities(capabilities=events_on)
        src.migrate(uri=destination.incoming_uri)

        first_pass = wait_for_sync(
            src_transport,
            MigrationPassEvent,
            lambda event: event.pass_ == 1,
            MIGRATION_TIMEOUT,
        )
        assert first_pass == MigrationPassEvent(pass_=1)
        wait_for_sync(
            src_transport,
            MigrationEvent,
            lambda event: event.status is MigrationStatus.COMPLETED,
            MIGRATION_TIMEOUT,
        )
        skipped = [
            decode_event(event.name, event.data)
            for event in src_transport.clear_events()
        ]
        assert [event for event in skipped if event is not None][:2] == [
            MigrationEvent(status=MigrationStatus.SETUP),
            MigrationEvent(status=MigrationStatus.ACTIVE),
        ]
        check_migration_info(
            src.query_migrate(), src_transport.execute("query-migrate")
        )

        wait_for_sync(
            dst_transport,
            MigrationEvent,
            lambda event: event.status is MigrationStatus.COMPLETED,
            MIGRATION_TIMEOUT,
        )
        assert dst.query_migrate().status is MigrationStatus.COMPLETED
        status = src_transport.execute("query-status")
        assert isinstance(status, dict) and status["status"] == "postmigrate"


# -- QEMU's errors as exception classes ----------------------------------------------------


def check_command_error(
    error: QMPCommandError, cls: type[QMPCommandError], desc: str
) -> None:
    assert type(error) is cls
    assert error.desc == desc
    assert error.error_class == cls.ERROR_CLASS


@pytest.mark.qemu
def test_async_errors_are_typed(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")

    async def scenario() -> None:
        async with async_session(qemu) as (_, client):
            with (
                pytest.warns(DeprecationWarning),
                pytest.raises(CommandNotFound) as not_found,
            ):
                await client.migrate_set_downtime(value=0.5)
            check_command_error(
                not_found.value, CommandNotFound, SET_DOWNTIME_NOT_FOUND
            )

            with pytest.raises(GenericError) as bad_level:
                await client.migrate_set_parameters(
                    MigrateSetParameters(compress_level=99)
                )
            check_command_error(bad_level.value, GenericError, COMPRESS_LEVEL_ERROR)
            # The refused value did not take effect.
            assert (await client.query_migrate_parameters()).compress_level == 1

            with pytest.raises(GenericError) as bad_uri:
                await client.migrate(uri="foo:bar")
            check_command_error(bad_uri.value, GenericError, BAD_URI_ERROR)
            assert (await client.query_migrate()).status is MigrationStatus.FAILED

    run(scenario())


@pytest.mark.qemu
def test_sync_errors_are_typed(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")
    with sync_session(qemu) as (_, client):
        with pytest.warns(DeprecationWarning), pytest.raises(CommandNotFound) as nf:
            client.migrate_set_downtime(value=0.5)
        check_command_error(nf.value, CommandNotFound, SET_DOWNTIME_NOT_FOUND)

        with pytest.raises(GenericError) as bad_level:
            client.migrate_set_parameters(MigrateSetParameters(compress_level=99))
        check_command_error(bad_level.value, GenericError, COMPRESS_LEVEL_ERROR)
        assert client.query_migrate_parameters().compress_level == 1

        with pytest.raises(GenericError) as bad_uri:
            client.migrate(uri="foo:bar")
        check_command_error(bad_uri.value, GenericError, BAD_URI_ERROR)
        assert client.query_migrate().status is MigrationStatus.FAILED


PAUSE_BEFORE_SWITCHOVER = {"events": True, "pause_before_switchover": True}


@pytest.mark.qemu
def test_async_second_migrate_while_one_runs(qemu72: QemuLauncher) -> None:
    """pause-before-switchover holds the migration running until migrate-continue."""
    source = qemu72.start("src")
    destination = qemu72.start_destination("dst")

    async def scenario() -> None:
        async with async_session(source) as (transport, client):
            await client.migrate_set_capabilities(
                capabilities=capability_settings(**PAUSE_BEFORE_SWITCHOVER)
            )
            await client.migrate(uri=destination.incoming_uri)
            await wait_for(
                transport,
                MigrationEvent,
                lambda event: event.status is MigrationStatus.PRE_SWITCHOVER,
                MIGRATION_TIMEOUT,
            )
            with pytest.raises(GenericError) as busy:
                await client.migrate(uri=destination.incoming_uri)
            check_command_error(busy.value, GenericError, IN_PROGRESS_ERROR)

            await client.migrate_continue(state=MigrationStatus.PRE_SWITCHOVER)
            await wait_for(
                transport,
                MigrationEvent,
                lambda event: event.status is MigrationStatus.COMPLETED,
                MIGRATION_TIMEOUT,
            )

    run(scenario())


@pytest.mark.qemu
def test_sync_second_migrate_while_one_runs(qemu72: QemuLauncher) -> None:
    source = qemu72.start("src")
    destination = qemu72.start_destination("dst")
    with sync_session(source) as (transport, client):
        client.migrate_set_capabilities(
            capabilities=capability_settings(**PAUSE_BEFORE_SWITCHOVER)
        )
        client.migrate(uri=destination.incoming_uri)
        wait_for_sync(
            transport,
            MigrationEvent,
            lambda event: event.status is MigrationStatus.PRE_SWITCHOVER,
            MIGRATION_TIMEOUT,
        )
        with pytest.raises(GenericError) as busy:
            client.migrate(uri=destination.incoming_uri)
        check_command_error(busy.value, GenericError, IN_PROGRESS_ERROR)

        client.migrate_continue(state=MigrationStatus.PRE_SWITCHOVER)
        wait_for_sync(
            transport,
            MigrationEvent,
            lambda event: event.status is MigrationStatus.COMPLETED,
            MIGRATION_TIMEOUT,
        )


# -- through qemu.qmp's QMPClient ---------------------------------------------------------


@pytest.mark.qemu
def test_typed_client_over_qemu_qmp(qemu72: QemuLauncher) -> None:
    qmp = pytest.importorskip("qemu.qmp")
    qemu = qemu72.start("src")

    async def scenario() -> None:
        legacy = qmp.QMPClient("interop")
        await legacy.connect(qemu.qmp_address)
        try:
            transport = QemuQmpTransport(legacy)
            client = AsyncClient(transport)
            params = await client.query_migrate_parameters()
            check_parameters(params, await legacy.execute("query-migrate-parameters"))

            await client.migrate_set_parameters(NEW_SETTINGS)
            check_new_settings(await client.query_migrate_parameters())

            with pytest.raises(GenericError) as bad_level:
                await client.migrate_set_parameters(
                    MigrateSetParameters(compress_level=99)
                )
            check_command_error(bad_level.value, GenericError, COMPRESS_LEVEL_ERROR)
            with (
                pytest.warns(DeprecationWarning),
                pytest.raises(CommandNotFound) as not_found,
            ):
                await client.migrate_set_downtime(value=0.5)
            check_command_error(
                not_found.value, CommandNotFound, SET_DOWNTIME_NOT_FOUND
            )
        finally:
            await legacy.disconnect()

    run(scenario())


# -- async and sync clients: the same surface, the same answers ----------------------------


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def test_sync_client_has_the_async_client_surface() -> None:
    async_methods = public_methods(AsyncClient)
    sync_methods = public_methods(SyncClient)
    assert async_methods.keys() == sync_methods.keys()
    assert len(async_methods) > 20  # every command of the schema
    for name, signature in async_methods.items():
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(SyncClient, name)), name
        assert signature == sync_methods[name], name


@pytest.mark.qemu
def test_async_and_sync_clients_agree_on_qemu(qemu72: QemuLauncher) -> None:
    qemu = qemu72.start("src")

    async def async_answers() -> list[object]:
        async with async_session(qemu) as (_, client):
            answers: list[object] = [
                await client.query_migrate(),
                await client.query_migrate_capabilities(),
                await client.query_migrate_parameters(),
            ]
            for failing in (
                client.migrate_set_parameters(MigrateSetParameters(compress_level=99)),
                client.migrate_incoming(uri="tcp:127.0.0.1:0"),
                client.migrate_start_postcopy(),
            ):
                try:
                    await failing
                except QMPCommandError as error:
                    answers.append((type(error), error.desc))
            return answers

    expected = run(async_answers())
    with sync_session(qemu) as (_, client):
        answers: list[object] = [
            client.query_migrate(),
            client.query_migrate_capabilities(),
            client.query_migrate_parameters(),
        ]
        failing_calls: list[Callable[[], None]] = [
            lambda: client.migrate_set_parameters(
                MigrateSetParameters(compress_level=99)
            ),
            lambda: client.migrate_incoming(uri="tcp:127.0.0.1:0"),
            client.migrate_start_postcopy,
        ]
        for failing in failing_calls:
            try:
                failing()
            except QMPCommandError as error:
                answers.append((type(error), error.desc))
    assert len(expected) == 6
    assert answers == expected


# -- the fixtures clean up ----------------------------------------------------------------


@pytest.mark.qemu
def test_launcher_stops_everything_it_started() -> None:
    with QemuLauncher() as launcher:
        started = [launcher.start("src"), launcher.start_destination("dst")]
        directory = launcher.directory
        assert running_qemu_count(launcher) == 2
    assert all(qemu.exit_code() is not None for qemu in started)
    assert not directory.exists()


@pytest.mark.qemu
def test_launcher_reports_a_qemu_that_does_not_start(
    qemu_launcher: QemuLauncher,
) -> None:
    with pytest.raises(QemuStartError, match="no-such-option"):
        qemu_launcher.start("broken", extra_args=["-no-such-option"])


# -- the README example ---------------------------------------------------------------------


@pytest.mark.qemu
def test_typed_client_example_runs() -> None:
    example = REPO / "examples" / "typed_client.py"
    result = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.stderr
    assert "downtime-limit is now 250 ms" in result.stdout
    assert re.search(r"MigrationParameters\(.*downtime_limit=250", result.stdout)
    # The example stops the QEMU it started: its pid is gone.
    match = re.search(r"QEMU pid (\d+)", result.stdout)
    assert match is not None, result.stdout
    assert not pid_alive(int(match.group(1)))


KILLED_RUNNER = """
import os, signal
from qapigen_testing.qemu_fixtures import QemuLauncher
launcher = QemuLauncher()
print(launcher.start("orphan").pid, launcher.directory, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no cleanup code runs
"""


@pytest.mark.qemu
def test_qemu_dies_with_a_killed_test_process() -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILLED_RUNNER],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -9, result.stderr
    pid_text, directory = result.stdout.split()
    shutil.rmtree(directory)  # the killed process could not remove it
    pid = int(pid_text)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
