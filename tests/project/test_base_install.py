"""The base install is lean: the wheel, installed with no extras into a fresh virtual
environment, brings the generator and the runtime and nothing heavy, and is enough to
generate QEMU 7.2's complete schema, import the package and make a typed call."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qapigen_testing.paths import REPO, shared_path

# Only the reference VM ([vm]) and its plots ([plot]) need these.
HEAVY = {"numpy", "zstandard", "matplotlib"}

# Run in the fresh environment: a typed call over a transport that answers from a
# table (an object with SyncTransport's methods), then what got imported.
PROBE = """
import sys
from qemu72.commands import SyncClient
from qemu72.types import RunState, StatusInfo

class CannedTransport:
    def __init__(self):
        self.sent = []
    def execute(self, name, arguments=None, *, oob=False, fds=()):
        self.sent.append((name, arguments))
        return {"running": True, "singlestep": False, "status": "running"}
    def events(self, timeout=0.0):
        return iter(())
    def wait_for(self, name, predicate=None, timeout=None):
        raise TimeoutError(name)

transport = CannedTransport()
info = SyncClient(transport).query_status()
assert type(info) is StatusInfo and info.status is RunState.RUNNING, info
assert info.running is True and transport.sent == [("query-status", None)]
print("typed call:", type(info).__name__, info.status.value)
print("heavy modules:", sorted(m for m in ("numpy", "zstandard", "matplotlib") if m in sys.modules))
"""


def run(*command: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        command,
        result.stdout[-3000:],
        result.stderr[-3000:],
    )
    return result.stdout


@pytest.mark.slow
def test_the_wheel_without_extras_generates_imports_and_calls(tmp_path: Path) -> None:
    schema = shared_path("qemu", "7.2", "qapi", "qapi-schema.json")
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, REPO)
    (wheel,) = wheels.glob("qapigen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "qapigen/cli.py" in names and "qapigen_runtime/codec.py" in names
    assert not [n for n in names if n.endswith(".qapigen-stamp.json")]  # local only

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # The outer pip installs into the new environment: no pip bootstrap needed there.
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel)

    listed = run(
        python,
        "-c",
        "import importlib.metadata as m;"
        "print('\\n'.join(sorted(d.metadata['Name'].lower() for d in m.distributions())))",
    ).split()
    assert "qapigen" in listed
    assert HEAVY.isdisjoint(listed), listed

    work = tmp_path / "work"
    work.mkdir()
    made = subprocess.run(
        [venv / "bin" / "qapigen", "generate", "-q", schema, "-o", "qemu72"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stderr.startswith("qemu72: ") and " files, " in made.stderr

    out = run(python, "-c", PROBE, cwd=work)
    assert out == "typed call: StatusInfo running\nheavy modules: []\n"
