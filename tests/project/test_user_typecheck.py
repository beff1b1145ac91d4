"""Type checking as a user does it: plain `mypy --strict` in the development install,
no search path of ours, over the examples and over user code importing a package
generated from QEMU 7.2's complete schema (into a temporary folder, where a project
would keep it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package, write_package
from qapigen_testing.paths import REPO, shared_path
from qapigen_testing.typecheck import shared_cache_dir

# A user's program: clients, replies narrowed by tag, events, a server's handler.
USER_CODE = """
from __future__ import annotations

import asyncio

from qemu72.commands import AsyncClient, CommandDispatcher, CommandHandlerBase, SyncClient
from qemu72.events import MigrationEvent, wait_for
from qemu72.types import (
    MigrationStatus,
    RunState,
    SocketAddress,
    SocketAddress_Inet,
    StatusInfo,
)
from qapigen_runtime.qmp import QMPClient, SyncQMPClient


async def watch(address: str) -> MigrationStatus:
    transport = QMPClient()
    await transport.connect(address)
    qemu = AsyncClient(transport)
    info = await qemu.query_migrate()
    event = await wait_for(transport, MigrationEvent, lambda e: e.status is not None)
    await transport.close()
    return event.status if info.status is None else info.status


def status(address: str) -> RunState:
    with SyncQMPClient() as transport:
        transport.connect(address)
        return SyncClient(transport).query_status().status


def host(address: SocketAddress) -> str | None:
    if isinstance(address, SocketAddress_Inet):
        return address.host
    return None


class Handler(CommandHandlerBase):
    async def query_status(self) -> StatusInfo:
        return StatusInfo(running=True, singlestep=False, status=RunState.RUNNING)


dispatcher = CommandDispatcher(Handler())
asyncio.run(watch("/tmp/qemu.qmp"))
"""

# The same mistakes a user could make: each must be an error.
WRONG_USE = """
from qemu72.commands import SyncClient
from qemu72.types import StatusInfo


def misuse(client: SyncClient) -> None:
    running: str = client.query_status().running  # a bool
    client.migrate(uri=1)  # a str
    StatusInfo(running=True)  # singlestep and status missing
    client.no_such_command()
"""


def _mypy(folder: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    """Plain `mypy --strict`; only its cache is the test run's shared one (what is
    checked and how is unchanged: the cache is validated by content)."""
    environment = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    cache = ["--cache-dir", str(shared_cache_dir())]
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
        + cache
        + list(targets),
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment,
    )


def test_examples_type_check_with_plain_mypy() -> None:
    result = _mypy(REPO, "examples")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_user_code_over_qemu_72_type_checks(tmp_path: Path) -> None:
    schema = shared_path("qemu", "7.2", "qapi", "qapi-schema.json")
    files = generate_package(load_schema(str(schema)), "qemu72", "qapi-schema.json")
    write_package(files, tmp_path / "qemu72")
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_CODE))
    (tmp_path / "wrong.py").write_text(textwrap.dedent(WRONG_USE))
    right = _mypy(tmp_path, "user.py")
    assert right.returncode == 0, right.stdout[-4000:] + right.stderr
    wrong = _mypy(tmp_path, "wrong.py")
    errors = [line for line in wrong.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == [
        "7",
        "8",
        "9",
        "9",
        "10",
    ], wrong.stdout
