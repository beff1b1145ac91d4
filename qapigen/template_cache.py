"""Jinja's compiled templates, kept between runs as Python keeps a module's bytecode.

Compiling the templates took each `generate` about a tenth of a second, as long as
reading half of QEMU's schema. Runs share the compiled code through a per-user folder
instead, `${XDG_CACHE_HOME:-~/.cache}/qapigen/templates/KEY` (never inside a project):
KEY digests everything compiled code depends on: qapigen's own code and templates (the
digest the stamp records, stamp.generator_digest), Jinja's version, the interpreter's
bytecode tag, the environment's syntax options and the names of its filters and
globals. Jinja also checks each file against its template's source. So an edited
template or generator gets a folder of its own (the few most recent are kept), and
output never depends on the cache: code loaded from it is the code compiling would give.

The cache fails soft: a folder that cannot be made, read or written, or that another
user could write into, means compiling as before. As with Python's own bytecode,
nothing is written when the interpreter is told not to (`PYTHONDONTWRITEBYTECODE`,
`sys.dont_write_bytecode`); what is there is still read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
from pathlib import Path

import jinja2
from jinja2.bccache import Bucket

from .stamp import generator_digest

# Key folders kept: one per version of qapigen in use (worktrees, virtualenvs), not one
# per edit ever made.
KEPT_FOLDERS = 8


class SoftBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache whose every failure to read or write means "not cached"."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        if sys.dont_write_bytecode:
            return
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass  # a full disk or a read-only folder: the next run compiles again


def cache_root() -> Path:
    """The per-user folder holding every key's compiled templates."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "qapigen" / "templates"


def cache_key(environment: jinja2.Environment) -> str:
    """What compiled template code depends on besides each template's own source."""
    parts = [
        generator_digest(),
        jinja2.__version__,
        sys.implementation.cache_tag or "",
        repr(
            (
                environment.block_start_string,
                environment.block_end_string,
                environment.variable_start_string,
                environment.variable_end_string,
                environment.comment_start_string,
                environment.comment_end_string,
                environment.line_statement_prefix,
                environment.line_comment_prefix,
                environment.trim_blocks,
                environment.lstrip_blocks,
                environment.newline_sequence,
                environment.keep_trailing_newline,
                environment.autoescape,
                environment.optimized,
                sorted(environment.extensions),
                sorted(environment.filters),
                sorted(environment.tests),
                sorted(environment.globals),
            )
        ),
    ]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:24]


def _is_private(folder: Path) -> bool:
    """Whether `folder` is a directory of this user's that no one else can write into
    (code loaded from it is run)."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _made_at(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another run's pruning
        return 0.0


def _prune(root: Path, keep: int) -> None:
    """Remove all but the `keep` most recently made key folders of `root`."""
    try:
        folders = [path for path in root.iterdir() if not path.is_symlink()]
    except OSError:
        return
    folders.sort(key=_made_at, reverse=True)
    for old in folders[keep:]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _make(folder: Path, root: Path) -> bool:
    """Make `folder` (and prune old ones beside it); False when nothing may be written
    or it cannot be."""
    if sys.dont_write_bytecode:
        return False
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    _prune(root, keep=KEPT_FOLDERS)
    return True


def bytecode_cache(environment: jinja2.Environment) -> SoftBytecodeCache | None:
    """The compiled-template cache for `environment`, or None when there is no
    private folder to keep it in."""
    root = cache_root()
    folder = root / cache_key(environment)
    if not folder.is_dir() and not _make(folder, root):
        return None
    if not (_is_private(root) and _is_private(folder)):
        return None
    return SoftBytecodeCache(str(folder), "%s.cache")
