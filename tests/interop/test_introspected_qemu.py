"""A package generated from a live QEMU's introspection, driven against that QEMU.

The installed QEMU 7.2 always; other builds too when $QAPIGEN_EXTRA_QEMU lists their
binaries (separated by `:`), e.g. Debian's 5.2 and 10.0 unpacked into a scratch folder,
each compared with the package generated from its own release's source schema.

`qapigen generate --from-introspection` asks the running QEMU for its schema and
version; the package passes black and mypy --strict, and every `query-*` command that
needs no arguments is run once: its reply must decode with zero failures, and
re-encoded (through the package's dispatcher, the same code a server uses) give the
very JSON QEMU sent, with the introspection package and with the package generated
from QEMU 7.2's source schema alike.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from qapigen.cli import main as qapigen_main
from qapigen.from_introspection.build import schema_from_entities
from qapigen.from_introspection.source import load_answer
from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen.schema import Schema
from qapigen_runtime.qmp.errors import QMPCommandError
from qapigen_runtime.qmp.events import QMPEvent
from qapigen_runtime.qmp.sync_client import SyncQMPClient
from qapigen_runtime.qmp.transport import EventPredicate
from qapigen_testing.generated_packages import imported_package
from qapigen_testing.paths import qemu_release
from qapigen_testing.qemu_fixtures import (
    QEMU_BINARY,
    QemuLauncher,
    QemuProcess,
    qemu_version,
)
from qapigen_testing.typecheck import link_tree, run_mypy

pytestmark = pytest.mark.qemu


EXTRA_BINARIES = [
    path for path in os.environ.get("QAPIGEN_EXTRA_QEMU", "").split(os.pathsep) if path
]


@pytest.fixture(scope="module", params=[QEMU_BINARY, *EXTRA_BINARIES])
def qemu(request: pytest.FixtureRequest) -> Iterator[QemuProcess]:
    binary: str = request.param
    version = qemu_version(binary)
    if binary == QEMU_BINARY and version != (7, 2):
        pytest.skip(f"these tests drive QEMU 7.2; installed: {version}")
    with QemuLauncher(binary=binary) as launcher:
        yield launcher.start("introspected")


def release_of(qemu: QemuProcess) -> str:
    """`7.2` for the QEMU 7.2 running as `qemu`."""
    with SyncQMPClient() as client:
        client.connect(qemu.qmp_address)
        version = client.execute("query-version")
    assert isinstance(version, dict)
    return "{major}.{minor}".format(**version["qemu"])


@pytest.fixture(scope="module")
def live_folder(qemu: QemuProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package the command line generates from the live QEMU."""
    folder = tmp_path_factory.mktemp("live") / "live_qemu"
    status = qapigen_main(
        [
            "generate",
            "--from-introspection",
            f"unix:{qemu.qmp_address}",
            "-o",
            str(folder),
        ]
    )
    assert status == 0
    return folder


def test_docstrings_name_the_qemu_version(qemu: QemuProcess, live_folder: Path) -> None:
    first = (live_folder / "__init__.py").read_text().splitlines()[0]
    release = re.escape(release_of(qemu))
    assert re.fullmatch(
        rf'"""Typed QMP bindings for the QAPI schema introspection of QEMU {release}\.\d+\.',
        first,
    ), first


def test_live_package_is_black_clean_and_type_checks(
    live_folder: Path, tmp_path: Path
) -> None:
    black = subprocess.run(
        [sys.executable, "-m", "black", "--check", "-q", str(live_folder)],
        capture_output=True,
        text=True,
    )
    assert black.returncode == 0, black.stderr
    link_tree(tmp_path, {"live_qemu": live_folder})
    checked = run_mypy(tmp_path, ["live_qemu"])
    assert checked.returncode == 0, checked.stdout + checked.stderr


class Replay:
    """A SyncTransport answering every command with one recorded reply."""

    def __init__(self, reply: object) -> None:
        self.reply = reply

    def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Any = (),
    ) -> object:
        return self.reply

    def events(self, timeout: float | None = 0.0) -> Iterator[QMPEvent]:
        return iter(())

    def wait_for(
        self,
        name: str,
        predicate: EventPredicate | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        raise TimeoutError(name)


def wire_of(package: ModuleType, command: str, reply: object) -> object:
    """`reply` decoded by `package`'s typed client, then encoded again by its
    dispatcher (what a server built on the package would send)."""
    commands = importlib.import_module(package.__name__ + ".commands")
    method = commands.METHODS[command]
    with warnings.catch_warnings():
        # deprecated commands warn when called (features are kept): not the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        value = getattr(commands.SyncClient(Replay(reply)), method)()

    async def answer(self: object, *args: object, **kwargs: object) -> object:
        return value

    handler = type("Handler", (commands.CommandHandlerBase,), {method: answer})()
    dispatcher = commands.CommandDispatcher(handler)
    return asyncio.run(dispatcher.dispatch(command, {}))


def no_argument_queries(schema: Schema) -> list[str]:
    return sorted(
        command.name
        for command in schema.commands()
        if command.name.startswith(("query-", "x-query-"))
        and (
            command.arg_type is None
            or all(member.optional for member in command.arg_type.members)
        )
    )


@pytest.fixture(scope="module")
def packages(
    qemu: QemuProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Schema, ModuleType, ModuleType]]:
    release = release_of(qemu)
    source_path = qemu_release(release, "qapi", "qapi-schema.json")
    if source_path is None:
        pytest.skip(f"QEMU {release}'s source schema is absent")
    answer = load_answer(qemu.qmp_address)
    live_schema = schema_from_entities(answer.entities, qemu.qmp_address)
    root = tmp_path_factory.mktemp("pkgs")
    live_name, source_name = f"live_{root.name}", f"source_{root.name}"
    live_files = generate_package(live_schema, live_name, answer.described)
    source_schema = load_schema(str(source_path))
    source_files = generate_package(source_schema, source_name, f"QEMU {release}")
    with (
        imported_package(live_files, root, live_name) as live,
        imported_package(source_files, root, source_name) as source,
    ):
        yield live_schema, live, source


def test_every_argumentless_query_decodes_and_agrees_with_source(
    qemu: QemuProcess, packages: tuple[Schema, ModuleType, ModuleType]
) -> None:
    schema, live, source = packages
    queries = no_argument_queries(schema)
    assert len(queries) >= 50, queries
    failures: list[str] = []
    refused: list[str] = []
    compared = 0
    with SyncQMPClient() as client:
        client.connect(qemu.qmp_address)
        for command in queries:
            try:
                reply = client.execute(command)
            except QMPCommandError:
                refused.append(command)  # e.g. query-sev on a machine without SEV
                continue
            for package in (live, source):
                try:
                    wire = wire_of(package, command, reply)
                except Exception as error:
                    failures.append(f"{package.__name__} {command}: {error!r}")
                    continue
                if wire != reply:
                    failures.append(f"{package.__name__} {command}: {wire} != {reply}")
            compared += 1
    assert failures == []
    assert compared >= 40, (compared, refused)
