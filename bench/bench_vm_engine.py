"""Migrate 1 GiB of random guest memory over loopback TCP between two processes.

Default parameters (downtime-limit 300 ms) with unlimited bandwidth, as in the QEMU 7.2
run it is compared with: 2.3 s, 3,732 mbps, 259 ms downtime on the same kind of setup.

    python bench/bench_vm_engine.py [--size-mib 1024] [--seed 1] [--cold]
    python bench/bench_vm_engine.py --dirty-rate 100000 --working-set-mib 256
        (a guest dirtying pages while it migrates; add --auto-converge to throttle it)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from qapigen_vm import GuestRam, MigrationEngine

QEMU_SECONDS = 2.3
QEMU_MBPS = 3732.0
QEMU_DOWNTIME_MS = 259


def run_destination(size: int) -> int:
    """Child process: listen, print the port, load, print the outcome."""
    engine = MigrationEngine(
        GuestRam(size), incoming="tcp:127.0.0.1:0", start_paused=True
    )
    engine.start()
    print(engine.listening_port(), flush=True)
    incoming = engine.incoming
    assert incoming is not None
    incoming.join()
    status = engine.query_migrate().status
    print(status.value if status else "none", flush=True)
    engine.close()
    return 0 if status and status.value == "completed" else 1


def start_destination(size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", "destination", "--size", str(size)],
        stdout=subprocess.PIPE,
        text=True,
    )


def run_source(size: int, seed: int, cold: bool, args: argparse.Namespace) -> int:
    # By default the destination starts first, as a real one does: it populates its
    # RAM while the source fills its own. --cold migrates the moment it listens, so
    # the destination pays its page faults during the migration.
    child = None if cold else start_destination(size)
    ram = GuestRam(size)
    ram.fill_random(seed)
    if child is None:
        child = start_destination(size)
    assert child.stdout is not None
    port = child.stdout.readline().strip()
    engine = MigrationEngine(ram)
    engine.migrate_set_parameters({"max-bandwidth": args.max_bandwidth})
    if args.auto_converge:
        engine.migrate_set_capabilities([("auto-converge", True)])
    if args.dirty_rate:
        engine.start_workload(
            rate=args.dirty_rate,
            pages=min(args.working_set_mib << 20, size) // 4096,
            seed=seed,
        )
    started = time.perf_counter()
    engine.migrate(f"tcp:127.0.0.1:{port}")
    while True:
        info = engine.query_migrate()
        if info.status is not None and info.status.value in ("completed", "failed"):
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    destination_status = child.stdout.readline().strip()
    child.wait()
    engine.close()
    if info.status.value != "completed" or info.ram is None:
        print(f"migration failed: {info.error_desc}", file=sys.stderr)
        return 1
    ram_stats = info.ram
    start = "cold (migrate at once)" if cold else "warm (started first)"
    print(f"RAM                {size >> 20} MiB random, loopback TCP, 2 processes")
    print(f"destination start  {start}")
    print(f"destination        {destination_status}")
    comparable = not args.dirty_rate and not args.max_bandwidth
    if comparable:  # the QEMU run: idle guest, unlimited bandwidth
        print(
            f"time               {elapsed:.2f} s   (QEMU 7.2: {QEMU_SECONDS} s, "
            f"ratio {QEMU_SECONDS / elapsed:.2f}x)"
        )
        print(
            f"mbps               {ram_stats.mbps:.0f}   (QEMU 7.2: {QEMU_MBPS:.0f}, "
            f"ratio {ram_stats.mbps / QEMU_MBPS:.2f}x)"
        )
        print(
            f"downtime           {info.downtime} ms   (QEMU 7.2: {QEMU_DOWNTIME_MS} ms)"
        )
    else:
        print(f"time               {elapsed:.2f} s")
        print(f"mbps               {ram_stats.mbps:.0f}")
        print(f"downtime           {info.downtime} ms")
    print(f"total-time         {info.total_time} ms, setup-time {info.setup_time} ms")
    if args.dirty_rate:
        print(
            f"guest              {args.dirty_rate} pages/s over "
            f"{args.working_set_mib} MiB, auto-converge "
            f"{'on' if args.auto_converge else 'off'}"
        )
    print(f"dirty-sync-count   {ram_stats.dirty_sync_count}")
    print(f"transferred        {ram_stats.transferred} bytes")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cold", action="store_true", help="migrate as soon as the destination listens"
    )
    parser.add_argument(
        "--max-bandwidth", type=int, default=0, help="bytes/s, 0 = unlimited"
    )
    parser.add_argument("--dirty-rate", type=int, default=0, help="pages/s")
    parser.add_argument("--working-set-mib", type=int, default=256)
    parser.add_argument("--auto-converge", action="store_true")
    parser.add_argument("--role", choices=["source", "destination"], default="source")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size if args.size else args.size_mib << 20
    if args.role == "destination":
        return run_destination(size)
    return run_source(size, args.seed, args.cold, args)


if __name__ == "__main__":
    sys.exit(main())
