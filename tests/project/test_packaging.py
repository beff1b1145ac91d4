"""pyproject.toml ships every package: a wheel (not only the editable install) is complete,
and each package folder is named as it is imported."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
WHEEL = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]


def _package_folders() -> set[str]:
    """Folders (relative to the repository) holding a top-level package of ours."""
    found: set[str] = {"qapigen"}
    for root in ("runtime", "generated", "vm"):
        for init in (REPO / root).glob("*/__init__.py"):
            found.add(f"{root}/{init.parent.name}")
    return found


def test_every_package_folder_is_in_the_wheel() -> None:
    listed = set(WHEEL["only-include"]) - {"templates"}
    assert _package_folders() - listed == set(), "add these to only-include"
    assert listed - _package_folders() == set(), "these listed folders hold no package"


def test_each_folder_is_named_as_it_is_imported() -> None:
    for folder in _package_folders():
        name = folder.rsplit("/", 1)[-1]
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert Path(module.__file__).parent == REPO / folder, name


def test_console_scripts_point_at_existing_functions() -> None:
    for name, target in PYPROJECT["project"]["scripts"].items():
        module_name, _, function = target.partition(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, function)), name
