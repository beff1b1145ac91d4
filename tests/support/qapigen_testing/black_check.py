"""black's verdict on generated packages, as their users' black gives it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def black_check_each_text_once(
    packages: Mapping[str, Mapping[str, str]], folder: Path
) -> subprocess.CompletedProcess[str]:
    """``black --check`` over the Python files of `packages` (name: files, as
    `generate_package` returns them), each distinct text checked once.

    black's verdict on a file is a function of its text alone: the default settings
    apply, as no configuration is found above a temporary folder. And a QEMU release's
    storage-daemon package repeats most of its QMP package's modules word for word
    (7.2: 60k of its 72k lines). A file is written under its first package's name,
    so black names a file the packages have.
    """
    seen: set[str] = set()
    for package, files in packages.items():
        for name, text in files.items():
            if name.endswith(".py") and text not in seen:
                seen.add(text)
                path = folder / package / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "black", "--check", "-q", "."],
        cwd=folder,
        capture_output=True,
        text=True,
    )
