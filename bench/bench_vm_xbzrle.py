"""Bytes on the wire with XBZRLE vs without, for a guest that changes a few bytes.

Two in-process reference VMs migrate over loopback TCP twice: once plain, once with
the xbzrle capability. The guest is scripted by the migration's passes so that both
runs see exactly the same writes: at each of the first ``--rounds`` passes it changes
``--bytes`` bytes at a random offset in every page of its working set (and marks them
dirty), then it goes quiet and the migration converges. The ratio of the sources'
``transferred`` counters is the figure of merit (target: at most 0.3).

    python bench/bench_vm_xbzrle.py [--ram-mib 64] [--working-set-mib 32]
                                    [--rounds 10] [--bytes 8]
                                    [--max-bandwidth-mib 256]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from qapigen_vm import GuestRam, MigrationEngine, MigrationInfo
from qapigen_vm.xbzrle import decode_pages, encode_pages

PAGE = 4096


class PassScriptedGuest:
    """At MIGRATION_PASS n <= rounds: change a few bytes of every working-set page."""

    def __init__(
        self, engine: MigrationEngine, pages: int, rounds: int, nbytes: int
    ) -> None:
        self.engine = engine
        self.pages = np.arange(pages, dtype=np.intp)
        self.rounds = rounds
        self.nbytes = nbytes
        self.rng = np.random.default_rng(42)

    def __call__(self, name: str, data: dict[str, object]) -> None:
        if name != "MIGRATION_PASS" or int(data["pass"]) > self.rounds:  # type: ignore[call-overload]
            return
        ram = self.engine.ram
        offsets = self.rng.integers(0, PAGE - self.nbytes, self.pages.size)
        columns = offsets[:, None] + np.arange(self.nbytes)
        ram.pages[self.pages[:, None], columns] ^= np.uint8(0xA5)
        self.engine.log.mark(self.pages)


def migrate(args: argparse.Namespace, xbzrle: bool) -> tuple[MigrationInfo, float]:
    size = args.ram_mib << 20
    ram = GuestRam(size)
    ram.fill_random(1)
    destination = MigrationEngine(
        GuestRam(size), incoming="tcp:127.0.0.1:0", start_paused=True
    )
    destination.start()
    port = destination.listening_port()
    assert port
    guest: PassScriptedGuest | None = None

    def sink(name: str, data: dict[str, object]) -> None:
        if guest is not None:
            guest(name, data)

    source = MigrationEngine(ram, sink=sink)
    guest = PassScriptedGuest(
        source, (args.working_set_mib << 20) // PAGE, args.rounds, args.bytes
    )
    source.migrate_set_capabilities([("events", True), ("xbzrle", xbzrle)])
    # A small downtime limit keeps the source iterating while the guest writes; a
    # bandwidth limit makes the first pass span rate windows, so a threshold exists.
    source.migrate_set_parameters(
        {"max-bandwidth": args.max_bandwidth_mib << 20, "downtime-limit": 1}
    )
    started = time.perf_counter()
    source.migrate(f"tcp:127.0.0.1:{port}")
    while True:
        info = source.query_migrate()
        if info.status is not None and info.status.value in ("completed", "failed"):
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    incoming = destination.incoming
    assert incoming is not None
    incoming.join(30)
    same = bool(np.array_equal(ram.pages, destination.ram.pages))
    source.close()
    destination.close()
    if info.status is None or info.status.value != "completed" or not same:
        raise SystemExit(f"migration failed or memory differs: {info.to_wire()}")
    return info, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ram-mib", type=int, default=64)
    parser.add_argument("--working-set-mib", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--bytes", type=int, default=8)
    parser.add_argument("--max-bandwidth-mib", type=int, default=256)
    args = parser.parse_args()
    plain, plain_s = migrate(args, xbzrle=False)
    delta, delta_s = migrate(args, xbzrle=True)
    assert plain.ram is not None and delta.ram is not None
    cache = delta.xbzrle_cache
    assert cache is not None
    print(
        f"RAM {args.ram_mib} MiB, working set {args.working_set_mib} MiB, "
        f"{args.rounds} rounds of {args.bytes} changed bytes per page"
    )
    print(
        f"plain : {plain.ram.transferred:>12,} bytes  {plain_s:6.2f} s  "
        f"passes {plain.ram.dirty_sync_count}"
    )
    print(
        f"xbzrle: {delta.ram.transferred:>12,} bytes  {delta_s:6.2f} s  "
        f"passes {delta.ram.dirty_sync_count}  xbzrle pages {cache.pages:,}  "
        f"bytes {cache.bytes_:,}  misses {cache.cache_miss:,}  "
        f"overflow {cache.overflow:,}"
    )
    ratio = delta.ram.transferred / plain.ram.transferred
    print(f"ratio : {ratio:.3f} (target <= 0.3)")
    encode_mb_s, decode_mb_s = codec_speed(args.bytes)
    print(
        f"codec : encode {encode_mb_s:,.0f} MB/s, decode {decode_mb_s:,.0f} MB/s of "
        f"pages ({args.bytes} changed bytes per page, batches of 1024 pages)"
    )


def codec_speed(nbytes: int) -> tuple[float, float]:
    """Page throughput of the XBZRLE encoder and decoder alone (best of 5)."""
    rng = np.random.default_rng(7)
    old = rng.integers(0, 256, (1024, PAGE), dtype=np.uint8)
    new = old.copy()
    offsets = rng.integers(0, PAGE - nbytes, 1024)
    new[np.arange(1024)[:, None], offsets[:, None] + np.arange(nbytes)] ^= 0x5A
    lengths, data = encode_pages(old, new)
    base = old.copy()
    encode = min(_timed(lambda: encode_pages(old, new)) for _ in range(5))
    decode = min(_timed(lambda: decode_pages(base, lengths, data)) for _ in range(5))
    return old.nbytes / encode / 1e6, old.nbytes / decode / 1e6


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
