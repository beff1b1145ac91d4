"""The files the test suite is made of: its test modules and conftest.py files, apart
from the support package and the folders of data that happen to be Python."""

from __future__ import annotations

from pathlib import Path

from qapigen_testing.paths import REPO

SUPPORT = Path("tests", "support")
"""The support package's folder (relative to REPO, as every path here)."""
DATA_FOLDERS = (
    Path("tests", "bindings", "golden"),  # expected generator output
    Path("tests", "bindings", "typing"),  # input of the negative typing test
)
"""Folders of tests/ that hold Python files which are data, not code of the suite."""


def suite_modules() -> list[Path]:
    """The test modules and conftest.py files (every Python file of tests/ outside
    the support package and the data folders), relative to REPO."""
    return [
        relative
        for relative in (
            path.relative_to(REPO) for path in sorted((REPO / "tests").rglob("*.py"))
        )
        if not any(relative.is_relative_to(d) for d in (SUPPORT, *DATA_FOLDERS))
    ]
