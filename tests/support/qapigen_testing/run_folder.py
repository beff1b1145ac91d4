"""A scratch folder shared by every process of one test run: pytest-xdist's workers
use it for results that are costly to make and the same for all of them.

The process that starts the run (the xdist controller, or the only process) makes it
and removes it at the end; workers inherit its path through the environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

VARIABLE = "QAPIGEN_TEST_RUN_FOLDER"


def make_run_folder() -> Path | None:
    """Make the run's folder unless the environment names one already (this is a
    worker, or a test run inside a test). Returns the folder made: its maker removes
    it with `remove_run_folder`."""
    if VARIABLE in os.environ:
        return None
    folder = Path(tempfile.mkdtemp(prefix="qapigen-test-run-"))
    os.environ[VARIABLE] = str(folder)
    return folder


def remove_run_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    if os.environ.get(VARIABLE) == str(folder):
        del os.environ[VARIABLE]


def run_folder() -> Path | None:
    """The run's shared folder; None outside a test run that made one."""
    value = os.environ.get(VARIABLE)
    return Path(value) if value else None
