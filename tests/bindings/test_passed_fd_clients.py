"""The typed clients pass a file descriptor with the commands that take one.

`getfd` and `add-fd` (the commands QEMU's monitor hands a passed descriptor to) take
``fd``: the client sends it with SCM_RIGHTS in the same message as the command. Here a
generated package's own dispatcher serves them over the runtime's QMP server, whose
handler takes the descriptor as QEMU does; the clients are the async and the sync
typed client over this runtime's connections, and the async one over `qemu.qmp`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_runtime.qmp import GenericError, QMPClient, QMPServer, SyncQMPClient
from qapigen_runtime.qmp.passed_fds import take_passed_fd
from qapigen_testing.generated_packages import imported_package

pytestmark = pytest.mark.timeout(60)

# the two commands as QEMU 7.2's schema declares them (misc.json)
SCHEMA = """
{ 'command': 'getfd', 'data': { 'fdname': 'str' } }
{ 'struct': 'AddfdInfo', 'data': { 'fdset-id': 'int', 'fd': 'int' } }
{ 'command': 'add-fd',
  'data': { '*fdset-id': 'int', '*opaque': 'str' },
  'returns': 'AddfdInfo' }
{ 'command': 'query-nothing' }
"""

NO_FD = "No file descriptor supplied via SCM_RIGHTS"


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("passed_fd")
    schema_file = root / "fds.json"
    schema_file.write_text(SCHEMA)
    files = generate_package(load_schema(str(schema_file)), "passed_fd_pkg", "x.json")
    with imported_package(files, root, "passed_fd_pkg") as package:
        yield SimpleNamespace(
            types=importlib.import_module(f"{package.__name__}.types"),
            commands=importlib.import_module(f"{package.__name__}.commands"),
        )


class _Keeper:
    """getfd and add-fd as QEMU serves them: the descriptor comes with the command."""

    def __init__(self, pkg: SimpleNamespace) -> None:
        self.pkg = pkg
        self.named: dict[str, int] = {}
        self.sets: dict[int, list[int]] = {}

    async def getfd(self, *, fdname: str) -> None:
        fd = take_passed_fd()
        if fd is None:
            raise GenericError(NO_FD)
        self.named[fdname] = fd

    async def add_fd(
        self, *, fdset_id: int | None = None, opaque: str | None = None
    ) -> Any:
        fd = take_passed_fd()
        if fd is None:
            raise GenericError(NO_FD)
        number = 0 if fdset_id is None else fdset_id
        self.sets.setdefault(number, []).append(fd)
        return self.pkg.types.AddfdInfo(fdset_id=number, fd=fd)

    def close(self) -> None:
        for fd in [*self.named.values(), *(f for s in self.sets.values() for f in s)]:
            os.close(fd)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="qtfd-"))  # short: unix path limit
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def _serving(pkg: SimpleNamespace, path: str) -> AsyncIterator[_Keeper]:
    handler_type = type("Handler", (_Keeper, pkg.commands.CommandHandlerBase), {})
    handler = handler_type(pkg)
    server = QMPServer(pkg.commands.CommandDispatcher(handler))
    await server.listen(path)
    try:
        yield handler
    finally:
        await server.close()
        handler.close()


def _same_pipe(received: int, read_end: int) -> bool:
    os.write(received, b"!")
    return os.read(read_end, 1) == b"!"


def test_only_the_commands_that_take_a_descriptor_have_the_parameter(
    pkg: SimpleNamespace,
) -> None:
    for client in (pkg.commands.AsyncClient, pkg.commands.SyncClient):
        assert inspect.signature(client.getfd).parameters["fd"].default is (
            inspect.Parameter.empty
        )
        assert "fd" in inspect.signature(client.add_fd).parameters
        assert "fd" not in inspect.signature(client.query_nothing).parameters
    # a handler takes the descriptor from the connection, not as an argument
    assert "fd" not in inspect.signature(pkg.commands.CommandHandler.getfd).parameters


def test_async_and_sync_clients_pass_the_descriptor(
    pkg: SimpleNamespace, sock_dir: Path
) -> None:
    path = str(sock_dir / "qmp.sock")
    read_end, write_end = os.pipe()

    def sync_side() -> Any:
        with SyncQMPClient() as connection:
            connection.connect(path)
            client = pkg.commands.SyncClient(connection)
            client.getfd(fdname="sync", fd=write_end)
            return client.add_fd(fdset_id=3, opaque="o", fd=write_end)

    async def scenario() -> None:
        async with _serving(pkg, path) as keeper, QMPClient() as connection:
            await connection.connect(path)
            client = pkg.commands.AsyncClient(connection)
            assert await client.getfd(fdname="async", fd=write_end) is None
            info = await client.add_fd(fd=write_end)
            assert info.fdset_id == 0 and info.fd == keeper.sets[0][0]
            synced = await asyncio.to_thread(sync_side)
            assert synced.fdset_id == 3
            for fd in [keeper.named["async"], keeper.named["sync"], synced.fd]:
                assert fd != write_end and _same_pipe(fd, read_end)

    try:
        asyncio.run(scenario())
    finally:
        os.close(read_end)
        os.close(write_end)


def test_qemu_qmp_adapter_passes_the_descriptor(
    pkg: SimpleNamespace, sock_dir: Path
) -> None:
    qmp = pytest.importorskip("qemu.qmp")
    from qapigen_runtime.qmp.qemu_qmp_adapter import QemuQmpTransport

    path = str(sock_dir / "qmp.sock")
    read_end, write_end = os.pipe()

    async def scenario() -> None:
        async with _serving(pkg, path) as keeper:
            raw = qmp.QMPClient("typed-fds")
            await raw.connect(path)
            try:
                client = pkg.commands.AsyncClient(QemuQmpTransport(raw))
                await client.getfd(fdname="adapted", fd=write_end)
                info = await client.add_fd(fdset_id=1, fd=write_end)
            finally:
                await raw.disconnect()
            assert _same_pipe(keeper.named["adapted"], read_end)
            assert _same_pipe(info.fd, read_end)

    try:
        asyncio.run(scenario())
    finally:
        os.close(read_end)
        os.close(write_end)
