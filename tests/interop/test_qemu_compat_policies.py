"""The complete QEMU 7.2 package against a live QEMU 7.2 run with `-compat` policies.

The package is generated from ../shared/qemu/7.2's complete QMP schema into a
temporary folder. Against a QEMU started with ``-compat deprecated-output=hide`` (which
leaves deprecated members out of replies, required ones included) and one started with
``-compat deprecated-input=reject``, the typed client calls every query command that
takes no arguments: every reply decodes and encodes back to what QEMU sent. Under
``reject`` the refusals of deprecated commands, arguments, nested members and enum
values are QEMU's, and the package's own dispatcher, given the same policy, refuses
the same calls with the same error classes and texts.

The facts observed here (QEMU 7.2.x, x86_64, TCG):

- deprecated-input=reject: a deprecated command -> CommandNotFound "Deprecated command
  NAME disabled by policy"; a deprecated argument, or member at any depth ->
  GenericError "Deprecated parameter NAME disabled by policy" (its own name); a
  deprecated enum value -> GenericError "Deprecated value VALUE disabled by policy";
  unstable ones the same with "Unstable".
- deprecated-input=crash: QEMU aborts (SIGABRT).
- query-commands lists deprecated and unstable commands under every policy.
- deprecated-output=hide: deprecated members leave replies (`SchemaInfoEnum.values`);
  query-qmp-schema leaves out deprecated commands and events (drive-backup,
  nbd-server-add, nbd-server-remove, MEM_UNPLUG_ERROR), deprecated members of every
  object type and the `values` of every enum, but keeps deprecated enum values.
- unstable-output=hide: unstable members leave replies (MigrationParameters'
  x-checkpoint-delay); unstable enum values (MigrationCapability x-colo) and
  query-qmp-schema stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import time
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen.schema import Command, Schema
from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_runtime.codec import DecodeError
from qapigen_runtime.qmp import QMPClient, QMPCommandError, SyncQMPClient
from qapigen_testing.generated_packages import imported_package
from qapigen_testing.paths import qemu_release
from qapigen_testing.qemu_fixtures import QemuLauncher, QemuStartError
from qapigen_testing.wire_strategies import GeneratedCodec

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def qemu72(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The complete QEMU 7.2 package, imported, with its schema."""
    path = qemu_release("7.2", "qapi", "qapi-schema.json")
    if path is None:
        pytest.skip("QEMU 7.2's schema is absent (../shared/qemu/7.2)")
    schema = load_schema(str(path))
    root = tmp_path_factory.mktemp("qemu72_compat")
    files = generate_package(schema, "qemu72_compat", "qapi-schema.json")
    with imported_package(files, root, "qemu72_compat") as package:
        types = importlib.import_module(f"{package.__name__}.types")
        yield SimpleNamespace(
            schema=schema,
            types=types,
            commands=importlib.import_module(f"{package.__name__}.commands"),
            codec=GeneratedCodec(schema, types),
        )


@pytest.fixture
def launcher() -> Iterator[QemuLauncher]:
    try:
        with QemuLauncher() as started:
            yield started
    except QemuStartError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(error))


def _argument_free_queries(schema: Schema) -> list[Command]:
    """The query commands a client may call without arguments."""
    return [
        command
        for command in schema.commands()
        if command.name.startswith(("query-", "x-query-"))
        and (
            command.arg_type is None
            or (
                not command.boxed
                and all(member.optional for member in command.arg_type.members)
            )
        )
    ]


class _Recording:
    """A transport that keeps the last raw reply of the connection it wraps."""

    def __init__(self, client: QMPClient) -> None:
        self.client = client
        self.last: object = None

    async def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        **options: Any,
    ) -> object:
        self.last = await self.client.execute(name, arguments, **options)
        return self.last


async def _sweep(qemu72: SimpleNamespace, address: str) -> dict[str, Any]:
    """Call every argument-free query through the typed client: {"decoded": typed
    replies by command, "refused": QMP errors by command, "faults": decode faults and
    replies that do not encode back to what QEMU sent}."""
    decoded: dict[str, object] = {}
    refused: dict[str, str] = {}
    faults: dict[str, str] = {}
    async with QMPClient() as connection:
        await connection.connect(address)
        recording = _Recording(connection)
        client = qemu72.commands.AsyncClient(recording)
        for command in _argument_free_queries(qemu72.schema):
            method = getattr(client, qemu72.commands.METHODS[command.name])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    typed = await method()
            except QMPCommandError as error:
                refused[command.name] = f"{type(error).__name__}: {error.desc}"
                continue
            except DecodeError as error:
                faults[command.name] = str(error)
                continue
            decoded[command.name] = typed
            if command.ret_type is not None:
                again = qemu72.codec.encoder(command.ret_type)(typed)
                if again != recording.last:
                    faults[command.name] = "does not encode back to the reply"
    return {"decoded": decoded, "refused": refused, "faults": faults}


@pytest.mark.parametrize(
    "compat", ["deprecated-output=hide", "deprecated-input=reject"]
)
def test_every_argument_free_query_decodes(
    qemu72: SimpleNamespace, launcher: QemuLauncher, compat: str
) -> None:
    qemu = launcher.start("compat", extra_args=["-compat", compat])
    found = asyncio.run(_sweep(qemu72, qemu.qmp_address))
    assert found["faults"] == {}
    calls = len(_argument_free_queries(qemu72.schema))
    # most queries answer on a plain TCG pc machine; the others are QEMU's refusals
    # (no KVM, no SEV, no replay, ...), which the client raises as QEMU's errors
    assert len(found["decoded"]) >= calls * 2 // 3, found["refused"]
    schema_info = found["decoded"]["query-qmp-schema"]
    enums = [entry for entry in schema_info if entry.meta_type.value == "enum"]
    names = {entry.name for entry in schema_info}
    if compat == "deprecated-output=hide":
        # SchemaInfoEnum.values is deprecated in 7.2: left out, even though required
        assert enums and all(entry.values is None for entry in enums)
        assert not {"drive-backup", "nbd-server-remove", "MEM_UNPLUG_ERROR"} & names
    else:
        assert all(entry.values is not None for entry in enums)
        assert {"drive-backup", "nbd-server-remove", "MEM_UNPLUG_ERROR"} <= names


def test_hidden_unstable_members_leave_replies(
    qemu72: SimpleNamespace, launcher: QemuLauncher
) -> None:
    qemu = launcher.start("unstable", extra_args=["-compat", "unstable-output=hide"])

    async def scenario() -> tuple[Any, Any]:
        async with QMPClient() as connection:
            await connection.connect(qemu.qmp_address)
            client = qemu72.commands.AsyncClient(connection)
            return (
                await client.query_migrate_parameters(),
                await client.query_migrate_capabilities(),
            )

    parameters, capabilities = asyncio.run(scenario())
    assert parameters.x_checkpoint_delay is None
    assert parameters.max_bandwidth is not None
    names = {status.capability.value for status in capabilities}
    assert "x-colo" in names  # unstable enum values are not hidden


def _refusal_cases(qemu72: SimpleNamespace) -> dict[str, tuple[str, dict[str, Any]]]:
    """Typed calls QEMU 7.2 refuses under deprecated-input=reject: method, kwargs or
    the boxed argument."""
    t = qemu72.types
    backup = t.DriveBackup(
        device="nothing", target="/nonexistent", sync=t.MirrorSyncMode.FULL
    )
    with warnings.catch_warnings():
        # building deprecated values warns; sending them is what is tested
        warnings.simplefilter("ignore", DeprecationWarning)
        action = t.TransactionAction_DriveBackup(data=backup)
        secret = t.ObjectOptions_Secret(id="s0", data="abc", loaded=True)
    return {
        "deprecated command": ("nbd_server_remove", {"name": "x"}),
        "deprecated boxed command": ("drive_backup", {"": backup}),
        "deprecated argument": ("eject", {"device": "nothing"}),
        "deprecated argument among others": (
            "block_commit",
            {"device": "nothing", "top": "t"},
        ),
        "deprecated enum value": (
            "transaction",
            {"actions": [action]},
        ),
        "deprecated nested member": (
            "object_add",
            {"": secret},
        ),
    }


async def _call(client: Any, method: str, arguments: dict[str, Any]) -> str:
    """The refusal of one typed call: "ErrorClass: text" (or "accepted")."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if "" in arguments:
                await getattr(client, method)(arguments[""])
            else:
                await getattr(client, method)(**arguments)
    except QMPCommandError as error:
        return f"{type(error).__name__}: {error.desc}"
    return "accepted"


class _Loopback:
    """A transport that hands each call to a dispatcher, as a QMP server would."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher

    async def execute(
        self, name: str, arguments: dict[str, object] | None = None, **_: Any
    ) -> object:
        return await self.dispatcher.dispatch(name, arguments or {})


class _Accepting:
    """Implements every command of the package by answering nothing (only the calls
    a policy lets through reach it)."""

    def __getattr__(self, name: str) -> Any:
        async def accept(*args: object, **kwargs: object) -> None:
            return None

        return accept


def test_rejections_match_qemu(qemu72: SimpleNamespace, launcher: QemuLauncher) -> None:
    qemu = launcher.start("reject", extra_args=["-compat", "deprecated-input=reject"])
    cases = _refusal_cases(qemu72)
    policy = CompatPolicy.from_settings([("deprecated-input", "reject")])
    handler_type = type("Handler", (qemu72.commands.CommandHandlerBase,), {})
    for method in {method for method, _ in cases.values()}:
        setattr(handler_type, method, getattr(_Accepting(), method))
    ours = qemu72.commands.AsyncClient(
        _Loopback(qemu72.commands.CommandDispatcher(handler_type(), policy=policy))
    )

    async def scenario() -> dict[str, tuple[str, str]]:
        answers: dict[str, tuple[str, str]] = {}
        async with QMPClient() as connection:
            await connection.connect(qemu.qmp_address)
            theirs = qemu72.commands.AsyncClient(connection)
            # query-commands lists deprecated commands under any policy
            listed = {info.name for info in await theirs.query_commands()}
            assert {"nbd-server-remove", "drive-backup"} <= listed
            for case, (method, arguments) in cases.items():
                answers[case] = (
                    await _call(theirs, method, arguments),
                    await _call(ours, method, arguments),
                )
        return answers

    answers = asyncio.run(scenario())
    expected = {
        "deprecated command": (
            "CommandNotFound: Deprecated command nbd-server-remove disabled by policy"
        ),
        "deprecated boxed command": (
            "CommandNotFound: Deprecated command drive-backup disabled by policy"
        ),
        "deprecated argument": (
            "GenericError: Deprecated parameter device disabled by policy"
        ),
        "deprecated argument among others": (
            "GenericError: Deprecated parameter top disabled by policy"
        ),
        "deprecated enum value": (
            "GenericError: Deprecated value drive-backup disabled by policy"
        ),
        "deprecated nested member": (
            "GenericError: Deprecated parameter loaded disabled by policy"
        ),
    }
    assert {case: qemu for case, (qemu, _) in answers.items()} == expected
    assert {case: own for case, (_, own) in answers.items()} == expected


# Members in schema order, a refused one and an ill-typed one: QEMU's input visitor
# asks its policy at each member before decoding it, so whichever comes first in the
# schema is what is reported (the order of the request does not matter).
ORDER_CASES: dict[str, list[tuple[str, dict[str, object], str]]] = {
    "deprecated-input=reject": [
        (
            "object-add",
            {"qom-type": "secret", "id": "s0", "format": 123, "loaded": True},
            "Deprecated parameter loaded disabled by policy",
        ),
        (
            "object-add",
            {"qom-type": "tls-creds-anon", "id": "t0", "loaded": True, "dir": 5},
            "Invalid parameter type for 'dir', expected: string",
        ),
        (
            "block-commit",
            {"device": "d", "base": "b", "speed": "fast"},
            "Deprecated parameter base disabled by policy",
        ),
        (
            "block-commit",
            {"base": "b", "device": "d", "base-node": 5},
            "Invalid parameter type for 'base-node', expected: string",
        ),
    ],
    "unstable-input=reject": [
        (
            "transaction",
            {
                "actions": [
                    {
                        "type": "drive-backup",
                        "data": {
                            "device": "d",
                            "sync": "full",
                            "target": 7,
                            "x-perf": {},
                        },
                    }
                ]
            },
            "Unstable parameter x-perf disabled by policy",
        ),
        (
            "transaction",
            {
                "actions": [
                    {
                        "type": "drive-backup",
                        "data": {
                            "x-perf": {},
                            "device": "d",
                            "sync": "full",
                            "speed": "fast",
                        },
                    }
                ]
            },
            "Invalid parameter type for 'actions[0].data.speed', expected: integer",
        ),
    ],
}


@pytest.mark.parametrize("compat", sorted(ORDER_CASES))
def test_refusals_come_in_schema_order_as_in_qemu(
    qemu72: SimpleNamespace, launcher: QemuLauncher, compat: str
) -> None:
    qemu = launcher.start("order", extra_args=["-compat", compat])
    key, value = compat.split("=")
    policy = CompatPolicy.from_settings([(key, value)])
    dispatcher = qemu72.commands.CommandDispatcher(_Accepting(), policy=policy)
    cases = ORDER_CASES[compat]
    theirs: list[str] = []
    ours: list[str] = []
    with SyncQMPClient() as client:
        client.connect(qemu.qmp_address)
        for name, arguments, _ in cases:
            try:
                client.execute(name, dict(arguments))
                theirs.append("accepted")
            except QMPCommandError as error:
                theirs.append(error.desc)
            try:
                asyncio.run(dispatcher.dispatch(name, dict(arguments)))
                ours.append("accepted")
            except QMPCommandError as error:
                ours.append(error.desc)
    expected = [text for _, _, text in cases]
    assert theirs == expected
    assert ours == expected


def test_crash_aborts_qemu(launcher: QemuLauncher) -> None:
    qemu = launcher.start("crash", extra_args=["-compat", "deprecated-input=crash"])
    with SyncQMPClient() as client:
        client.connect(qemu.qmp_address)
        client.execute("query-status")  # what is not deprecated is served
        with contextlib.suppress(Exception):
            client.execute("nbd-server-remove", {"name": "x"})
    assert qemu.wait_exit(30) == -6  # SIGABRT


# -- descriptors through the typed clients --------------------------------------


def test_getfd_and_add_fd_through_the_typed_clients(
    qemu72: SimpleNamespace, launcher: QemuLauncher
) -> None:
    qemu = launcher.start("fds")
    read_end, write_end = os.pipe()
    try:
        with SyncQMPClient() as connection:
            connection.connect(qemu.qmp_address)
            client = qemu72.commands.SyncClient(connection)
            client.getfd(fdname="sync-fd", fd=read_end)
            client.closefd(fdname="sync-fd")
            info = client.add_fd(opaque="sync", fd=write_end)
            fdsets = {s.fdset_id: s for s in client.query_fdsets()}
            assert [f.opaque for f in fdsets[info.fdset_id].fds] == ["sync"]
            client.remove_fd(fdset_id=info.fdset_id)

        async def scenario() -> None:
            async with QMPClient() as async_connection:
                await async_connection.connect(qemu.qmp_address)
                typed = qemu72.commands.AsyncClient(async_connection)
                await typed.getfd(fdname="async-fd", fd=read_end)
                await typed.closefd(fdname="async-fd")
                added = await typed.add_fd(fdset_id=7, fd=write_end)
                assert added.fdset_id == 7
                await typed.remove_fd(fdset_id=7)

        asyncio.run(scenario())
    finally:
        os.close(read_end)
        os.close(write_end)


def test_qemu_qmp_adapter_passes_descriptors(
    qemu72: SimpleNamespace, launcher: QemuLauncher
) -> None:
    qmp = pytest.importorskip("qemu.qmp")
    from qapigen_runtime.qmp.qemu_qmp_adapter import QemuQmpTransport

    qemu = launcher.start("adapter-fds")
    read_end, write_end = os.pipe()

    async def scenario() -> None:
        raw = qmp.QMPClient("typed-fds")
        await raw.connect(qemu.qmp_address)
        try:
            typed = qemu72.commands.AsyncClient(QemuQmpTransport(raw))
            await typed.getfd(fdname="adapted", fd=read_end)
            await typed.closefd(fdname="adapted")
            added = await typed.add_fd(fd=write_end)
            await typed.remove_fd(fdset_id=added.fdset_id)
        finally:
            await raw.disconnect()

    try:
        asyncio.run(scenario())
    finally:
        os.close(read_end)
        os.close(write_end)


def test_migration_to_a_passed_descriptor(
    qemu72: SimpleNamespace, launcher: QemuLauncher
) -> None:
    """getfd on both sides of a socket pair, then `migrate fd:NAME` and
    `migrate-incoming fd:NAME`, through the typed clients only."""
    source = launcher.start("fd-source")
    destination = launcher.start("fd-destination", incoming="defer")
    left, right = socket.socketpair()
    try:
        with SyncQMPClient() as dst_connection:
            dst_connection.connect(destination.qmp_address)
            dst = qemu72.commands.SyncClient(dst_connection)
            dst.getfd(fdname="mig", fd=right.fileno())
            dst.migrate_incoming(uri="fd:mig")

            async def migrate() -> str:
                async with QMPClient() as src_connection:
                    await src_connection.connect(source.qmp_address)
                    src = qemu72.commands.AsyncClient(src_connection)
                    await src.getfd(fdname="mig", fd=left.fileno())
                    await src.migrate(uri="fd:mig")
                    deadline = time.monotonic() + 60
                    while True:
                        info = await src.query_migrate()
                        status = info.status.value if info.status else "none"
                        if status in ("completed", "failed"):
                            return status
                        assert time.monotonic() < deadline, status
                        await asyncio.sleep(0.05)

            assert asyncio.run(migrate()) == "completed"
            deadline = time.monotonic() + 30
            while dst.query_status().status.value != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        left.close()
        right.close()
