"""The console scripts qapigen-vm and qapigen-migrate, behind the extras they need.

The reference VM needs numpy (guest RAM), which comes with ``pip install
'qapigen[vm]'``, not with the base install that generator and runtime users get. Run
without it, a command prints one line that names the missing module and the install
command, and exits 1, instead of a traceback from deep in an import. Each script
imports its command only here, inside that guard.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Final, TextIO, cast

EXTRA_OF_MODULE: Final = {"numpy": "vm", "zstandard": "vm", "matplotlib": "plot"}
"""The optional dependencies, by top-level module, and the extra that installs each
(pyproject.toml's [project.optional-dependencies]; a test keeps the two in step)."""


def missing_extra_line(program: str, error: ModuleNotFoundError) -> str | None:
    """The line to print when `error` is an extra's module missing, else None."""
    module = (error.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (
        f"{program}: needs {module}, which is not installed: "
        f"pip install 'qapigen[{extra}]'"
    )


def run_command(
    program: str, module: str, function: str = "main", stderr: TextIO | None = None
) -> int:
    """Import `module`, run its `function` (the command; returns its exit status)."""
    try:
        command = cast(
            Callable[[], int], getattr(importlib.import_module(module), function)
        )
        return command()
    except ModuleNotFoundError as error:
        line = missing_extra_line(program, error)
        if line is None:
            raise
        print(line, file=stderr or sys.stderr)
        return 1


def qapigen_vm() -> int:
    """The ``qapigen-vm`` console script."""
    return run_command("qapigen-vm", "qapigen_vm.main")


def qapigen_migrate() -> int:
    """The ``qapigen-migrate`` console script (needs no more than the base install;
    --plot needs the [plot] extra, which the command itself checks)."""
    return run_command("qapigen-migrate", "qapigen_vm.tools.migrate")
