"""Cold generation time for QEMU's complete schemas (target: 7.2 in <= 1.4 s).

Each run is a fresh interpreter (imports, Jinja template compilation and all), the way
`qapigen generate` runs in a build. Prints the time and the size of the output, and the
ratio to the target. Usage: python bench/bench_generate.py [runs]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TARGET_SECONDS = 1.4

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
