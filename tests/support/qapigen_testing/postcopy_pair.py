"""A postcopy migration between two engines in one process: a busy source and a
running destination, both with postcopy-ram, and the switch to postcopy."""

from __future__ import annotations

from qapigen_testing.vm_engine import MIB, Factory, Vm


def postcopy_pair(
    vms: Factory,
    *,
    size: int = 8 * MIB,
    postcopy_bandwidth: int = 0,
    guest_rate: int = 0,
    source_caps: tuple[str, ...] = (),
) -> tuple[Vm, Vm]:
    """A running destination (optionally with a busy guest) and a busy source, both
    with postcopy-ram; precopy is slow (4 MiB/s) so most RAM is left for postcopy."""
    dst = vms.destination(size, start_paused=False)
    dst.engine.migrate_set_capabilities(
        [("postcopy-ram", True), ("postcopy-blocktime", True)]
    )
    if guest_rate:
        # a quarter of the RAM: requests alone never finish the transfer early
        dst.engine.start_workload(
            rate=guest_rate,
            pages=size // 4096 // 4,
            pattern="random",
            seed=11,
            bytes_per_page=8,
        )
    src = vms.source(size)
    src.engine.migrate_set_capabilities(
        [("postcopy-ram", True)] + [(cap, True) for cap in source_caps]
    )
    src.engine.migrate_set_parameters(
        {"max-bandwidth": 4 * MIB, "max-postcopy-bandwidth": postcopy_bandwidth}
    )
    src.engine.start_workload(rate=5000, first_page=512, pages=256, seed=3)
    return src, dst


def start_postcopy(src: Vm, uri: str) -> None:
    src.engine.migrate(uri)
    src.engine.migrate_start_postcopy()
