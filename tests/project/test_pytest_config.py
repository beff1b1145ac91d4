"""The suite's pytest configuration (pyproject.toml) does what the suite relies on,
tried on small test files run by pytest with that configuration:

- an exception left uncaught in a thread, or one Python can only report (raised in
  ``__del__``), fails the test instead of ending as a warning;
- test modules are imported by file (importlib mode), not from their folder put on
  sys.path: one cannot import another by its name. (tests/project/test_suite_layout.py
  refuses the other spellings, such as ``tests.vm.test_vm_tls``.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qapigen_testing.paths import REPO

UNCAUGHT_IN_A_THREAD = """
import threading

def test_a_thread_raises() -> None:
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()
"""

RAISED_IN_DEL = """
import gc

class Broken:
    def __del__(self) -> None:
        raise ValueError("raised in __del__")

def test_a_finaliser_raises() -> None:
    Broken()
    gc.collect()
"""


def run_pytest(folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """pytest on ``folder`` with the project's configuration (and ``options``)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(folder),
            *options,
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_exception_nobody_caught_fails_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_thread.py").write_text(UNCAUGHT_IN_A_THREAD)
    (tmp_path / "test_finaliser.py").write_text(RAISED_IN_DEL)
    result = run_pytest(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 failed" in result.stdout
    assert "PytestUnhandledThreadExceptionWarning" in result.stdout
    assert "PytestUnraisableExceptionWarning" in result.stdout
    # without the configuration's filters both were warnings on passing tests
    lenient = run_pytest(tmp_path, "-o", "filterwarnings=")
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "2 passed" in lenient.stdout


def test_a_test_module_cannot_import_another(tmp_path: Path) -> None:
    """As in the suite, the modules sit in a component folder (no __init__.py)."""
    folder = tmp_path / "component"
    folder.mkdir()
    (folder / "test_helpers_here.py").write_text("SHARED = 1\n")
    (folder / "test_user.py").write_text(
        "from test_helpers_here import SHARED\n\n"
        "def test_uses_it() -> None:\n"
        "    assert SHARED == 1\n"
    )
    result = run_pytest(tmp_path)
    assert result.returncode != 0
    assert "No module named 'test_helpers_here'" in result.stdout
    # pytest's default (prepend) mode would have let it pass
    prepend = run_pytest(tmp_path, "--import-mode=prepend")
    assert prepend.returncode == 0, prepend.stdout + prepend.stderr
