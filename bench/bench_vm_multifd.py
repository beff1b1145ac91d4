"""qapigen-vm against real QEMU 7.2: the same 1 GiB multifd migration, side by side.

Both pairs migrate a guest whose RAM is a memory-backend-file (share=on, on /dev/shm
when it exists) filled with the same seeded random bytes, over loopback TCP, with the
multifd capability and its default 2 channels (``--channels`` changes that), default
parameters except max-bandwidth, raised to 100 GiB/s ("unlimited": QEMU reads 0 as 0).
The destination starts with ``-incoming defer``: multifd must be on before it listens.
Printed: total time, mbps, downtime and more, with the qapigen-vm / QEMU ratio; the
destinations run with -S, so afterwards each destination's RAM file must equal its
source's byte for byte (checked and printed).

    python bench/bench_vm_multifd.py [--size-mib 1024] [--seed 1] [--channels 2]

About 30 s on two busy cores. Timing only: nothing here is a pass/fail test. The RAM
files are removed whatever happens (they live in a temporary directory).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# The peer factories live in the test support package, the shared helpers in the
# other bench (next to this script, so on the path when it runs).
from bench_vm_vs_qemu import (
    UNLIMITED,
    Outcome,
    copy_run,
    print_side_by_side,
    shared_memory_dir,
)

from qapigen_migration.commands import SyncClient
from qapigen_migration.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationCapabilityStatus,
)
from qapigen_testing.peers import PeerKind, environment_problem

MULTIFD = (MigrationCapability.MULTIFD,)


def multifd_run(
    kind: PeerKind, directory: Path, size_mib: int, seed: int, channels: int
) -> Outcome:
    """One kind: multifd on both sides, the destination deferred (multifd must be set
    before it listens), the same random RAM as the other kind."""

    def listen(qmp: SyncClient, port: int) -> None:
        qmp.migrate_set_capabilities(
            capabilities=[
                MigrationCapabilityStatus(capability=c, state=True) for c in MULTIFD
            ]
        )
        qmp.migrate_set_parameters(MigrateSetParameters(multifd_channels=channels))
        qmp.migrate_incoming(uri=f"tcp:127.0.0.1:{port}")

    return copy_run(
        kind,
        directory,
        size_mib,
        seed,
        parameters=MigrateSetParameters(
            max_bandwidth=UNLIMITED, multifd_channels=channels
        ),
        capabilities=MULTIFD,
        deferred=listen,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--channels", type=int, default=2)
    options = parser.parse_args()
    problem = environment_problem(PeerKind.QEMU)
    if problem is not None:
        print(f"bench_vm_multifd: {problem}", file=sys.stderr)
        return 1
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qbench-", dir=shared_memory_dir()) as name:
        directory = Path(name)
        size = options.size_mib
        print(
            f"{size} MiB of random guest RAM (seed {options.seed}), loopback TCP, "
            f"multifd with {options.channels} channels, default parameters, "
            f"max-bandwidth {UNLIMITED >> 30} GiB/s"
        )
        qemu = multifd_run(
            PeerKind.QEMU, directory, size, options.seed, options.channels
        )
        vm = multifd_run(PeerKind.VM, directory, size, options.seed, options.channels)
        print_side_by_side(vm, qemu)
        if qemu.total_ms and vm.total_ms:
            # speed is the inverse of the time: >= 1.0x means qapigen-vm is as fast
            print(f"  speed vs QEMU: {qemu.total_ms / vm.total_ms:.2f}x")
    print(f"\n(bench took {time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
