"""Run mypy --strict and black over installed-name trees.

mypy cannot follow the editable install's folder-to-package mapping (runtime/ is imported as
qapigen_runtime, generated/X as X), so we lay out a temporary tree of
symlinks under the import names and check that.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# import name -> folder in the repository
PROJECT_PACKAGES = {
    "qapigen": REPO / "qapigen",
    "qapigen_runtime": REPO / "runtime",
    "qapigen_migration": REPO / "generated" / "qapigen_migration",
    "qapigen_vm_qmp": REPO / "generated" / "qapigen_vm_qmp",
}


def link_tree(root: Path, packages: dict[str, Path]) -> None:
    for name, folder in packages.items():
        (root / name).symlink_to(folder.resolve(), target_is_directory=True)


def run_mypy(
    root: Path, targets: list[str], *extra: str, search: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """mypy --strict on `targets` (package names or files) with `root`, then the
    folders of `search`, on the path."""
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
        env={**os.environ, "MYPYPATH": os.pathsep.join(map(str, (root, *search)))},
    )
