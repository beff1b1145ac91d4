"""COLO in qapigen-vm: what each checkpoint costs the guest, at several dirty rates.

Run: python bench/bench_vm_colo.py [--size-mib 64] [--delay-ms 100] [--checkpoints 10]

A primary (random RAM, a guest dirtying random pages at the given rate) and a
secondary run in COLO over loopback TCP, in one process, with x-checkpoint-delay set.
For each rate it prints, over the checkpoints measured: the time the guest was stopped
per checkpoint (STOP to RESUME on the primary; median and worst), the bytes sent per
checkpoint, and the share of the guest's time lost to checkpoints (pause / delay).

QEMU 7.2 cannot be measured side by side: in this set-up (no colo-compare, filters or
block replication) its primary deadlocks at the first checkpoint (see the README).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

# the COLO pair is the one the tests use
from qapigen_testing.colo_pair import MIB, ColoPair

RATES = (0, 5000, 20000)


def measure(size: int, delay_ms: int, checkpoints: int, rate: int) -> str:
    """One pair at `rate` pages/s: the line of figures for it."""
    pair = ColoPair(size=size, delay_ms=delay_ms)
    stamps: list[tuple[str, float]] = []

    def hook(name: str, data: dict[str, object]) -> None:
        if name in ("STOP", "RESUME") and pair.primary.status() == "colo":
            stamps.append((name, time.monotonic()))

    pair.primary.hook = hook
    try:
        pair.start(dirty_rate=rate)
        sent_before = pair.primary_colo.migration.counters.transferred
        done_before = pair.primary_colo.checkpoints
        pair.wait_checkpoints(checkpoints)
        counters = pair.primary_colo.migration.counters
        done = max(pair.primary_colo.checkpoints - done_before, 1)
        per_checkpoint = (counters.transferred - sent_before) / done
    finally:
        pair.close()
    pauses = [
        resumed - stopped
        for (name, stopped), (next_name, resumed) in itertools.pairwise(stamps)
        if name == "STOP" and next_name == "RESUME"
    ]
    if not pauses:
        return f"{rate:>8,}  no checkpoint measured"
    median = statistics.median(pauses) * 1000
    return (
        f"{rate:>8,}  {median:10.1f}  {max(pauses) * 1000:8.1f}  "
        f"{per_checkpoint / 1e6:12.2f}  {median / delay_ms:10.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--checkpoints", type=int, default=10)
    options = parser.parse_args()
    print(
        f"COLO, {options.size_mib} MiB guest, x-checkpoint-delay {options.delay_ms} ms,"
        f" {options.checkpoints} checkpoints per rate, loopback TCP"
    )
    print(
        f"{'pages/s':>8}  {'pause ms':>10}  {'worst ms':>8}  {'MB/checkpt':>12}"
        f"  {'pause/delay':>10}   (pause: median guest stop per checkpoint)"
    )
    for rate in RATES:
        print(
            measure(options.size_mib * MIB, options.delay_ms, options.checkpoints, rate)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
