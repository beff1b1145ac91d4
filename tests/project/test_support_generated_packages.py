"""qapigen_testing.generated_packages: a generated package is imported from its
scratch folder while needed, and leaves no trace on sys.path or in sys.modules."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_testing.generated_packages import PackageNameInUse, imported_package

SCHEMA = """\
{ 'enum': 'Colour', 'data': [ 'red', 'green' ] }
{ 'struct': 'Paint', 'data': { 'colour': 'Colour', '*coats': 'int' } }
{ 'command': 'paint', 'data': 'Paint' }
"""
NAME = "support_probe_package"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    schema = tmp_path / "probe.json"
    schema.write_text(SCHEMA)
    return generate_package(load_schema(str(schema)), NAME, "probe.json")


def traces(root: Path) -> tuple[bool, list[str]]:
    """Whether root is on sys.path, and which modules of the package are imported."""
    modules = [m for m in sys.modules if m == NAME or m.startswith(f"{NAME}.")]
    return str(root) in sys.path, modules


def test_the_package_is_imported_from_the_folder_then_forgotten(
    tmp_path: Path, files: dict[str, str]
) -> None:
    root = tmp_path / "scratch"
    root.mkdir()
    with imported_package(files, root, NAME) as package:
        types = importlib.import_module(f"{NAME}.types")
        assert Path(str(package.__file__)).parent == root / NAME
        assert types.Paint(colour=types.Colour.RED).to_wire() == {"colour": "red"}
        on_path, modules = traces(root)
        assert on_path and {NAME, f"{NAME}.types"} <= set(modules)
    assert traces(root) == (False, [])
    assert (
        root / NAME / "types" / "__init__.py"
    ).exists()  # the files stay, for a look after


def test_nothing_is_left_when_the_body_fails(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with pytest.raises(ZeroDivisionError), imported_package(files, tmp_path, NAME):
        importlib.import_module(f"{NAME}.commands")
        _ = 1 / 0
    assert traces(tmp_path) == (False, [])


def test_a_name_in_use_is_refused(tmp_path: Path, files: dict[str, str]) -> None:
    refused = pytest.raises(PackageNameInUse, match=f"'{NAME}' is imported already")
    with imported_package(files, tmp_path / "a", NAME):
        with refused, imported_package(files, tmp_path / "b", NAME):
            pass  # never reached
        assert not (tmp_path / "b").exists()  # refused before anything was written
    assert traces(tmp_path / "a") == (False, [])
