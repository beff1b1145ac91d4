"""`qapigen generate --package NAME`: the package's import name, which is its folder's
name; checked as a Python identifier that hides nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qapigen_testing.cli import COLORS_SCHEMA, run_qapigen


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "colors.json").write_bytes(COLORS_SCHEMA)
    return tmp_path


def files_of(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file()}


def test_runs_differing_only_in_package_differ_where_they_should(
    project: Path,
) -> None:
    for name in ("alpha", "beta"):
        made = run_qapigen("generate", "colors.json", "--package", name, cwd=project)
        assert made.returncode == 0, made.stderr
        assert made.stderr.strip() == f"{name}: 8 files, 8 changed"
    alpha, beta = files_of(project / "alpha"), files_of(project / "beta")
    assert sorted(alpha) == sorted(beta)
    # The modules import each other relatively, so the code does not depend on the
    # name: only where it is written, and what the stamp records, do.
    differing = sorted(name for name in alpha if alpha[name] != beta[name])
    assert differing == [".qapigen-stamp.json"]
    assert '"package": "alpha"' in alpha[".qapigen-stamp.json"]
    # Each imports under its own name, and works.
    probe = (
        "import alpha.types, beta.types;"
        "print(alpha.types.Color('red').name, beta.types.Color('blue').name)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True
    )
    assert ran.stdout == "RED BLUE\n", ran.stderr


def test_package_with_the_output_folder_it_names(project: Path) -> None:
    made = run_qapigen(
        "generate", "colors.json", "-o", "src/alpha", "--package", "alpha", cwd=project
    )
    assert made.returncode == 0, made.stderr
    assert made.stderr.strip() == "src/alpha: 8 files, 8 changed"


def test_without_package_the_name_is_the_folders_or_the_schemas(
    project: Path,
) -> None:
    made = run_qapigen("generate", "colors.json", cwd=project)
    assert made.stderr.strip() == "colors: 8 files, 8 changed"
    made = run_qapigen("generate", "colors.json", "-o", "lib/paint", cwd=project)
    assert made.stderr.strip() == "lib/paint: 8 files, 8 changed"
    assert (
        '"package": "paint"' in (project / "lib/paint/.qapigen-stamp.json").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--package", "1bad"],
            "argument --package: '1bad' is not a Python identifier",
        ),
        (["--package", "my-pkg"], "argument --package: 'my-pkg' is not a Python"),
        (["--package", "class"], "argument --package: 'class' is a Python keyword"),
        (
            ["--package", "json"],
            "argument --package: 'json' would hide the standard library's module",
        ),
        (
            ["-o", "out", "--package", "alpha"],
            "--package: 'alpha' differs from the output folder's name 'out', and a"
            " package is imported by its folder's name: make the output folder end"
            " in 'alpha' (or leave package out)",
        ),
        (
            ["-o", "my-out"],
            "-o: a package is imported by its folder's name, and 'my-out' is not a"
            " Python identifier",
        ),
    ],
)
def test_bad_package_names_are_usage_errors(
    project: Path, args: list[str], message: str
) -> None:
    result = run_qapigen("generate", "colors.json", *args, cwd=project)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["colors.json"]


def test_a_schema_name_that_cannot_name_a_package(project: Path) -> None:
    (project / "7.2.json").write_bytes(COLORS_SCHEMA)
    result = run_qapigen("generate", "7.2.json", cwd=project)
    assert result.returncode == 2
    assert (
        "SCHEMA: the package would be named after 7.2.json, but '7_2' is not a"
        " Python identifier; name the package (or its output folder)"
    ) in result.stderr
