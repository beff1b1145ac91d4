"""qapigen-vm against real QEMU 7.2: the same 1 GiB migration, side by side.

1. Both pairs migrate a 1 GiB guest whose RAM is a memory-backend-file (share=on, on
   /dev/shm when it exists) filled with the same random bytes, over loopback TCP, with
   default parameters and bandwidth "unlimited" (QEMU treats max-bandwidth 0 as 0, so
   it is set to 100 GiB/s on both). Printed: total time, mbps, downtime, with the
   qapigen-vm / QEMU ratios; the destinations are started with -S, so afterwards
   each destination's RAM file must equal its source's, byte for byte.
2. qapigen-vm with a guest dirtying 20,000 pages/s over 256 MiB: it converges, with a
   downtime within downtime-limit.
3. qapigen-vm with a guest that dirties faster than the (limited) link carries: only
   auto-converge completes it; the throttle percentage it reached is printed.

    python bench/bench_vm_vs_qemu.py [--size-mib 1024] [--seed 1] [--vm-only]

Runs in about 75 s on two busy cores. Timing only: nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qapigen_migration.commands import SyncClient
from qapigen_migration.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationCapabilityStatus,
    MigrationInfo,
    MigrationStatus,
)
from qapigen_runtime.qmp import SyncQMPClient

# The peer factories are the tests' (qapigen_testing.peers): one way to start pairs.
from qapigen_testing.peers import (
    Pair,
    PeerArgs,
    PeerKind,
    Site,
    environment_problem,
    free_port,
    start_pair,
)

UNLIMITED = 100 << 30
"""max-bandwidth standing for "unlimited": 100 GiB/s, far above loopback TCP."""
WARM_UP_S = 1.0
"""How long a dirtying guest runs before its migration starts."""

FILL_CHUNK = 64 << 20
POLL = 0.05
MIGRATION_TIMEOUT = 120.0
FINAL = {MigrationStatus.COMPLETED, MigrationStatus.FAILED, MigrationStatus.CANCELLED}


def shared_memory_dir() -> str | None:
    """tmpfs when the system has one (RAM files there cost no disk I/O)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def fill_random(path: Path, size: int, seed: int) -> None:
    """`size` bytes from a seeded generator: the same seed gives the same file."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as out:
        for offset in range(0, size, FILL_CHUNK):
            out.write(rng.bytes(min(FILL_CHUNK, size - offset)))


def same_content(first: Path, second: Path) -> bool:
    a = np.memmap(first, dtype=np.uint8, mode="r")
    b = np.memmap(second, dtype=np.uint8, mode="r")
    return a.shape == b.shape and bool(np.array_equal(a, b))


def machine(size_mib: int) -> tuple[str, ...]:
    return (
        "-M",
        "pc",
        "-accel",
        "tcg",
        "-m",
        f"{size_mib}M",
        "-nodefaults",
        "-display",
        "none",
    )


def ram_file_args(path: Path, size_mib: int) -> tuple[str, ...]:
    return (
        "-object",
        f"memory-backend-file,id=mem,size={size_mib}M,mem-path={path},share=on",
        "-machine",
        "memory-backend=mem",
    )


@dataclass
class Outcome:
    status: str
    total_ms: int
    downtime_ms: int
    mbps: float
    transferred: int
    passes: int
    max_throttle: int
    wall_s: float
    error: str | None


def connect(path: str) -> tuple[SyncQMPClient, SyncClient]:
    raw = SyncQMPClient()
    raw.connect(path)
    return raw, SyncClient(raw)


def migrate(
    pair: Pair,
    parameters: MigrateSetParameters,
    capabilities: tuple[MigrationCapability, ...] = (),
) -> Outcome:
    """Migrate source to destination (listening on the site's port); poll to the end."""
    raw, qmp = connect(pair.source.qmp_path)
    try:
        qmp.migrate_set_parameters(parameters)
        if capabilities:
            qmp.migrate_set_capabilities(
                capabilities=[
                    MigrationCapabilityStatus(capability=c, state=True)
                    for c in capabilities
                ]
            )
        started = time.monotonic()
        qmp.migrate(uri=f"tcp:127.0.0.1:{pair.site.port}")
        max_throttle = 0
        info = MigrationInfo()
        while time.monotonic() - started < MIGRATION_TIMEOUT:
            info = qmp.query_migrate()
            max_throttle = max(max_throttle, info.cpu_throttle_percentage or 0)
            if info.status in FINAL:
                break
            time.sleep(POLL)
        wall = time.monotonic() - started
        if info.status not in FINAL:
            qmp.migrate_cancel()
        ram = info.ram
        return Outcome(
            status=info.status.value if info.status else "none",
            total_ms=info.total_time or 0,
            downtime_ms=info.downtime or 0,
            mbps=ram.mbps if ram and ram.mbps is not None else 0.0,
            transferred=ram.transferred if ram else 0,
            passes=(ram.dirty_sync_count or 0) if ram else 0,
            max_throttle=max_throttle,
            wall_s=wall,
            error=info.error_desc,
        )
    finally:
        raw.close()


IncomingSetup = Callable[[SyncClient, int], None]
"""Prepares a destination started with `-incoming defer` and makes it listen on the
given port (through its typed client)."""


def copy_run(
    kind: PeerKind,
    directory: Path,
    size_mib: int,
    seed: int,
    *,
    parameters: MigrateSetParameters | None = None,
    capabilities: tuple[MigrationCapability, ...] = (),
    deferred: IncomingSetup | None = None,
) -> Outcome:
    """One kind: fresh random source file, empty destination file, then the
    migration (unlimited bandwidth unless `parameters` say otherwise), polled to its
    end. With `deferred` the destination waits for `migrate-incoming`."""
    source_file = directory / f"{kind.name.lower()}-source.ram"
    destination_file = directory / f"{kind.name.lower()}-destination.ram"
    try:
        fill_random(source_file, size_mib << 20, seed)
        where = Site(directory, free_port())
        incoming = "defer" if deferred else f"tcp:127.0.0.1:{where.port}"
        args = PeerArgs(
            source=ram_file_args(source_file, size_mib),
            destination=(
                *ram_file_args(destination_file, size_mib),
                "-S",
                "-incoming",
                incoming,
            ),
        )
        with start_pair(kind, where, args, machine(size_mib)) as pair:
            if deferred is not None:
                raw, qmp = connect(pair.destination.qmp_path)
                try:
                    deferred(qmp, where.port)
                finally:
                    raw.close()
            outcome = migrate(
                pair,
                parameters or MigrateSetParameters(max_bandwidth=UNLIMITED),
                capabilities,
            )
            if outcome.status != "completed":
                for peer in (pair.source, pair.destination):
                    print(f"  {kind.value} {peer.role} stderr: {peer.stderr()[-500:]}")
        identical = same_content(source_file, destination_file)
        failure = f" ({outcome.error})" if outcome.error else ""
        print(
            f"  {kind.value}: {outcome.status}{failure} in {outcome.wall_s:.1f} s "
            f"wall; destination RAM file "
            f"{'identical to' if identical else 'DIFFERS FROM'} the source's"
        )
        return outcome
    finally:
        source_file.unlink(missing_ok=True)
        destination_file.unlink(missing_ok=True)


def workload_run(
    directory: Path,
    size_mib: int,
    workload: str,
    parameters: MigrateSetParameters,
    capabilities: tuple[MigrationCapability, ...] = (),
    seed: int | None = None,
) -> Outcome:
    """qapigen-vm with a dirtying guest; with `seed`, its RAM starts as the same
    random file as in part 1 (else zero, which costs nothing to migrate)."""
    where = Site(directory, free_port())
    ram: tuple[str, ...] = ()
    source_file = directory / "workload-source.ram"
    if seed is not None:
        fill_random(source_file, size_mib << 20, seed)
        ram = ram_file_args(source_file, size_mib)
    args = PeerArgs(
        source=(*ram, "-workload", workload),
        destination=("-S", "-incoming", f"tcp:127.0.0.1:{where.port}"),
    )
    try:
        with start_pair(PeerKind.VM, where, args, machine(size_mib)) as pair:
            # A guest that has been running: its first touches of fresh RAM (the
            # kernel zeroing huge pages) are over and it dirties at its full rate;
            # migrating at once would race a guest still warming up.
            time.sleep(WARM_UP_S)
            return migrate(pair, parameters, capabilities)
    finally:
        source_file.unlink(missing_ok=True)


def ratio(vm: float, qemu: float) -> str:
    return f"{vm / qemu:6.2f}x" if qemu else "     -"


def print_side_by_side(vm: Outcome, qemu: Outcome | None) -> None:
    print(f"  {'':18}{'qapigen-vm':>12}{'QEMU 7.2':>12}{'vm/qemu':>10}")
    rows: list[tuple[str, float, float | None, str]] = [
        ("total time (ms)", vm.total_ms, qemu.total_ms if qemu else None, "{:.0f}"),
        ("mbps", vm.mbps, qemu.mbps if qemu else None, "{:.0f}"),
        ("downtime (ms)", vm.downtime_ms, qemu.downtime_ms if qemu else None, "{:.0f}"),
        (
            "transferred (MiB)",
            vm.transferred / (1 << 20),
            qemu.transferred / (1 << 20) if qemu else None,
            "{:.0f}",
        ),
        ("dirty syncs", vm.passes, qemu.passes if qemu else None, "{:.0f}"),
    ]
    for label, mine, theirs, form in rows:
        other = form.format(theirs) if theirs is not None else "-"
        print(
            f"  {label:18}{form.format(mine):>12}{other:>12}"
            f"{ratio(mine, theirs) if theirs is not None else '':>10}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--vm-only", action="store_true", help="skip QEMU (e.g. where it is missing)"
    )
    options = parser.parse_args()
    with_qemu = not options.vm_only
    problem = environment_problem(PeerKind.QEMU)
    if with_qemu and problem is not None:
        print(f"bench_vm_vs_qemu: {problem}; use --vm-only", file=sys.stderr)
        return 1
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qbench-", dir=shared_memory_dir()) as name:
        directory = Path(name)
        size = options.size_mib
        print(
            f"1. {size} MiB of random guest RAM (seed {options.seed}), loopback TCP, "
            f"default parameters, max-bandwidth {UNLIMITED >> 30} GiB/s"
        )
        qemu = (
            copy_run(PeerKind.QEMU, directory, size, options.seed)
            if with_qemu
            else None
        )
        vm = copy_run(PeerKind.VM, directory, size, options.seed)
        print_side_by_side(vm, qemu)

        limit = 300
        working_set = min(256, size)  # the working set must fit in the RAM
        print(
            f"\n2. qapigen-vm, guest dirtying 20,000 pages/s (random) over "
            f"{working_set} MiB, {size} MiB of the same random RAM, downtime-limit "
            f"{limit} ms, unlimited bandwidth"
        )
        busy = workload_run(
            directory,
            size,
            f"rate=20000,working-set={working_set}M,pattern=random,seed={options.seed}",
            MigrateSetParameters(max_bandwidth=UNLIMITED, downtime_limit=limit),
            seed=options.seed,
        )
        print(
            f"  {busy.status} in {busy.total_ms} ms after {busy.passes} dirty syncs; "
            f"downtime {busy.downtime_ms} ms "
            f"({'within' if busy.downtime_ms <= limit else 'OVER'} the {limit} ms limit)"
            f", {busy.mbps:.0f} mbps"
        )

        link = 32 << 20
        print(
            "\n3. qapigen-vm, guest dirtying 40,000 pages/s over 128 MiB on a "
            f"{link >> 20} MiB/s link (it cannot converge alone), 512 MiB RAM, "
            "auto-converge on (initial 40 %, increment 20 %)"
        )
        throttled = workload_run(
            directory,
            512,
            f"rate=40000,working-set=128M,pattern=random,seed={options.seed}",
            MigrateSetParameters(
                max_bandwidth=link,
                downtime_limit=limit,
                cpu_throttle_initial=40,
                cpu_throttle_increment=20,
            ),
            (MigrationCapability.AUTO_CONVERGE,),
        )
        print(
            f"  {throttled.status} in {throttled.total_ms} ms after "
            f"{throttled.passes} dirty syncs; throttle reached "
            f"{throttled.max_throttle} %; downtime {throttled.downtime_ms} ms"
        )
    print(f"\n(bench took {time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
