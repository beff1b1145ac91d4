"""Replace a set of files in a folder all at once, or not at all.

Every new file is first written in full to a temporary name beside its target; only
when all of them are written are they renamed into place. Writing is where things fail
(a full disk, a quota, a file size limit, an I/O error); a rename within one folder
needs no space, so once the writing has succeeded the renames complete. On a failure
while writing, the temporary files (and the folders this call created) are removed
and the folder is as it was. Temporary files are created with O_EXCL and O_NOFOLLOW,
so they never write through a link someone left in the way.

Files are not fsync'ed: the aim is that a failed run leaves the old files intact, and
a failed write is reported by write() or close(); surviving a power cut mid-run would
cost a disk flush per file on every generation.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

_CREATE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
TEMP_SUFFIX = ".qapigen-tmp"


def _located(error: OSError, path: Path, action: str) -> OSError:
    """`error` again, naming the file the user knows (not a temporary one)."""
    reason = f"{action}: {error.strerror or error}"
    return OSError(error.errno, reason, str(path))


def make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created, outermost first."""
    missing: list[Path] = []
    current = folder
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    created: list[Path] = []
    try:
        for path in reversed(missing):
            os.mkdir(path)
            created.append(path)
    except OSError as error:
        remove_folders(created)
        raise _located(error, folder, "cannot create the folder") from None
    return created


def remove_folders(created: list[Path]) -> None:
    """Remove folders `make_folders` created, innermost first, if they are empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            pass


def _fill(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (a partial write continues where it stopped)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_temporary(target: Path, data: bytes) -> Path:
    """Write `data` to a new temporary file beside `target`; return its path."""
    while True:
        temporary = target.with_name(
            f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        )
        try:
            fd = os.open(temporary, _CREATE, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as error:
            raise _located(error, target, "cannot write") from None
    try:
        try:
            _fill(fd, data)
        finally:
            os.close(fd)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _located(error, target, "cannot write") from None
        raise
    return temporary


def replace_files(
    folder: Path,
    contents: Mapping[str, bytes],
    remove: Iterable[str] = (),
    record: tuple[str, bytes] | None = None,
) -> None:
    """Make `folder` hold `contents` (path relative to it -> bytes) and no longer hold
    `remove`, with every new file written in full before any is renamed into place.

    `record` (a path and its bytes), written with the others, is renamed last, after the
    removals, so a record of what is in the folder never runs ahead of the folder.
    """
    created = make_folders(folder)
    pending: list[tuple[Path, Path]] = []  # (temporary, target), renamed in this order
    try:
        try:
            for relative, data in [*contents.items(), *([record] if record else [])]:
                target = folder / relative
                created += make_folders(target.parent)
                pending.append((_write_temporary(target, data), target))
        except BaseException:
            _discard(pending)
            remove_folders(created)
            raise
        for _ in range(len(contents)):
            os.replace(*pending[0])
            pending.pop(0)
        for relative in remove:
            (folder / relative).unlink(missing_ok=True)
        while pending:  # the record
            os.replace(*pending[0])
            pending.pop(0)
    finally:
        _discard(pending)


def _discard(pending: list[tuple[Path, Path]]) -> None:
    """Remove temporary files that were not renamed into place."""
    while pending:
        temporary, _ = pending.pop()
        temporary.unlink(missing_ok=True)
