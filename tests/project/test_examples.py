"""The examples that need no QEMU run, and do what their docstrings say.

(examples/typed_client.py drives a real QEMU: tests/interop/test_interop_qemu.py runs it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_typed_server_example_serves_only_what_it_implements() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "typed_server.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "offered: migrate-set-parameters, qmp_capabilities, query-commands,"
        " query-migrate, query-migrate-parameters"
    )
    assert lines[1] == "downtime-limit is now 250 ms"
    assert lines[2] == (
        "refused: GenericError: Parameter 'downtime_limit' expects an integer in the"
        " range of 0 to 2000000 milliseconds"
    )
    assert lines[3] == (
        "refused: CommandNotFound: The command migrate_cancel has not been found"
    )
    assert lines[4].startswith("event: MIGRATION active at 20")
    assert lines[5] == "query-migrate: {'status': 'active'}"
