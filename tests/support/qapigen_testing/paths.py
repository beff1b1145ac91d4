"""Where the repository and QEMU's test data are.

QEMU's schemas and schema test corpora of a release are in ``../shared/qemu/RELEASE``
(5.2 and 7.2) or, fetched by ``scripts/fetch-qemu-sources`` in the same layout, in the
cache it names (7.2 and 10.0, with QEMU's own generator in ``scripts/``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
QEMU_CACHE = Path(
    os.environ.get("QAPIGEN_QEMU_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "qapigen"
    / "qemu"
)


def qemu_release(release: str, *parts: str) -> Path | None:
    """A path in QEMU `release`'s data (../shared first, then the fetched cache), or
    None when neither has it."""
    for root in (SHARED / "qemu" / release, QEMU_CACHE / release):
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return None


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a clean skip saying what is missing."""
    import pytest

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
