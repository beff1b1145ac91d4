"""Run mypy --strict the way a user does: with the project installed (editable), every
package resolves through the install itself, no search path of our own.

Packages a test generates into a temporary folder are not installed; `link_tree` gives
them an import name in a scratch folder that mypy is pointed at (only them).
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def link_tree(root: Path, packages: dict[str, Path]) -> None:
    """Give each generated package folder its import name under `root`."""
    for name, folder in packages.items():
        (root / name).symlink_to(folder.resolve(), target_is_directory=True)


def run_mypy(
    root: Path, targets: list[str], *extra: str
) -> subprocess.CompletedProcess[str]:
    """mypy --strict on `targets` (package names or files), run in `root` (where
    `link_tree` put generated packages); the project's own packages, and the test
    support package, come from the installation."""
    environment = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(root / ".mypy_cache"),
            *extra,
            *targets,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=environment,
    )
