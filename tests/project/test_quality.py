"""The project's own code is mypy --strict clean and black-formatted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qapigen_testing.suite_files import suite_modules
from qapigen_testing.typecheck import PROJECT_PACKAGES, REPO, run_mypy


def test_mypy_strict_over_project_packages(tmp_path: Path) -> None:
    targets: list[str] = []
    for name in PROJECT_PACKAGES:
        targets += ["-p", name]
    result = run_mypy(tmp_path, targets)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_over_tests_benches_and_examples(tmp_path: Path) -> None:
    """The tests (support package included), benches and examples are typed like the
    code they exercise: a wrong call in a test is caught here, not by a confusing
    failure at run time. Three runs, as each part is laid out differently; they share
    one cache."""
    for folder in ("tests", "bench", "examples"):
        (tmp_path / folder).symlink_to(REPO / folder, target_is_directory=True)
    tests = [str(path) for path in suite_modules()]
    assert len(tests) > 40, tests  # the suite was found
    scripts = sorted(
        str(path.relative_to(REPO))
        for folder in ("bench", "examples")
        for path in (REPO / folder).glob("*.py")
    )
    runs = {
        # several folders have a conftest.py: modules are named by their folders
        # (tests.vm.conftest); the support package comes from the installation
        "tests": ["--explicit-package-bases", *tests],
        "the support package": ["-p", "qapigen_testing"],
        # scripts: a bench may import another, next to it, as Python runs them
        "benches and examples": scripts,
    }
    for what, targets in runs.items():
        result = run_mypy(tmp_path, targets)
        assert result.returncode == 0, f"{what}:\n{result.stdout}{result.stderr}"


def test_black_clean() -> None:
    folders = ["qapigen", "runtime", "vm", "generated", "tests", "bench", "examples"]
    result = subprocess.run(
        [sys.executable, "-m", "black", "--check", *folders],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_ruff_clean() -> None:
    """The lint rules of pyproject.toml's [tool.ruff] hold everywhere they apply."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
