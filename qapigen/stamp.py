"""Skip regeneration when nothing it depends on has changed.

`qapigen generate` runs in builds and editor hooks, usually with nothing to do. After a
generation it leaves a stamp in the output folder recording digests of what went in (every
schema file read, the generator's own code and templates, the options) and of what came
out. The next run compares those digests with the files on disk; if all match, the output
is what this generator would write, so the front end and the templates need not run.

The stamp is a local cache, not part of the package: it is not written by `--check`, it is
ignored by version control (`.gitignore`), and a missing or unreadable stamp only means the
full pipeline runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from .template_folder import templates_folder

STAMP_NAME = ".qapigen-stamp.json"
_FORMAT = 1


def file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


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
class Stamp:
    generator: str
    options: dict[str, str]
    inputs: dict[str, str]  # schema file as read -> digest
    outputs: dict[str, str]  # path relative to the output folder -> digest


def make_stamp(
    options: dict[str, str], input_files: list[str], outputs: dict[str, str]
) -> Stamp:
    return Stamp(
        generator=generator_digest(),
        options=options,
        inputs={name: file_digest(Path(name)) or "" for name in input_files},
        outputs={
            name: hashlib.sha256(text.encode("utf-8")).hexdigest()
            for name, text in outputs.items()
        },
    )


def write_stamp(folder: Path, stamp: Stamp) -> None:
    data = {"format": _FORMAT, **asdict(stamp)}
    (folder / STAMP_NAME).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _read_stamp(folder: Path) -> Stamp | None:
    try:
        data = json.loads((folder / STAMP_NAME).read_text())
        if data.pop("format") != _FORMAT:
            return None
        return Stamp(**data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def is_current(folder: Path, options: dict[str, str]) -> bool:
    """True when `folder` holds exactly what generating with `options` would write."""
    stamp = _read_stamp(folder)
    if stamp is None or stamp.options != options:
        return False
    if stamp.generator != generator_digest():
        return False
    if any(file_digest(Path(name)) != digest for name, digest in stamp.inputs.items()):
        return False
    # A module that is there but was not generated (left from another schema) would be
    # removed by a real run.
    on_disk = {path.relative_to(folder).as_posix() for path in folder.rglob("*.py")}
    if on_disk - set(stamp.outputs):
        return False
    return all(
        file_digest(folder / name) == digest for name, digest in stamp.outputs.items()
    )
