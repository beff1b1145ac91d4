"""The README's code and commands are true: its Python example runs against a real QEMU."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
from pathlib import Path

import pytest

from qapigen_testing.daemons import GuestAgent, StorageDaemon
from qapigen_testing.qemu_fixtures import QemuLauncher

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, flags=re.DOTALL)
    assert first_block is not None
    commands = [
        line.split("#")[0].strip() for line in first_block.group(1).splitlines()
    ]
    assert commands == ["scripts/demo", "scripts/test"]
    for command in commands:
        assert (REPO / command).is_file()


@pytest.mark.qemu
def test_readme_python_example_runs_against_qemu(tmp_path: Path) -> None:
    example, _, _ = python_blocks()
    with QemuLauncher() as launcher:
        qemu = launcher.start("readme")
        code = example.replace('"/tmp/qemu.qmp"', repr(qemu.qmp_address))
        assert code != example, "the example's socket path changed: update this test"
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    printed = output.getvalue().split(maxsplit=1)
    assert printed[0] == "250"
    # QEMU 7.2 sends cpu-throttle-tailslow, which the 5.0-era schema lacks: kept.
    assert "cpu-throttle-tailslow" in printed[1]


def _run_block(code: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return output.getvalue()


@pytest.mark.guest_agent
def test_readme_guest_agent_example_runs_against_qemu_ga() -> None:
    _, example, _ = python_blocks()
    with GuestAgent() as agent:
        code = example.replace('"/tmp/qga.sock"', repr(str(agent.socket_path)))
        assert code != example, "the example's socket path changed: update this test"
        printed = _run_block(code).splitlines()
    assert printed[0]  # the pretty name of the machine's OS
    assert printed[1] == "0 b'hello\\n'"


@pytest.mark.storage_daemon
def test_readme_storage_daemon_example_runs_against_qemu_storage_daemon() -> None:
    _, _, example = python_blocks()
    with StorageDaemon() as daemon:
        image = daemon.folder / "disk.img"
        created = subprocess.run(["qemu-img", "create", "-q", str(image), "1M"])
        assert created.returncode == 0
        code = example.replace('"/tmp/qsd.sock"', repr(str(daemon.socket_path)))
        code = code.replace('"/tmp/disk.img"', repr(str(image)))
        assert code.count(os.fspath(daemon.folder)) == 2, "update this test"
        printed = _run_block(code)
    assert printed == "disk file 1048576\n"
