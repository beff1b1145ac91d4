"""The stamp an output folder keeps: what qapigen wrote there, and what it was made from.

`qapigen generate` leaves `.qapigen-stamp.json` beside the files it writes. It has two uses:

- **The record of what qapigen owns.** `outputs` lists every file the last generation
  wrote, with its digest. The next generation replaces or removes only files it can vouch
  for this way (see ownership.py), never a hand-written file that happens to sit there.
- **A cache.** Digests of what went in (every schema file read, the generator's own code
  and templates, the options) let a run with nothing to do stop before the front end and
  the templates run.

The stamp is local, not part of the package: `--check` does not write it, version control
ignores it (`.gitignore`), and a missing or unreadable stamp means a full run that replaces
only files carrying qapigen's header. Paths in it are relative to the output folder, so it
does not depend on the working folder and holds no machine paths.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

from .template_folder import templates_folder

STAMP_NAME = ".qapigen-stamp.json"
_FORMAT = 2


def file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def text_digest(text: str) -> str:
    return bytes_digest(text.encode("utf-8"))


_READ_NO_FOLLOW = (
    os.O_RDONLY
    | os.O_NONBLOCK  # a FIFO in the way must not block the open
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def read_regular_file(path: Path, limit: int = -1) -> bytes | None:
    """The bytes of `path` (at most `limit` of them, if given) when it is a regular
    file; None when it is absent, a symbolic link (never followed) or anything else.
    Other failures raise OSError."""
    try:
        fd = os.open(path, _READ_NO_FOLLOW)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
            return None
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return file.read(limit)


def regular_file_bytes(path: Path) -> bytes | None:
    """As `read_regular_file`, with any failure read as None (for the stamp's cache)."""
    try:
        return read_regular_file(path)
    except OSError:
        return None


def regular_file_digest(path: Path) -> str | None:
    """The digest of `path` when it is a regular file (a symbolic link is not)."""
    data = regular_file_bytes(path)
    return None if data is None else bytes_digest(data)


@cache
def generator_digest() -> str:
    """A digest of the generator's code and templates: output depends on nothing else."""
    digest = hashlib.sha256()
    roots = [Path(__file__).parent, templates_folder()]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".j2") and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Provenance:
    """What a generation was made from: its options (schema, package, qapi-version) and
    every schema file it read. Without one, a stamp still records the outputs, but
    never lets a later run skip work."""

    options: dict[str, str] = field(default_factory=dict)
    inputs: Sequence[Path] = ()


@dataclass(frozen=True)
class Stamp:
    generator: str
    options: dict[str, str]
    inputs: dict[str, str]  # schema file, relative to the output folder -> digest
    outputs: dict[str, str]  # file relative to the output folder -> digest


def _relative_to(path: Path, folder: Path) -> str:
    return Path(
        os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    ).as_posix()


def make_stamp(
    files: Mapping[str, str], folder: Path, provenance: Provenance | None
) -> Stamp:
    """The stamp for `files` written into `folder`."""
    made_from = provenance or Provenance()
    return Stamp(
        generator=generator_digest() if provenance is not None else "",
        options=dict(made_from.options),
        inputs={
            _relative_to(path, folder): file_digest(path) or ""
            for path in made_from.inputs
        },
        outputs={name: text_digest(text) for name, text in files.items()},
    )


def stamp_bytes(stamp: Stamp) -> bytes:
    data = {"format": _FORMAT, **asdict(stamp)}
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8")


def is_safe_relative(name: str) -> bool:
    """True for a plain path inside a folder: relative, no '..', no empty parts."""
    if not name or "\\" in name or "\0" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and all(
        part not in ("", ".", "..") for part in name.split("/")
    )


def _string_map(value: object) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return value


def read_stamp(folder: Path) -> Stamp | None:
    """The stamp in `folder`, or None when it is missing, unreadable, of another format,
    or lists a path outside the folder (then it vouches for nothing)."""
    raw = regular_file_bytes(folder / STAMP_NAME)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    generator = data.get("generator")
    maps = [_string_map(data.get(key)) for key in ("options", "inputs", "outputs")]
    options, inputs, outputs = maps
    if not isinstance(generator, str) or options is None or inputs is None:
        return None
    if outputs is None or not all(is_safe_relative(name) for name in outputs):
        return None
    return Stamp(generator, options, inputs, outputs)


def python_files(folder: Path, paths: Iterable[str]) -> set[str]:
    """The `.py` files (relative, '/'-separated) in `folder` and in the subfolders
    that hold any of `paths`: where a package's modules are, not the whole tree below
    (an output folder may sit above a great deal). Links are not followed."""
    found: set[str] = set()
    subfolders = {PurePosixPath(path).parent for path in paths} | {PurePosixPath(".")}
    for subfolder in sorted(subfolders):
        try:
            entries = list(os.scandir(folder / subfolder))
        except OSError:
            continue
        found.update(
            (subfolder / entry.name).as_posix()
            for entry in entries
            if entry.name.endswith(".py") and not entry.is_dir(follow_symlinks=False)
        )
    return found


def is_current(folder: Path, options: Mapping[str, str]) -> bool:
    """True when `folder` holds exactly what generating with `options` would write."""
    stamp = read_stamp(folder)
    if stamp is None or stamp.options != options or not stamp.generator:
        return False
    if stamp.generator != generator_digest():
        return False
    if any(
        file_digest(folder / name) != digest for name, digest in stamp.inputs.items()
    ):
        return False
    # A module that is there but was not generated (hand-written, or left from an
    # earlier generation without a stamp): a real run decides what to say about it.
    if python_files(folder, stamp.outputs) - set(stamp.outputs):
        return False
    return all(
        regular_file_digest(folder / name) == digest
        for name, digest in stamp.outputs.items()
    )
