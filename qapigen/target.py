"""One thing `qapigen generate` makes: a schema, the package folder, its import name.

The same rules hold on the command line and in `[tool.qapigen]`:

- the package's import name is its folder's name (Python imports a package by its
  folder's name), so `package` and the last part of `output` must agree;
- with only `package`, the folder is `PACKAGE` in the base folder (the working folder,
  or the project's folder for pyproject.toml);
- with neither, the folder is named after the schema file, dashes and dots made
  underscores (`qapi-schema.json` -> `qapi_schema`);
- the name must be a Python identifier, not a keyword, and not the name of a standard
  library module (a package called `types` would hide the one Python itself needs).
"""

from __future__ import annotations

import keyword
import os
import sys
from dataclasses import dataclass
from pathlib import Path


class TargetError(Exception):
    """A target that cannot be generated; `key` names the setting at fault ("schema",
    "output", "package" or "qapi-version")."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Target:
    schema: Path
    output: Path  # the package folder
    package: str  # its import name: the folder's name
    qapi_version: str | None = None
    # the schema may be absent (it lives outside the project): then skip, saying so
    optional: bool = False


def package_name_problem(name: str) -> str | None:
    """Why `name` cannot be a package's import name, or None when it can."""
    if not name.isidentifier():
        return f"{name!r} is not a Python identifier"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword"
    if name in sys.stdlib_module_names:
        return f"{name!r} would hide the standard library's module of that name"
    return None


def _folder_name(folder: Path) -> str:
    # `-o .` names the working folder: its own name, not "".
    return Path(os.path.abspath(folder)).name


def resolve_target(
    schema: Path,
    output: Path | None,
    package: str | None,
    qapi_version: str | None,
    base: Path,
) -> Target:
    """The target these settings describe; TargetError naming the key at fault."""
    if package is not None:
        problem = package_name_problem(package)
        if problem is not None:
            raise TargetError("package", problem)
    if output is None:
        if package is None:
            stem = schema.name.removesuffix(".json")
            package = stem.replace("-", "_").replace(".", "_")
            problem = package_name_problem(package)
            if problem is not None:
                raise TargetError(
                    "schema",
                    f"the package would be named after {schema.name}, but {problem};"
                    " name the package (or its output folder)",
                )
        return Target(schema, base / package, package, qapi_version)
    name = _folder_name(output)
    if package is None:
        problem = package_name_problem(name)
        if problem is not None:
            raise TargetError(
                "output",
                f"a package is imported by its folder's name, and {problem}",
            )
        package = name
    elif package != name:
        raise TargetError(
            "package",
            f"{package!r} differs from the output folder's name {name!r}, and a "
            f"package is imported by its folder's name: make the output folder "
            f"end in {package!r} (or leave package out)",
        )
    return Target(schema, output, package, qapi_version)
