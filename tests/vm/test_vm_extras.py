"""The VM behind its extra: importing qapigen_vm or qapigen-migrate's tools loads no
heavy dependency, and a console script run without the extra it needs prints one line
naming what is missing and the install command, and exits 1, never with a traceback.

A missing module is simulated in a fresh interpreter: a ``sitecustomize`` in a temporary
directory puts None in ``sys.modules`` for it, so importing it fails as if absent.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

import qapigen_vm
from qapigen_testing.paths import REPO
from qapigen_vm.console import EXTRA_OF_MODULE, run_command

HEAVY = ("numpy", "zstandard", "matplotlib")
SCRIPTS = {
    "qapigen-vm": "qapigen_vm.console:qapigen_vm",
    "qapigen-migrate": "qapigen_vm.console:qapigen_migrate",
}
VM_EXTRA_LINE = (
    "qapigen-vm: needs numpy, which is not installed: pip install 'qapigen[vm]'"
)


def run_without(
    tmp_path: Path, blocked: Sequence[str], argv: Sequence[str]
) -> subprocess.CompletedProcess[str]:
    """Run `argv` with the modules `blocked` unimportable."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )


def script(name: str) -> list[str]:
    """The installed console script `name` (checked to be ours), run by this Python."""
    (entry,) = [
        e
        for e in importlib.metadata.entry_points(group="console_scripts")
        if e.name == name
    ]
    assert entry.value == SCRIPTS[name]
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{path} is not installed (scripts/setup installs it)")
    return [sys.executable, str(path)]


def test_importing_the_vm_package_and_the_tools_loads_nothing_heavy() -> None:
    code = (
        "import sys, qapigen_vm, qapigen_vm.console, qapigen_vm.tools.migrate; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_the_package_names_load_on_first_use() -> None:
    from qapigen_vm import engine, params, ram, runstate

    assert qapigen_vm.MigrationEngine is engine.MigrationEngine
    assert qapigen_vm.MigrationSettings is params.MigrationSettings
    assert qapigen_vm.GuestRam is ram.GuestRam
    assert qapigen_vm.EventSink is runstate.EventSink
    for name in qapigen_vm.__all__:
        assert getattr(qapigen_vm, name) is not None
        assert name in dir(qapigen_vm)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        getattr(qapigen_vm, "Nope")


def test_vm_script_without_numpy_says_which_extra(tmp_path: Path) -> None:
    result = run_without(tmp_path, ["numpy"], [*script("qapigen-vm"), "-m", "16"])
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        VM_EXTRA_LINE + "\n",
    )


def test_vm_entry_point_without_numpy_says_which_extra(tmp_path: Path) -> None:
    """The same through the function the script calls (no installed script needed)."""
    code = (
        "import sys; from qapigen_vm.console import qapigen_vm; sys.exit(qapigen_vm())"
    )
    result = run_without(tmp_path, ["numpy"], [sys.executable, "-c", code, "-m", "16"])
    assert (result.returncode, result.stderr) == (1, VM_EXTRA_LINE + "\n")


def test_migrate_script_needs_no_vm_extra(tmp_path: Path) -> None:
    """qapigen-migrate drives QMP only: without numpy and zstandard it still runs."""
    blocked = ["numpy", "zstandard", "matplotlib"]
    helped = run_without(tmp_path, blocked, [*script("qapigen-migrate"), "--help"])
    assert helped.returncode == 0 and helped.stdout.startswith("usage: qapigen-migrate")
    missing = str(tmp_path / "missing.qmp")
    result = run_without(
        tmp_path, blocked, [*script("qapigen-migrate"), f"unix:{missing}", "unix:/b"]
    )
    assert result.returncode == 1
    assert re.fullmatch(
        rf"qapigen-migrate: source: cannot connect to unix:{missing}: .*\n",
        result.stderr,
    ), result.stderr


def test_plot_without_matplotlib_says_which_extra(tmp_path: Path) -> None:
    result = run_without(
        tmp_path,
        ["matplotlib"],
        [*script("qapigen-migrate"), "unix:/a", "unix:/b", "--plot", "t.png"],
    )
    assert (result.returncode, result.stderr) == (
        2,  # a usage error: refused before connecting
        "qapigen-migrate: --plot needs matplotlib: pip install 'qapigen[plot]'\n",
    )


def test_a_missing_module_of_no_extra_is_not_hidden() -> None:
    with pytest.raises(ModuleNotFoundError):
        run_command("qapigen-vm", "qapigen_vm.no_such_module")


def test_the_extras_table_follows_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for extra in ("vm", "plot"):
        requirements = project["optional-dependencies"][extra]
        distributions = {
            re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in requirements
        }
        assert distributions == {m for m, e in EXTRA_OF_MODULE.items() if e == extra}
