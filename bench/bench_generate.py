"""Generation time for QEMU's complete schemas.

Cold generation (target: QEMU 7.2 in <= 1.4 s): each run is a fresh interpreter
(imports, Jinja template compilation and all), the way `qapigen generate` runs in a build.
No-change regeneration (target: <= 0.3 s): `qapigen generate` again on an output folder
that is already current, as a build step does most of the time.
Prints times, the size of the output and the ratios to the targets.
Usage: python bench/bench_generate.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TARGET_SECONDS = 1.4
NO_CHANGE_TARGET_SECONDS = 0.3

SCRIPT = """
import sys
from qapigen.frontend import load_schema
from qapigen.generate import generate_package
files = generate_package(load_schema(sys.argv[1]), "bench", "qapi-schema.json")
print(sum(text.count("\\n") for text in files.values()))
"""


def cold_run(schema: Path) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(schema)],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, int(result.stdout)


def cli_run(schema: Path, output: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "qapigen.cli",
            "generate",
            "-q",
            str(schema),
            "-o",
            str(output),
        ],
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def no_change_regeneration(schema: Path, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "qemu_qapi"
        first = cli_run(schema, output)
        times = [cli_run(schema, output) for _ in range(runs)]
    median = statistics.median(times)
    print(
        f"  no-change regeneration: {median:.3f} s (median of {runs};"
        f" the first, writing, run took {first:.2f} s),"
        f" {median / NO_CHANGE_TARGET_SECONDS:.2f}x the {NO_CHANGE_TARGET_SECONDS} s"
        " budget"
    )


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for release in ("5.2", "7.2"):
        schema = SHARED / "qemu" / release / "qapi" / "qapi-schema.json"
        if not schema.exists():
            print(f"{schema} is absent: QEMU's schemas live in ../shared")
            return 1
        times = []
        lines = 0
        for _ in range(runs):
            seconds, lines = cold_run(schema)
            times.append(seconds)
        best = min(times)
        print(
            f"QEMU {release}: {lines} lines in {best:.2f} s (best of {runs}),"
            f" {best / TARGET_SECONDS:.2f}x the {TARGET_SECONDS} s budget"
        )
        no_change_regeneration(schema, max(runs, 5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
