"""The project's own code is mypy --strict clean and black-formatted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qapigen_testing.typecheck import PROJECT_PACKAGES, REPO, run_mypy


def test_mypy_strict_over_project_packages(tmp_path: Path) -> None:
    targets: list[str] = []
    for name in PROJECT_PACKAGES:
        targets += ["-p", name]
    result = run_mypy(tmp_path, targets)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_over_tests_benches_and_examples(tmp_path: Path) -> None:
    """The tests, benches and examples are typed like the code they exercise: a wrong
    call in a test is caught here, not by a confusing failure at run time."""
    for folder in ("tests", "bench", "examples"):
        (tmp_path / folder).symlink_to(REPO / folder, target_is_directory=True)
    targets = sorted(
        str(path.relative_to(REPO))
        for pattern in (
            "tests/*.py",
            "tests/*/*.py",
            "tests/support/qapigen_testing/*.py",
            "tests/support/qapigen_testing/scenarios/*.py",
            "bench/*.py",
            "examples/*.py",
        )
        for path in REPO.glob(pattern)
    )
    assert len(targets) > 40, targets  # the globs found the suite
    # the VM tests still import helpers of their folder as top-level modules
    result = run_mypy(tmp_path, targets, search=(tmp_path / "tests" / "vm",))
    assert result.returncode == 0, result.stdout + result.stderr


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
