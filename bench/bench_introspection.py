"""Generation from a live QEMU 7.2's introspection: connect, fetch, generate.

In one process (imports done before timing, as a long-running tool would): connect to
a running QEMU and negotiate; fetch `query-qmp-schema` and `query-version`; read the
answer and derive the names; build and check the IR; render the package; write it.
Side by side: the same package shape from QEMU 7.2's source schema (parse, check,
render), so the ratio says what introspection costs over source. Then the whole command
line, `qapigen generate --from-introspection unix:PATH -o DIR` in a fresh interpreter,
as a user runs it. Prints medians.
Usage: python bench/bench_introspection.py [runs]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from qapigen.from_introspection.build import schema_from_entities
from qapigen.from_introspection.reply import read_entities
from qapigen.from_introspection.source import version_text
from qapigen.frontend import load_schema
from qapigen.generate import generate_package, write_package
from qapigen_runtime.qmp.sync_client import SyncQMPClient
from qapigen_testing.paths import qemu_release
from qapigen_testing.qemu_fixtures import QemuLauncher

T = TypeVar("T")


def timed(stage: dict[str, list[float]], name: str, work: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = work()
    stage.setdefault(name, []).append(time.perf_counter() - start)
    return result


def one_run(address: str, folder: Path, stages: dict[str, list[float]]) -> None:
    client = SyncQMPClient()
    total = time.perf_counter()
    timed(stages, "connect", lambda: client.connect(address))
    answer = timed(stages, "fetch", lambda: client.execute("query-qmp-schema"))
    version = version_text(client.execute("query-version"))
    client.close()
    entities = timed(stages, "read + names", lambda: read_entities(answer, address))
    schema = timed(stages, "IR", lambda: schema_from_entities(entities, address))
    files = timed(
        stages,
        "render",
        lambda: generate_package(schema, "live", f"introspection of QEMU {version}"),
    )
    timed(stages, "write", lambda: write_package(files, folder / "live"))
    stages.setdefault("total", []).append(time.perf_counter() - total)


def from_source(schema_path: Path, stages: dict[str, list[float]]) -> None:
    total = time.perf_counter()
    schema = timed(stages, "source: parse + IR", lambda: load_schema(str(schema_path)))
    timed(stages, "source: render", lambda: generate_package(schema, "src", "source"))
    stages.setdefault("source: total", []).append(time.perf_counter() - total)


def command_line(address: str, folder: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "qapigen", "generate", "--from-introspection",
         f"unix:{address}", "-o", str(folder / "cli")],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    source = qemu_release("7.2", "qapi", "qapi-schema.json")
    stages: dict[str, list[float]] = {}
    cli: list[float] = []
    with QemuLauncher() as launcher, tempfile.TemporaryDirectory() as scratch:
        qemu = launcher.start("bench-introspection")
        for run in range(runs):
            folder = Path(scratch) / str(run)
            one_run(qemu.qmp_address, folder, stages)
            if source is not None:
                from_source(source, stages)
            cli.append(command_line(qemu.qmp_address, folder))
    print(f"QEMU 7.2 introspection -> package, median of {runs} runs:")
    for name, values in stages.items():
        print(f"  {name:22} {statistics.median(values) * 1000:8.1f} ms")
    if source is not None:
        ratio = statistics.median(stages["total"]) / statistics.median(
            stages["source: total"]
        )
        print(f"  introspection / source (in process): {ratio:.2f}x")
    print(f"  command line, fresh interpreter: {statistics.median(cli):.2f} s")


if __name__ == "__main__":
    main()
