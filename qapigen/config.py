"""`[tool.qapigen]` settings from the nearest pyproject.toml.

The CLI's `generate` with no arguments takes schema, output folder and package name from
here, so a project (this one included) regenerates its bindings with a bare command.
Paths in the table are relative to the pyproject.toml that holds them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """A `[tool.qapigen]` table that cannot be used; the text says where and why."""


@dataclass(frozen=True)
class GenerateConfig:
    schema: Path | None = None
    output: Path | None = None
    package: str | None = None
    qapi_version: str | None = None


_KEYS = {"schema", "output", "package", "qapi-version"}


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_generate_config(start: Path) -> GenerateConfig:
    """Read `[tool.qapigen]` from the pyproject.toml at or above `start` (may be absent)."""
    pyproject = find_pyproject(start)
    if pyproject is None:
        return GenerateConfig()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read: {exc}") from None
    table = data.get("tool", {}).get("qapigen")
    if table is None:
        return GenerateConfig()
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.qapigen] must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{pyproject}: [tool.qapigen] has unknown key(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(_KEYS))})"
        )
    for key, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"{pyproject}: [tool.qapigen] {key} must be a string")
    base = pyproject.parent
    return GenerateConfig(
        schema=base / table["schema"] if "schema" in table else None,
        output=base / table["output"] if "output" in table else None,
        package=table.get("package"),
        qapi_version=table.get("qapi-version"),
    )
