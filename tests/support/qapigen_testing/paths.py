"""Where the repository, the suite's own parts and QEMU's test data are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"

SUPPORT = Path("tests", "support")
"""The support package's folder (relative to REPO, as the paths below)."""
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


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a clean skip saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path.relative_to(REPO.parent)} is absent: QEMU's test data lives there"
        )
    return path
