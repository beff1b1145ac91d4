"""The guest-agent helpers and transports type-check with the generated clients of
every guest-agent schema at hand (QEMU 5.2, 7.2, 10.0): they take a client through
structural protocols, so a release's package fits without the runtime importing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package, write_package
from qapigen_testing.paths import qemu_release
from qapigen_testing.typecheck import run_mypy

USE = """\
from __future__ import annotations

from qapigen_runtime.qga import QGAClient, SyncQGAClient, helpers
from {package}.commands import AsyncClient, SyncClient


def blocking(transport: SyncQGAClient) -> helpers.ExecResult:
    client = SyncClient(transport)
    with helpers.GuestFile(client, "/tmp/x", "r") as guest_file:
        guest_file.read(4)
    helpers.system_info(client)
    return helpers.run(client, "/bin/echo", ["hi"], input=b"")


async def asynchronous(transport: QGAClient) -> helpers.ExecResult:
    client = AsyncClient(transport)
    async with await helpers.AsyncGuestFile.open(client, "/tmp/x") as guest_file:
        await guest_file.read()
    await helpers.system_info_async(client)
    return await helpers.run_async(client, "/bin/echo")
"""

# What a client without guest-exec-status gets: the check above can fail.
MISUSE = """\
from __future__ import annotations

from qapigen_runtime.qga import helpers
from {package}.commands import SyncClient


class NoStatus:
    def __init__(self, client: SyncClient) -> None:
        self.guest_exec = client.guest_exec


def wrong(client: SyncClient) -> None:
    helpers.run(NoStatus(client), "/bin/echo")
"""


@pytest.mark.slow
def test_helpers_take_the_clients_of_every_release(tmp_path: Path) -> None:
    packages = []
    for release in ("5.2", "7.2", "10.0"):
        schema = qemu_release(release, "qga", "qapi-schema.json")
        if schema is None:
            continue
        package = "qga" + release.replace(".", "")
        files = generate_package(load_schema(str(schema)), package, schema.name)
        write_package(files, tmp_path / package)
        (tmp_path / f"use_{package}.py").write_text(USE.format(package=package))
        packages.append(package)
    assert {"qga52", "qga72"} <= set(packages), packages  # 10.0's when fetched
    used = run_mypy(tmp_path, [f"use_{p}.py" for p in packages])
    assert used.returncode == 0, used.stdout + used.stderr

    (tmp_path / "misuse.py").write_text(MISUSE.format(package="qga72"))
    misused = run_mypy(tmp_path, ["misuse.py"])
    assert misused.returncode == 1
    assert '"NoStatus" is missing following "SyncExecClient" protocol member' in (
        misused.stdout
    )
    assert "guest_exec_status" in misused.stdout
