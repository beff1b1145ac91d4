"""Running the `qapigen` command as a user does, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .paths import REPO

# A small schema with a doc comment, quick to generate.
COLORS_SCHEMA = b"""
##
# @Color:
#
# A colour.
#
# @red: red
# @blue: blue
#
# Since: 1.0
##
{ 'enum': 'Color', 'data': [ 'red', 'blue' ] }
"""


def run_qapigen(
    *args: str, cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m qapigen ARGS` in `cwd`, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "qapigen", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def plain_failure(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line-per-problem stderr of a failed run; fails the test if the run
    succeeded or reported a traceback or an internal error."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    return result.stderr
