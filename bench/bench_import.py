"""What a program pays for importing a generated package of QEMU's complete schema.

Side by side, in fresh processes, alternating, with bytecode cached as after an install:
- `import qemu.qmp` (the untyped library users have today), the reference;
- import a generated package's `commands` and make one typed call (`query-status`,
  decoded into `StatusInfo`) over an in-memory transport, blocking and asyncio;
- the bare interpreter, for scale.
Targets (issue E): import plus one typed call <= 1.5x `import qemu.qmp`, and <= +8 MiB
peak RSS over it; the first import with no bytecode at all peaks at <= 60 MiB.

Packages: QEMU 7.2's complete schema (../shared) and, when fetched
(scripts/fetch-qemu-sources), QEMU 10.0's, generated into a temporary folder.
Usage: python bench/bench_import.py [runs]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from qapigen.frontend import load_schema
from qapigen.generate import generate_package, write_package
from qapigen_testing.paths import qemu_release

RELEASES = ("7.2", "10.0")
TARGET_TIME_RATIO = 1.5
TARGET_EXTRA_MIB = 8.0
TARGET_FIRST_IMPORT_MIB = 60.0

REPLY = '{"status": "running", "singlestep": False, "running": True}'
SYNC_CALL = f"""
from PKG.commands import SyncClient

class Canned:
    def execute(self, name, arguments=None, *, oob=False, fds=()):
        return {REPLY}

status = SyncClient(Canned()).query_status()
assert status.running is True
"""
ASYNC_CALL = f"""
import asyncio
from PKG.commands import AsyncClient

class Canned:
    async def execute(self, name, arguments=None, *, oob=False, fds=()):
        return {REPLY}

status = asyncio.run(AsyncClient(Canned()).query_status())
assert status.running is True
"""


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mib: float


# The process reports its own peak RSS since exec (VmHWM): the rusage of a child
# counts the memory of the process it was forked from, this bench's.
PEAK = """
import sys as _sys
for _line in open("/proc/self/status"):
    if _line.startswith("VmHWM:"):
        _sys.stdout.write(_line.split()[1])
"""


def run(code: str, cwd: Path, bytecode: bool = True) -> Run:
    """One fresh interpreter running `code`: its wall time, CPU time and peak RSS."""
    environment = {
        k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"
    }
    command = [sys.executable, *([] if bytecode else ["-B"]), "-c", code + PEAK]
    start = os.times().elapsed
    process = subprocess.Popen(
        command, cwd=cwd, env=environment, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    peak_kib = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = os.times().elapsed - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{code!r} failed")
    return Run(wall, usage.ru_utime + usage.ru_stime, int(peak_kib) / 1024)


def median(runs: list[Run], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in runs))


def bench_release(release: str, schema: Path, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        package = "qemu" + release.replace(".", "")
        files = generate_package(load_schema(str(schema)), package, schema.name)
        write_package(files, root / package)
        lines = sum(text.count("\n") for text in files.values())
        # bytecode as after an install (pip compiles on install)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(root / package)], check=True
        )
        contenders = {
            "python -c pass": "pass",
            "import qemu.qmp": "import qemu.qmp",
            "typed sync call": SYNC_CALL.replace("PKG", package),
            "typed async call": ASYNC_CALL.replace("PKG", package),
        }
        results: dict[str, list[Run]] = {name: [] for name in contenders}
        for code in contenders.values():  # warm the page cache
            run(code, root)
        for _ in range(runs):
            for name, code in contenders.items():
                results[name].append(run(code, root))
        cold_root = root / "cold"
        shutil.copytree(root / package, cold_root / package)
        for cached in cold_root.rglob("__pycache__"):
            shutil.rmtree(cached)
        cold = [
            run(SYNC_CALL.replace("PKG", package), cold_root, bytecode=False)
            for _ in range(max(3, runs // 3))
        ]
    print(f"QEMU {release}: {len(files)} files, {lines} lines; median of {runs} runs")
    base = results["import qemu.qmp"]
    for name, measured in results.items():
        print(
            f"  {name:18} wall {median(measured, 'wall') * 1000:6.1f} ms"
            f"  cpu {median(measured, 'cpu') * 1000:6.1f} ms"
            f"  peak {median(measured, 'peak_mib'):5.1f} MiB"
        )
    for name in ("typed sync call", "typed async call"):
        wall = median(results[name], "wall") / median(base, "wall")
        cpu = median(results[name], "cpu") / median(base, "cpu")
        extra = median(results[name], "peak_mib") - median(base, "peak_mib")
        print(
            f"  {name} / import qemu.qmp: wall {wall:.2f}x, cpu {cpu:.2f}x"
            f" (target <= {TARGET_TIME_RATIO}x); RSS {extra:+.1f} MiB"
            f" (target <= +{TARGET_EXTRA_MIB:.0f} MiB)"
        )
    print(
        f"  first import, no bytecode (sync call): peak"
        f" {median(cold, 'peak_mib'):.1f} MiB (target <= {TARGET_FIRST_IMPORT_MIB:.0f}"
        f" MiB), wall {median(cold, 'wall') * 1000:.0f} ms"
    )


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    found = False
    for release in RELEASES:
        schema = qemu_release(release, "qapi", "qapi-schema.json")
        if schema is None:
            print(f"QEMU {release}: no schema (scripts/fetch-qemu-sources), skipped")
            continue
        found = True
        bench_release(release, schema, runs)
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
