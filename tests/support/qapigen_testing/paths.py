"""Where the repository and QEMU's test data are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a clean skip saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path.relative_to(REPO.parent)} is absent: QEMU's test data lives there"
        )
    return path


def qemu_cache() -> Path:
    """Where scripts/fetch-qemu-sources puts QEMU's source extracts (same rule:
    $QAPIGEN_QEMU_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/qapigen/qemu)."""
    explicit = os.environ.get("QAPIGEN_QEMU_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "qapigen" / "qemu"


def release_root(release: str) -> Path:
    """A QEMU release's schemas and test corpus (laid out alike): ../shared for 5.2
    and 7.2, the fetch-qemu-sources cache for 10.0. The path may not exist."""
    if release == "10.0":
        return qemu_cache() / release
    return SHARED / "qemu" / release
