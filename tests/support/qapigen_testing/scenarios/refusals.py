"""Commands an idle VM refuses: bad parameters, capability conflicts, commands in
the wrong state, malformed requests."""

from __future__ import annotations

from qapigen_migration.types import MigrateSetParameters, MigrationCapabilityStatus
from qapigen_migration.types import MigrationCapability as Cap
from qapigen_migration.types import MigrationStatus as St

from .session import Run

BAD_PARAMETERS: tuple[tuple[str, MigrateSetParameters], ...] = (
    ("compress-level 99", MigrateSetParameters(compress_level=99)),
    ("compress-level 265", MigrateSetParameters(compress_level=265)),
    ("compress-threads 0", MigrateSetParameters(compress_threads=0)),
    ("decompress-threads 0", MigrateSetParameters(decompress_threads=0)),
    ("multifd-channels 0", MigrateSetParameters(multifd_channels=0)),
    ("cpu-throttle-initial 0", MigrateSetParameters(cpu_throttle_initial=0)),
    ("cpu-throttle-increment 100", MigrateSetParameters(cpu_throttle_increment=100)),
    ("max-cpu-throttle 100", MigrateSetParameters(max_cpu_throttle=100)),
    ("max-cpu-throttle 10", MigrateSetParameters(max_cpu_throttle=10)),
    (
        "throttle-trigger-threshold 0",
        MigrateSetParameters(throttle_trigger_threshold=0),
    ),
    ("downtime-limit 3000000", MigrateSetParameters(downtime_limit=3_000_000)),
    ("xbzrle-cache-size 1000", MigrateSetParameters(xbzrle_cache_size=1000)),
    ("xbzrle-cache-size 12288", MigrateSetParameters(xbzrle_cache_size=12288)),
    ("multifd-zlib-level 10", MigrateSetParameters(multifd_zlib_level=10)),
    ("multifd-zstd-level 21", MigrateSetParameters(multifd_zstd_level=21)),
    ("announce-initial 100001", MigrateSetParameters(announce_initial=100_001)),
    ("announce-rounds 1001", MigrateSetParameters(announce_rounds=1001)),
    ("announce-step 0", MigrateSetParameters(announce_step=0)),
    (
        "first bad wins",
        MigrateSetParameters(compress_level=10, multifd_channels=0),
    ),
)


async def parameter_errors(run: Run) -> None:
    """Each bad value is refused with its text and leaves the parameters unchanged;
    good values are taken."""
    src = run.source
    await run.parameters("defaults", src)
    for label, arguments in BAD_PARAMETERS:
        await run.attempt(label, src.qmp.migrate_set_parameters(arguments))
    await run.parameters("after refusals", src)
    await run.attempt(
        "good values",
        src.qmp.migrate_set_parameters(
            MigrateSetParameters(
                downtime_limit=500,
                max_bandwidth=1 << 30,
                cpu_throttle_initial=30,
                xbzrle_cache_size=1 << 20,
                multifd_channels=4,
            )
        ),
    )
    await run.parameters("after good values", src)


def _caps(*pairs: tuple[Cap, bool]) -> list[MigrationCapabilityStatus]:
    return [MigrationCapabilityStatus(capability=c, state=s) for c, s in pairs]


async def capability_errors(run: Run) -> None:
    src = run.source
    await run.capabilities("defaults", src)
    await run.attempt(
        "unknown capability",
        src.qmp.migrate_set_capabilities(
            capabilities=_caps((Cap.from_wire("no-such-capability"), True))
        ),
    )
    for label, caps in (
        ("multifd with compress", _caps((Cap.MULTIFD, True), (Cap.COMPRESS, True))),
        (
            "postcopy with compress",
            _caps((Cap.POSTCOPY_RAM, True), (Cap.COMPRESS, True)),
        ),
        (
            "postcopy with x-ignore-shared",
            _caps((Cap.POSTCOPY_RAM, True), (Cap.X_IGNORE_SHARED, True)),
        ),
    ):
        await run.attempt(label, src.qmp.migrate_set_capabilities(capabilities=caps))
    await run.capabilities("after refusals", src)
    await run.attempt(
        "compress alone",
        src.qmp.migrate_set_capabilities(capabilities=_caps((Cap.COMPRESS, True))),
    )
    # The check runs on the old set merged with the request: multifd now conflicts.
    await run.attempt(
        "multifd after compress",
        src.qmp.migrate_set_capabilities(capabilities=_caps((Cap.MULTIFD, True))),
    )
    await run.attempt(
        "good set",
        src.qmp.migrate_set_capabilities(
            capabilities=_caps(
                (Cap.COMPRESS, False),
                (Cap.XBZRLE, True),
                (Cap.EVENTS, True),
                (Cap.AUTO_CONVERGE, True),
            )
        ),
    )
    await run.capabilities("after good set", src)


async def state_errors(run: Run) -> None:
    """Commands that need a migration (or a destination) in some state."""
    src, dst = run.source, run.destination
    await run.attempt(
        "migrate-continue idle", src.qmp.migrate_continue(state=St.PRE_SWITCHOVER)
    )
    await run.attempt("migrate-pause idle", src.qmp.migrate_pause())
    await run.attempt(
        "migrate-recover on a source", src.qmp.migrate_recover(uri="tcp:127.0.0.1:1")
    )
    await run.attempt(
        "migrate-incoming without -incoming",
        src.qmp.migrate_incoming(uri="tcp:127.0.0.1:0"),
    )
    await run.attempt(
        "migrate-start-postcopy without capability", src.qmp.migrate_start_postcopy()
    )
    await run.attempt("migrate_cancel idle", src.qmp.migrate_cancel())
    await run.attempt(
        "postcopy-ram on",
        src.qmp.migrate_set_capabilities(capabilities=_caps((Cap.POSTCOPY_RAM, True))),
    )
    await run.attempt(
        "migrate-start-postcopy before migrate", src.qmp.migrate_start_postcopy()
    )
    await run.query("source after", src)
    # A destination waiting for its stream (-incoming defer) is not a source.
    await run.attempt(
        "migrate on a destination",
        dst.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}"),
    )
    await run.run_state("destination run state", dst)


async def malformed_requests(run: Run) -> None:
    """Requests the typed client cannot even express (it rejects them before
    sending), sent raw to see each peer's own refusal."""
    src = run.source
    requests: tuple[tuple[str, str, dict[str, object] | None], ...] = (
        ("unknown command", "nonexistent", None),
        ("unknown argument", "query-migrate", {"bogus": 1}),
        ("uri not a string", "migrate", {"uri": 5}),
        ("missing uri", "migrate", {}),
        ("state not in the enum", "migrate-continue", {"state": "bogus"}),
        ("value not a number", "migrate-set-parameters", {"downtime-limit": "x"}),
        ("negative size", "migrate-set-parameters", {"max-bandwidth": -1}),
        (
            "capability list of strings",
            "migrate-set-capabilities",
            {"capabilities": ["events"]},
        ),
    )
    for label, name, arguments in requests:
        await run.attempt(label, src.transport.execute(name, arguments))
