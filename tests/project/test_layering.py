"""Dependencies run one way: reference VM -> generated packages -> runtime library.

Read from the code's own import statements (every `import` and `from ... import`,
function-level ones included): the runtime imports no generated package, no VM and not
the generator; a generated package imports only the standard library, the runtime and
itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from qapigen_testing.paths import REPO

RUNTIME = REPO / "runtime" / "qapigen_runtime"
GENERATED = sorted(
    p for p in (REPO / "generated").iterdir() if (p / "__init__.py").exists()
)
GENERATED_NAMES = {p.name for p in GENERATED}


def imported_modules(folder: Path) -> Iterator[tuple[Path, int, str]]:
    """(file, line, top-level module) for every absolute import under `folder`."""
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, node.lineno, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.lineno, node.module.split(".")[0]


def test_the_runtime_imports_no_generated_package_no_vm_and_not_the_generator() -> None:
    forbidden = GENERATED_NAMES | {"qapigen_vm", "qapigen", "qapigen_testing"}
    found = [
        f"{path.relative_to(REPO)}:{line}: imports {module}"
        for path, line, module in imported_modules(RUNTIME)
        if module in forbidden
    ]
    assert found == []


def test_generated_packages_import_only_the_standard_library_and_the_runtime() -> None:
    assert {"qapigen_migration", "qapigen_vm_qmp"} <= GENERATED_NAMES
    allowed = set(sys.stdlib_module_names) | {"qapigen_runtime"}
    found = [
        f"{path.relative_to(REPO)}:{line}: imports {module}"
        for package in GENERATED
        for path, line, module in imported_modules(package)
        if module not in allowed
    ]
    assert found == []


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The check above cannot pass by missing imports: a function-level one counts."""
    (tmp_path / "m.py").write_text("def f():\n    import qapigen_vm.engine\n")
    assert [m for _, _, m in imported_modules(tmp_path)] == ["qapigen_vm"]


def test_a_blocking_program_does_not_import_asyncio() -> None:
    """A program that drives QEMU with the sync client pays for no event loop: the
    blocking client, the generated commands, types and events leave asyncio (and ssl,
    which asyncio pulls in) unimported."""

    probe = (
        "import sys\n"
        "import qapigen_migration.commands, qapigen_migration.events\n"
        "from qapigen_migration.types import MigrationParameters\n"
        "from qapigen_runtime.qmp import SyncQMPClient\n"
        "print(sorted(m for m in ('asyncio', 'ssl') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
