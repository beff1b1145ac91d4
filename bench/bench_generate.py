"""Generation time for QEMU's complete schemas, side by side with QEMU's own generator.

Cold generation: `qapigen generate SCHEMA -o DIR` into an empty folder, each run a fresh
interpreter, as a build step runs it (with Python's bytecode and qapigen's compiled
templates cached, as an installed tool finds them after its first run), against
QEMU's `scripts/qapi-gen.py` of the same release on the same schema (fetched by
scripts/fetch-qemu-sources; it writes C), alternating. Target: <= 1.0x QEMU's.
No-change regeneration: `qapigen generate` again on a folder that is current, as a build
step runs most of the time. Target: <= 0.3 s.
Each run is timed twice: wall-clock, and CPU (user + system, from the child's rusage),
which a loaded machine inflates far less; the ratio is taken on CPU time.
Prints medians, the size of the output and the ratios.
Usage: python bench/bench_generate.py [runs [release...]]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from qapigen_testing.paths import qemu_release

COLD_TARGET = 1.0
NO_CHANGE_TARGET_SECONDS = 0.3


# As installed tools run: with their bytecode (and qapigen's compiled templates, which
# follow the same switch) cached; a machine may set PYTHONDONTWRITEBYTECODE, which would
# make every run compile both generators afresh.
BYTECODE_CACHED = {
    k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"
}


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float


def timed(command: list[str], cwd: Path) -> Run:
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=BYTECODE_CACHED,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return Run(wall, usage.ru_utime + usage.ru_stime)


def medians(runs: list[Run]) -> str:
    wall = statistics.median(r.wall for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    return f"{cpu:.2f} s CPU ({wall:.2f} s wall)"


def qapigen(schema: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "qapigen",
        "generate",
        "-q",
        str(schema),
        "-o",
        str(output),
    ]


def bench_release(release: str, runs: int) -> None:
    schema = qemu_release(release, "qapi", "qapi-schema.json")
    qemu_gen = qemu_release(release, "scripts", "qapi-gen.py")
    if schema is None:
        print(f"QEMU {release}: no schema (../shared or scripts/fetch-qemu-sources)")
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ours: list[Run] = []
        theirs: list[Run] = []
        timed(qapigen(schema, root / "warm-up" / "qemu_qapi"), root)  # caches
        if qemu_gen is not None:
            timed(
                [sys.executable, str(qemu_gen), "-o", str(root / "warm"), str(schema)],
                root,
            )
        for run in range(runs):
            output = root / f"ours{run}" / "qemu_qapi"
            ours.append(timed(qapigen(schema, output), root))
            if qemu_gen is not None:
                c_output = root / f"theirs{run}"
                command = [
                    sys.executable,
                    str(qemu_gen),
                    "-o",
                    str(c_output),
                    str(schema),
                ]
                theirs.append(timed(command, root))
        current = root / "ours0" / "qemu_qapi"
        lines = sum(path.read_text().count("\n") for path in current.rglob("*.py"))
        files = sum(1 for _ in current.rglob("*.py"))
        no_change = [timed(qapigen(schema, current), root) for _ in range(max(runs, 5))]
        shutil.rmtree(root / "ours0")
    print(f"QEMU {release}: {files} modules, {lines} lines; median of {runs} runs")
    if theirs:
        ratios = [a.cpu / b.cpu for a, b in zip(ours, theirs, strict=True)]
        print(
            f"  cold generation: {medians(ours)} vs QEMU's qapi-gen.py"
            f" {medians(theirs)}: {statistics.median(ratios):.2f}x CPU"
            f" (target <= {COLD_TARGET}x)"
        )
    else:
        print(f"  cold generation: {medians(ours)} (QEMU's qapi-gen.py not fetched)")
    print(
        f"  no-change regeneration: {medians(no_change)}"
        f" (target <= {NO_CHANGE_TARGET_SECONDS} s)"
    )


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    releases = sys.argv[2:] or ["5.2", "7.2", "10.0"]
    for release in releases:
        bench_release(release, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
