"""Generated packages written into a scratch folder and imported for as long as a test
(or a bench) needs them.

This is the one place where the suite and the benches put a folder on ``sys.path``:
generated packages are not installed, so their folder has to be there while they are
imported. On the way out the folder leaves ``sys.path`` and the package leaves
``sys.modules``, so that nothing a later test imports can come from it.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

from qapigen.generate import write_package


class PackageNameInUse(RuntimeError):
    """A package of that name is imported already: importing the new one under the
    same name would silently give the old one."""


@contextlib.contextmanager
def imported_package(
    files: Mapping[str, str], root: Path, name: str
) -> Iterator[ModuleType]:
    """Write ``files`` (as `generate_package` returns them) as the package ``name``
    in ``root``, and yield it imported; its submodules import as usual meanwhile."""
    if _modules_of(name):
        raise PackageNameInUse(
            f"a package named {name!r} is imported already; give this one another name"
        )
    write_package(dict(files), root / name)
    entry = str(root)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()  # root may have been listed before the package was
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(entry)
        for module in _modules_of(name):
            del sys.modules[module]


def _modules_of(name: str) -> list[str]:
    """The package ``name`` and its submodules, as far as they are imported."""
    return [
        module
        for module in sys.modules
        if module == name or module.startswith(f"{name}.")
    ]
