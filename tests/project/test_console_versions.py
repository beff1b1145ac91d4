"""Every command says its version, from one source (pyproject.toml, through the installed
distribution's metadata), and runs as `python -m` too."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from qapigen_testing.paths import REPO

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
BIN = Path(sys.executable).parent
# QEMU's first line of -version: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)".
QEMU_VERSION_LINE = re.compile(r"^QEMU emulator version (\d+\.\d+\.\d+)(?: \((.+)\))?$")


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)


def script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable}")
    return str(path)


def test_the_metadata_carries_pyprojects_version() -> None:
    assert metadata.version("qapigen") == VERSION


@pytest.mark.parametrize("name", ["qapigen", "qapigen-compare", "qapigen-migrate"])
def test_version_option(name: str) -> None:
    result = run(script(name), "--version")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"{name} {VERSION}\n",
        "",
    )


def test_python_dash_m_qapigen() -> None:
    version = run(sys.executable, "-m", "qapigen", "--version")
    assert version.stdout == f"qapigen {VERSION}\n", version.stderr
    checked = run(
        sys.executable, "-m", "qapigen", "check", "-q", "schema/migration.json"
    )
    assert (checked.returncode, checked.stderr) == (0, "")
    usage = run(sys.executable, "-m", "qapigen")
    assert usage.returncode == 2 and usage.stderr.startswith("usage: qapigen")


@pytest.mark.parametrize("spelling", ["-version", "--version"])
def test_qapigen_vm_version_has_qemus_shape(spelling: str) -> None:
    result = run(script("qapigen-vm"), spelling)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first == f"QEMU emulator version 7.2.0 (qapigen-vm {VERSION})"
    assert len(rest) == 1 and rest[0].startswith("Copyright (c) ")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is not None:
        real = run(qemu, spelling)
        lines = real.stdout.splitlines()
        assert len(lines) == 2 and QEMU_VERSION_LINE.match(lines[0]), real.stdout
        assert lines[1].startswith("Copyright (c) ")
    assert QEMU_VERSION_LINE.match(first)
    same = run(sys.executable, "-m", "qapigen_vm", spelling)
    assert same.stdout == result.stdout


@pytest.mark.parametrize(
    ("argv", "status", "stderr"),
    [
        # As QEMU: every option is checked first, then -version ends the run where
        # it stands, before the options after it are used.
        (["-version", "-bogus"], 1, "qapigen-vm: -bogus: invalid option\n"),
        (["-version", "-m"], 1, "qapigen-vm: -m: requires an argument\n"),
        (["-version", "-m", "xyz"], 0, ""),
        (["-m", "xyz", "-bogus"], 1, "qapigen-vm: -bogus: invalid option\n"),
    ],
)
def test_qapigen_vm_version_among_other_options(
    argv: list[str], status: int, stderr: str
) -> None:
    result = run(script("qapigen-vm"), *argv)
    assert (result.returncode, result.stderr) == (status, stderr)
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is not None:
        real = run(qemu, *argv)
        assert real.returncode == status
        assert real.stderr == stderr.replace("qapigen-vm", "qemu-system-x86_64")
