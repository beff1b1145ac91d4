"""Generation time for QEMU's complete schemas, side by side with QEMU's own generator.

Cold generation: `qapigen generate SCHEMA -o DIR` into an empty folder, each run a fresh
interpreter (imports, template compilation and all), as a build step runs it, against
QEMU's `scripts/qapi-gen.py` of the same release on the same schema (fetched by
scripts/fetch-qemu-sources; it writes C), alternating. Target: <= 1.0x QEMU's.
No-change regeneration: `qapigen generate` again on a folder that is current, as a build
step runs most of the time. Target: <= 0.3 s.
Prints medians, the size of the output and the ratios.
Usage: python bench/bench_generate.py [runs]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qapigen_testing.paths import qemu_release

COLD_TARGET = 1.0
NO_CHANGE_TARGET_SECONDS = 0.3


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - start


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
        ours: list[float] = []
        theirs: list[float] = []
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
    cold = statistics.median(ours)
    print(f"QEMU {release}: {files} modules, {lines} lines; median of {runs} runs")
    if theirs:
        reference = statistics.median(theirs)
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        print(
            f"  cold generation: {cold:.2f} s vs QEMU's qapi-gen.py {reference:.2f} s:"
            f" {statistics.median(ratios):.2f}x (target <= {COLD_TARGET}x)"
        )
    else:
        print(f"  cold generation: {cold:.2f} s (QEMU's qapi-gen.py not fetched)")
    median = statistics.median(no_change)
    print(
        f"  no-change regeneration: {median:.3f} s"
        f" (target <= {NO_CHANGE_TARGET_SECONDS} s)"
    )


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for release in ("5.2", "7.2", "10.0"):
        bench_release(release, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
