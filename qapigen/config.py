"""`[tool.qapigen]`: what a project generates, from its pyproject.toml.

`qapigen generate` without a SCHEMA regenerates every target listed here, so a project
(this one included) keeps all its bindings current with one bare command. One target:

    [tool.qapigen]
    schema = "schema/migration.json"
    output = "generated/qapigen_migration"

Several targets, one array-of-tables entry each (nothing else in [tool.qapigen] then):

    [[tool.qapigen.targets]]
    schema = "schema/migration.json"
    output = "generated/qapigen_migration"

    [[tool.qapigen.targets]]
    schema = "schema/qapigen-vm.json"
    output = "generated/qapigen_vm_qmp"

Keys: `schema` (required), `output`, `package`, `qapi-version` (see target.py for how
output and package go together), `optional` (true for a schema that lives outside the
project and may be absent, as QEMU's own schemas do: where it is absent, `generate` and
`generate --check` say that they skip the target, and leave its committed package as it
is; where it is there, the target is generated and checked as any other). Paths are relative to the pyproject.toml's folder,
the project folder, and an output must stay inside it: a pyproject.toml (maybe of a
repository just cloned) never makes qapigen write elsewhere. The project's pyproject.toml
is the nearest one from the working folder up to the repository's root (the nearest
folder holding `.git`); outside a repository, only the working folder's counts.

Every mistake is a ConfigError whose text names the file (with the line where the
table or key is found), the target and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .level import Level
from .target import Target, TargetError, resolve_target

PYPROJECT = "pyproject.toml"
REPOSITORY_MARKER = ".git"
QAPI_VERSIONS = tuple(lv.value for lv in Level if lv is not Level.PERMISSIVE)

_KEYS = ("schema", "output", "package", "qapi-version", "optional")
_FLAGS = ("optional",)
_SINGLE = "[tool.qapigen]"
_SEVERAL = "[[tool.qapigen.targets]]"
_SINGLE_HEADER = re.compile(r"\s*\[\s*tool\s*\.\s*qapigen\s*\]")
_SEVERAL_HEADER = re.compile(r"\s*\[\[\s*tool\s*\.\s*qapigen\s*\.\s*targets\s*\]\]")
_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)


class ConfigError(Exception):
    """A `[tool.qapigen]` that cannot be used; the text says where and why."""


@dataclass(frozen=True)
class Project:
    pyproject: Path
    targets: tuple[Target, ...]  # empty when the file has no [tool.qapigen]


def _searched_folders(start: Path) -> list[Path]:
    folders = [start, *start.parents]
    for index, folder in enumerate(folders):
        if (folder / REPOSITORY_MARKER).exists():
            return folders[: index + 1]
    return [start]


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above `start`, up to the repository's root
    (the nearest folder holding `.git`); outside a repository, only `start`'s own."""
    for folder in _searched_folders(start):
        candidate = folder / PYPROJECT
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class _Entry:
    """One target's table, and how to name it in a message."""

    table: object
    label: str  # "[tool.qapigen]" or "[[tool.qapigen.targets]] entry N"
    header: re.Pattern[str]
    index: int  # which match of `header` in the file


class _Reader:
    """Reads the targets of one pyproject.toml, and locates what is wrong in it."""

    def __init__(self, pyproject: Path, shown: str, text: str) -> None:
        self.pyproject = pyproject
        self.shown = shown  # the file's name in messages
        self.lines = text.splitlines()

    def _line(self, entry: _Entry | None, key: str | None) -> int | None:
        """Where `key` of `entry` is written (or the entry's header), if found."""
        if entry is None:
            return None
        starts = [n for n, line in enumerate(self.lines) if entry.header.match(line)]
        if entry.index >= len(starts):
            return None
        start = starts[entry.index]
        if key is not None:
            assignment = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
            for number in range(start + 1, len(self.lines)):
                if self.lines[number].lstrip().startswith("["):
                    break
                if assignment.match(self.lines[number]):
                    return number + 1
        return start + 1

    def error(self, entry: _Entry | None, key: str | None, message: str) -> ConfigError:
        line = self._line(entry, key)
        where = f"{self.shown}:{line}" if line is not None else self.shown
        parts = [where] + ([entry.label] if entry else []) + ([key] if key else [])
        return ConfigError(": ".join([*parts, message]))

    def entries(self, table: dict[str, object]) -> list[_Entry]:
        if "targets" not in table:
            return [_Entry(table, _SINGLE, _SINGLE_HEADER, 0)]
        single = _Entry(table, _SINGLE, _SINGLE_HEADER, 0)
        beside = sorted(set(table) - {"targets"})
        if beside:
            raise self.error(
                single,
                beside[0],
                f"with several targets, give {', '.join(beside)} in each {_SEVERAL}"
                " entry",
            )
        targets = table["targets"]
        if not isinstance(targets, list) or not targets:
            raise self.error(
                single,
                "targets",
                f"must be an array of tables, one {_SEVERAL} per target",
            )
        return [
            _Entry(value, f"{_SEVERAL} entry {number}", _SEVERAL_HEADER, number - 1)
            for number, value in enumerate(targets, 1)
        ]

    def target(self, entry: _Entry) -> Target:
        if not isinstance(entry.table, dict):
            raise self.error(entry, None, "must be a table of schema, output, ...")
        table: dict[str, object] = entry.table
        for key in table:
            if key not in _KEYS:
                raise self.error(entry, key, f"unknown key (known: {', '.join(_KEYS)})")
        for key, value in table.items():
            if key in _FLAGS:
                if not isinstance(value, bool):
                    raise self.error(entry, key, "must be true or false")
            elif not isinstance(value, str):
                raise self.error(entry, key, "must be a string")
        values: dict[str, str] = {k: v for k, v in table.items() if isinstance(v, str)}
        optional = table.get("optional") is True
        if "schema" not in values:
            raise self.error(
                entry, "schema", "missing: the QAPI schema to generate from"
            )
        version = values.get("qapi-version")
        if version is not None and version not in QAPI_VERSIONS:
            raise self.error(
                entry,
                "qapi-version",
                f"{version!r} is not one of {', '.join(QAPI_VERSIONS)}",
            )
        output = values.get("output")
        if output is not None and Path(output).is_absolute():
            raise self.error(
                entry, "output", "must be relative to the project folder, not absolute"
            )
        base = self.pyproject.parent
        try:
            target = resolve_target(
                base / values["schema"],
                None if output is None else base / output,
                values.get("package"),
                version,
                base,
            )
        except TargetError as error:
            raise self.error(entry, error.key, error.message) from None
        real = target.output.resolve()
        root = base.resolve()
        if real == root or root not in real.parents:
            # Symbolic links resolved: a pyproject.toml never sends writes elsewhere.
            raise self.error(
                entry,
                "output",
                f"{output or target.package!r} is not a folder inside the project"
                " folder (a pyproject.toml only generates into its own project)",
            )
        return Target(
            target.schema, real, target.package, target.qapi_version, optional
        )

    def check_apart(self, entries: list[_Entry], targets: list[Target]) -> None:
        """No two targets write the same folder, or one inside another's."""
        for later in range(len(targets)):
            for earlier in range(later):
                a, b = targets[earlier].output, targets[later].output
                if a == b or a in b.parents or b in a.parents:
                    raise self.error(
                        entries[later],
                        "output",
                        f"overlaps the output of {entries[earlier].label}: each "
                        "target needs a folder of its own",
                    )


def load_project(pyproject: Path, shown: str | None = None) -> Project:
    """The targets `pyproject` lists (none when it has no [tool.qapigen]); `shown`
    names the file in messages (default: its path)."""
    name = shown or str(pyproject)
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"{name}: cannot read: {reason}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        located = _TOML_POSITION.match(str(error))
        if located is None:
            raise ConfigError(f"{name}: {error}") from None
        message, line, column = located.groups()
        raise ConfigError(f"{name}:{line}:{column}: {message}") from None
    reader = _Reader(pyproject, name, text)
    tool = data.get("tool")
    table = tool.get("qapigen") if isinstance(tool, dict) else None
    if table is None:
        return Project(pyproject, ())
    if not isinstance(table, dict):
        raise reader.error(None, None, f"{_SINGLE} must be a table")
    entries = reader.entries(table)
    targets = [reader.target(entry) for entry in entries]
    reader.check_apart(entries, targets)
    return Project(pyproject, tuple(targets))
