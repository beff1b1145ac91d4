"""Run mypy --strict the way a user does: with the project installed (editable), every
package resolves through the install itself, no search path of our own.

Packages a test generates into a temporary folder are not installed; `link_tree` gives
them an import name in a scratch folder that mypy is pointed at (only them).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# The installed packages of this repository, by import name.
PROJECT_PACKAGES = [
    "qapigen",
    "qapigen_runtime",
    "qapigen_vm",
    "qapigen_migration",
    "qapigen_vm_qmp",
    "qapigen_qga",
    "qapigen_storage_daemon",
]


@functools.cache
def shared_cache_dir() -> Path:
    """One mypy cache for the whole test process, removed at exit.

    Every run checks typeshed's standard library and the project's packages; with a
    cache of their own each paid for that again (about 3 s a run, and a complete QEMU
    package checked by several tests was checked afresh by each). mypy's cache is
    keyed by module and validated by content hash, so a package generated into
    another folder with other content is checked again, never taken from the cache.
    """
    folder = Path(tempfile.mkdtemp(prefix="qapigen-mypy-cache-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def link_tree(root: Path, packages: dict[str, Path]) -> None:
    """Give each generated package folder its import name under `root`."""
    for name, folder in packages.items():
        (root / name).symlink_to(folder.resolve(), target_is_directory=True)


def run_mypy(
    root: Path, targets: list[str], *extra: str, cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """mypy --strict on `targets` (package names or files), run in `root` (where
    `link_tree` put generated packages); the project's own packages, and the test
    support package, come from the installation. `cache`: a cache of the run's own,
    for a test that compares mypy's whole output (notes such as "defined here" name
    source lines mypy shows only for modules it checked in this run), else the
    shared one."""
    environment = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(cache or shared_cache_dir()),
            *extra,
            *targets,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=environment,
    )
