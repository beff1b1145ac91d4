"""Time the front end (parse + check into the IR) on QEMU's complete schemas.

Run: .venv/bin/python bench/bench_frontend.py [RUNS]
Prints the median and spread per schema, the ratio to the 0.25 s target for QEMU 7.2
(QEMU's own front end takes about 0.5 s on this kind of machine), and the least CPU
time of a run (steadier than wall-clock time when other work shares the machine). QEMU 10.0's schema
comes from the cache scripts/fetch-qemu-sources fills (skipped when absent).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from qapigen.frontend import load_schema
from qapigen.level import Level
from qapigen.source import QAPIError
from qapigen_testing.paths import release_root

TARGET_SECONDS = 0.25


def time_load(path: Path, level: Level, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run. On a shared machine the CPU time's
    minimum is the steadier figure: waiting for a core does not count in it."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        load_schema(str(path), level)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    cases = [
        ("QEMU 7.2 schema, --qapi-version 7.2", "7.2", Level.V7_2),
        ("QEMU 7.2 schema, default level", "7.2", Level.PERMISSIVE),
        ("QEMU 5.2 schema, --qapi-version 5.2", "5.2", Level.V5_2),
        ("QEMU 10.0 schema, --qapi-version 10.0", "10.0", Level.V10_0),
        ("QEMU 10.0 schema, default level", "10.0", Level.PERMISSIVE),
    ]
    print(f"front end: parse + check, median of {runs} runs (in-process)")
    for label, release, level in cases:
        path = release_root(release) / "qapi" / "qapi-schema.json"
        if not path.exists():
            print(f"  {label}: skipped, {path} is absent")
            continue
        try:
            times, cpu = time_load(path, level, runs)
        except QAPIError as error:
            # an older front end, or a level that rejects the schema
            print(f"  {label}: rejected ({error.message})")
            continue
        median = statistics.median(times)
        print(
            f"  {label}: median {median * 1000:.1f} ms"
            f" (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f});"
            f" {median / TARGET_SECONDS:.2f}x the {TARGET_SECONDS} s target;"
            f" CPU min {min(cpu) * 1000:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
