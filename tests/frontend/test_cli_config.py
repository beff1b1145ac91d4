"""`[tool.qapigen]`: one target or several, every mistake located, and a pyproject.toml
that is not the project's (or that points outside it) never used."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from qapigen_testing.cli import COLORS_SCHEMA, plain_failure, run_qapigen
from qapigen_testing.paths import REPO

SHAPES = COLORS_SCHEMA.replace(b"Color", b"Shape").replace(b"colour", b"shape")

TWO_TARGETS = """\
[project]
name = "demo"

[[tool.qapigen.targets]]
schema = "colors.json"
output = "pkg/colors"

[[tool.qapigen.targets]]
schema = "shapes.json"
output = "pkg/shapes"
qapi-version = "7.2"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository (it has .git) with two schemas."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "colors.json").write_bytes(COLORS_SCHEMA)
    (tmp_path / "shapes.json").write_bytes(SHAPES)
    return tmp_path


def test_one_bare_command_generates_and_checks_every_target(project: Path) -> None:
    (project / "pyproject.toml").write_text(TWO_TARGETS)
    made = run_qapigen("generate", cwd=project)
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines() == [
        "pkg/colors: 8 files, 8 changed",
        "pkg/shapes: 8 files, 8 changed",
    ]
    assert "class Shape(" in (project / "pkg/shapes/types/shapes.py").read_text()
    assert run_qapigen("generate", "--check", cwd=project).returncode == 0

    for name in ("colors", "shapes"):
        types_py = project / "pkg" / name / "types" / f"{name}.py"
        types_py.write_text(types_py.read_text() + "# edited by hand\n")
    stale = run_qapigen("generate", "--check", cwd=project)
    assert stale.returncode == 1
    assert stale.stderr.splitlines() == [
        "pkg/colors is stale; to fix it run: qapigen generate",
        "pkg/shapes is stale; to fix it run: qapigen generate",
    ]
    assert "--- a/pkg/colors/types/colors.py\n" in stale.stdout
    assert "--- a/pkg/shapes/types/shapes.py\n" in stale.stdout

    fixed = run_qapigen("generate", cwd=project)
    assert fixed.returncode == 0, fixed.stderr
    assert run_qapigen("generate", "--check", cwd=project).returncode == 0


def test_only_the_stale_target_is_reported(project: Path) -> None:
    (project / "pyproject.toml").write_text(TWO_TARGETS)
    assert run_qapigen("generate", cwd=project).returncode == 0
    (project / "shapes.json").write_bytes(SHAPES.replace(b"blue", b"green"))
    stale = run_qapigen("generate", "--check", cwd=project)
    assert stale.returncode == 1
    assert stale.stderr.splitlines() == [
        "pkg/shapes is stale; to fix it run: qapigen generate"
    ]
    assert "pkg/colors" not in stale.stdout


def test_a_failing_target_does_not_stop_the_others(project: Path) -> None:
    (project / "pyproject.toml").write_text(TWO_TARGETS)
    (project / "colors.json").write_text("{ 'enum': 'Color', 'data': [ 'red' ")
    result = run_qapigen("generate", cwd=project)
    assert plain_failure(result).splitlines()[0].startswith("colors.json:1")
    assert (project / "pkg/shapes/types/shapes.py").is_file()


def test_the_single_table_still_works_from_a_subfolder(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.qapigen]\nschema = "colors.json"\npackage = "colors"\n'
    )
    (project / "src").mkdir()
    made = run_qapigen("generate", cwd=project / "src")
    assert made.returncode == 0, made.stderr
    assert made.stderr.strip() == "../colors: 8 files, 8 changed"
    assert (project / "colors" / "__init__.py").is_file()


def test_the_repositorys_targets_are_its_committed_packages() -> None:
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["qapigen"]
    outputs = {target["output"] for target in table["targets"]}
    committed = {
        f"generated/{p.name}" for p in (REPO / "generated").iterdir() if p.is_dir()
    }
    assert outputs == committed


def test_an_optional_target_whose_schema_is_absent_is_skipped_saying_so(
    project: Path,
) -> None:
    """A schema kept outside the project (QEMU's) may be missing on a machine: the
    target is skipped with a note and its committed package left alone, while the
    other targets are generated and checked as usual."""
    (project / "pyproject.toml").write_text(
        TWO_TARGETS.replace(
            'qapi-version = "7.2"', 'qapi-version = "7.2"\noptional = true'
        )
    )
    assert run_qapigen("generate", cwd=project).returncode == 0
    committed = (project / "pkg/shapes/types/__init__.py").read_text()
    (project / "shapes.json").unlink()
    (project / "pkg/colors/types/__init__.py").write_text("# edited by hand\n")
    checked = run_qapigen("generate", "--check", cwd=project)
    assert checked.returncode == 1  # the target that can be checked still is
    assert checked.stderr.splitlines() == [
        "pkg/colors is stale; to fix it run: qapigen generate",
        "pkg/shapes: skipped: its schema shapes.json is absent (an optional"
        " target); the committed package was not checked",
    ]
    made = run_qapigen("generate", cwd=project)
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines()[-1] == (
        "pkg/shapes: skipped: its schema shapes.json is absent (an optional"
        " target); the committed package was not regenerated"
    )
    assert (project / "pkg/shapes/types/__init__.py").read_text() == committed
    assert run_qapigen("generate", "--check", cwd=project).returncode == 0

    # A target that is not optional still fails on a missing schema.
    (project / "pyproject.toml").write_text(TWO_TARGETS)
    missing = run_qapigen("generate", "--check", cwd=project)
    assert missing.returncode == 1
    assert "shapes.json" in missing.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            TWO_TARGETS.replace('qapi-version = "7.2"', 'bogus = "1"'),
            "pyproject.toml:11: [[tool.qapigen.targets]] entry 2: bogus: unknown key"
            " (known: schema, output, package, qapi-version, optional)",
        ),
        (
            TWO_TARGETS.replace('qapi-version = "7.2"', 'optional = "yes"'),
            "pyproject.toml:11: [[tool.qapigen.targets]] entry 2: optional: must be"
            " true or false",
        ),
        (
            TWO_TARGETS.replace('"pkg/shapes"', '"pkg/shapes"\npackage = "1bad"'),
            "pyproject.toml:11: [[tool.qapigen.targets]] entry 2: package: '1bad' is"
            " not a Python identifier",
        ),
        (
            TWO_TARGETS.replace('"pkg/colors"', '"pkg/colors"\npackage = "colours"'),
            "pyproject.toml:7: [[tool.qapigen.targets]] entry 1: package: 'colours'"
            " differs from the output folder's name 'colors', and a package is"
            " imported by its folder's name: make the output folder end in 'colours'"
            " (or leave package out)",
        ),
        (
            TWO_TARGETS.replace('"7.2"', '"6.0"'),
            "pyproject.toml:11: [[tool.qapigen.targets]] entry 2: qapi-version: '6.0'"
            " is not one of 5.2, 7.2, 10.0",
        ),
        (
            TWO_TARGETS.replace('schema = "shapes.json"\n', ""),
            "pyproject.toml:8: [[tool.qapigen.targets]] entry 2: schema: missing: the"
            " QAPI schema to generate from",
        ),
        (
            TWO_TARGETS.replace('"pkg/shapes"', "7"),
            "pyproject.toml:10: [[tool.qapigen.targets]] entry 2: output: must be a"
            " string",
        ),
        (
            TWO_TARGETS.replace('"pkg/shapes"', '"pkg/colors/shapes"'),
            "pyproject.toml:10: [[tool.qapigen.targets]] entry 2: output: overlaps the"
            " output of [[tool.qapigen.targets]] entry 1: each target needs a folder"
            " of its own",
        ),
        (
            TWO_TARGETS.replace('"pkg/shapes"', '"/tmp/shapes"'),
            "pyproject.toml:10: [[tool.qapigen.targets]] entry 2: output: must be"
            " relative to the project folder, not absolute",
        ),
        (
            TWO_TARGETS.replace('"pkg/shapes"', '"../shapes"'),
            "pyproject.toml:10: [[tool.qapigen.targets]] entry 2: output: '../shapes'"
            " is not a folder inside the project folder (a pyproject.toml only"
            " generates into its own project)",
        ),
        (
            '[tool.qapigen]\nschema = "colors.json"\n\n[[tool.qapigen.targets]]\n'
            'schema = "shapes.json"\n',
            "pyproject.toml:2: [tool.qapigen]: schema: with several targets, give"
            " schema in each [[tool.qapigen.targets]] entry",
        ),
        (
            '[tool.qapigen]\nschema = "colors.json"\noutput = "my-out"\n',
            "pyproject.toml:3: [tool.qapigen]: output: a package is imported by its"
            " folder's name, and 'my-out' is not a Python identifier",
        ),
        (
            '[tool.qapigen]\nschema = "colors.json"\noutput = "pkg/json"\n',
            "pyproject.toml:3: [tool.qapigen]: output: a package is imported by its"
            " folder's name, and 'json' would hide the standard library's module of"
            " that name",
        ),
        (
            "[tool.qapigen]\nschema = colors.json\n",
            "pyproject.toml:2:10: Invalid value",
        ),
    ],
)
def test_config_mistakes_name_the_file_the_target_and_the_key(
    project: Path, toml: str, message: str
) -> None:
    (project / "pyproject.toml").write_text(toml)
    for args in (["generate"], ["generate", "--check"]):
        stderr = plain_failure(run_qapigen(*args, cwd=project))
        assert stderr == f"qapigen: {message}\n"
    assert not (project / "pkg").exists()


def test_an_output_that_leaves_the_project_through_a_link_is_refused(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (project / "link").symlink_to(elsewhere, target_is_directory=True)
    (project / "pyproject.toml").write_text(
        '[tool.qapigen]\nschema = "colors.json"\noutput = "link/colors"\n'
    )
    stderr = plain_failure(run_qapigen("generate", cwd=project))
    assert "output: 'link/colors' is not a folder inside the project folder" in stderr
    assert list(elsewhere.iterdir()) == []


def test_the_search_stops_at_the_repository(tmp_path: Path) -> None:
    """A pyproject.toml above the repository's root belongs to another project."""
    (tmp_path / "colors.json").write_bytes(COLORS_SCHEMA)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.qapigen]\nschema = "colors.json"\noutput = "written"\n'
    )
    inside = tmp_path / "repo" / "sub"
    inside.mkdir(parents=True)
    (tmp_path / "repo" / ".git").write_text("gitdir: elsewhere\n")  # as a worktree's
    result = run_qapigen("generate", cwd=inside)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "qapigen generate: error: no SCHEMA given, and no pyproject.toml here or"
        " above, up to the repository's root"
    )
    assert not (tmp_path / "written").exists()


def test_outside_a_repository_only_the_working_folder_counts(tmp_path: Path) -> None:
    if any((folder / ".git").exists() for folder in tmp_path.parents):
        pytest.skip("the temporary folder is inside a repository here")
    (tmp_path / "colors.json").write_bytes(COLORS_SCHEMA)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.qapigen]\nschema = "colors.json"\noutput = "written"\n'
    )
    (tmp_path / "sub").mkdir()
    assert run_qapigen("generate", cwd=tmp_path / "sub").returncode == 2
    assert not (tmp_path / "written").exists()
    made = run_qapigen("generate", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "written" / "types" / "colors.py").is_file()


def test_a_pyproject_without_the_table(project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    result = run_qapigen("generate", cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "qapigen generate: error: no SCHEMA given, and pyproject.toml has no"
        " [tool.qapigen] (see qapigen generate --help)"
    )


@pytest.mark.parametrize(
    "args", [["-o", "x"], ["--package", "x"], ["--qapi-version", "7.2"]]
)
def test_options_of_one_target_need_its_schema(project: Path, args: list[str]) -> None:
    (project / "pyproject.toml").write_text(TWO_TARGETS)
    result = run_qapigen("generate", *args, cwd=project)
    assert result.returncode == 2
    assert "describe one target: give its SCHEMA too" in result.stderr
    assert not (project / "pkg").exists()


def test_help_explains_the_targets() -> None:
    text = run_qapigen("generate", "--help").stdout
    assert "[[tool.qapigen.targets]]" in text
    assert "--package NAME" in text and "must end in NAME" in text
    assert ".qapigen-stamp.json" in text
