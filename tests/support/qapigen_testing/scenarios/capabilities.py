"""The capabilities nothing else exercises: return-path, zero-blocks, block,
dirty-bitmaps, late-block-activate, x-ignore-shared and x-colo.

`capability_settings` sets each one alone on an idle VM (and back off), then the
combinations QEMU 7.2 checks, and `migrate` with the block options where a capability
makes QEMU refuse them. `precopy_with_capabilities` migrates with the ones that are
harmless on a guest without disks or shared memory (QEMU 7.2 completes those).
"""

from __future__ import annotations

from qapigen_migration.types import MigrationCapability as Cap
from qapigen_migration.types import MigrationCapabilityStatus

from .flows import finish_completed, start_with_events
from .session import Run, Side

RARE = (
    Cap.RETURN_PATH,
    Cap.ZERO_BLOCKS,
    Cap.BLOCK,
    Cap.DIRTY_BITMAPS,
    Cap.LATE_BLOCK_ACTIVATE,
    Cap.X_IGNORE_SHARED,
    Cap.X_COLO,
)
"""The capabilities this module is about, in the schema's order of the brief."""

HARMLESS = (
    Cap.RETURN_PATH,
    Cap.ZERO_BLOCKS,
    Cap.BLOCK,
    Cap.DIRTY_BITMAPS,
    Cap.LATE_BLOCK_ACTIVATE,
    Cap.X_IGNORE_SHARED,
)
"""Those a precopy of a disk-less guest with private RAM completes with: no disk to
copy (block, zero-blocks), no bitmap to send (dirty-bitmaps), no disk to activate
late, no shared RAM to skip (x-ignore-shared). x-colo is not harmless: it turns the
end of the migration into COLO checkpointing."""


async def _set(run: Run, label: str, side: Side, *pairs: tuple[Cap, bool]) -> bool:
    return await run.attempt(
        label,
        side.qmp.migrate_set_capabilities(
            capabilities=[
                MigrationCapabilityStatus(capability=c, state=s) for c, s in pairs
            ]
        ),
    )


async def capability_settings(run: Run) -> None:
    """Each capability alone, the combinations QEMU checks, and the block options of
    `migrate` that some capabilities exclude; every state read back."""
    src = run.source
    for cap in RARE:
        await _set(run, f"{cap.value} on", src, (cap, True))
        await run.capabilities(f"after {cap.value} on", src)
        await _set(run, f"{cap.value} off", src, (cap, False))
    await run.capabilities("after each alone", src)

    # QEMU checks the old set merged with the request, in either order.
    await _set(run, "x-ignore-shared first", src, (Cap.X_IGNORE_SHARED, True))
    await _set(run, "postcopy-ram after x-ignore-shared", src, (Cap.POSTCOPY_RAM, True))
    await _set(run, "x-ignore-shared back off", src, (Cap.X_IGNORE_SHARED, False))
    await _set(run, "postcopy-ram first", src, (Cap.POSTCOPY_RAM, True))
    await _set(
        run, "x-ignore-shared after postcopy-ram", src, (Cap.X_IGNORE_SHARED, True)
    )
    await _set(
        run,
        "x-ignore-shared with postcopy-ram off in one request",
        src,
        (Cap.POSTCOPY_RAM, False),
        (Cap.X_IGNORE_SHARED, True),
    )
    await run.capabilities("after the postcopy pairs", src)
    await _set(run, "x-ignore-shared off again", src, (Cap.X_IGNORE_SHARED, False))

    await _set(
        run,
        "all seven together",
        src,
        *((cap, True) for cap in RARE),
    )
    await run.capabilities("after all seven", src)
    await _set(run, "multifd with all seven", src, (Cap.MULTIFD, True))
    await _set(run, "xbzrle with all seven", src, (Cap.XBZRLE, True))
    await run.capabilities("after adding multifd and xbzrle", src)
    await _set(
        run,
        "all off",
        src,
        *((cap, False) for cap in (*RARE, Cap.MULTIFD, Cap.XBZRLE)),
    )

    # migrate's blk/inc options turn block migration on for one migration: QEMU
    # refuses them when the capability is already on, and in COLO mode. Both
    # refusals come before any connection, so nobody needs to listen.
    uri = f"tcp:127.0.0.1:{run.pair.site.port}"
    await _set(run, "block on for migrate", src, (Cap.BLOCK, True))
    await run.attempt("migrate blk with block on", src.qmp.migrate(uri=uri, blk=True))
    await run.attempt("migrate inc with block on", src.qmp.migrate(uri=uri, inc=True))
    await _set(run, "block off for migrate", src, (Cap.BLOCK, False))
    await _set(run, "x-colo on for migrate", src, (Cap.X_COLO, True))
    await run.attempt("migrate blk with x-colo on", src.qmp.migrate(uri=uri, blk=True))
    await run.query("source after refused migrates", src)
    await run.capabilities("at the end", src)


async def precopy_with_capabilities(run: Run) -> None:
    """A precopy with every harmless capability on, on both sides."""
    src, dst = run.source, run.destination
    await start_with_events(run)
    await _set(run, "source capabilities on", src, *((c, True) for c in HARMLESS))
    await _set(run, "destination capabilities on", dst, *((c, True) for c in HARMLESS))
    await run.capabilities("source capabilities", src)
    await run.capabilities("destination capabilities", dst)
    if not await run.attempt(
        "migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}")
    ):
        return
    await finish_completed(run)


async def precopy_with_return_path(run: Run) -> None:
    """return-path alone: the source opens the channel back from the destination
    and waits for its final word before it completes."""
    src, dst = run.source, run.destination
    await start_with_events(run)
    await _set(run, "source return-path on", src, (Cap.RETURN_PATH, True))
    await _set(run, "destination return-path on", dst, (Cap.RETURN_PATH, True))
    if not await run.attempt(
        "migrate", src.qmp.migrate(uri=f"tcp:127.0.0.1:{run.pair.site.port}")
    ):
        return
    await finish_completed(run)
