"""The qapigen command line: exit codes, located errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qapigen_testing.paths import REPO, qemu_release, shared_path

BUNDLED = REPO / "schema" / "migration.json"


def qapigen(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qapigen.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_accepts_the_bundled_schema_without_flags() -> None:
    result = qapigen("check", "schema/migration.json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_qemu_5_2_rules_reject_the_bundled_schema_where_qemu_5_2_does() -> None:
    result = qapigen("check", "--qapi-version", "5.2", "schema/migration.json")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("schema/migration.json:613:1: "), result.stderr


def test_the_vm_schema_is_valid() -> None:
    result = qapigen("check", "schema/qapigen-vm.json")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("release", ["5.2", "7.2"])
def test_complete_qemu_schemas_pass_with_and_without_their_level(release: str) -> None:
    path = shared_path("qemu", release, "qapi", "qapi-schema.json")
    for flags in ([], ["--qapi-version", release]):
        result = qapigen("check", *flags, str(path))
        assert result.returncode == 0, (flags, result.stderr[-2000:])


def test_usage_errors_exit_2() -> None:
    assert qapigen().returncode == 2
    assert qapigen("check").returncode == 2
    assert qapigen("check", "--qapi-version", "4.0", "x.json").returncode == 2
    assert qapigen("dump-ir", "--format", "yaml", "x.json").returncode == 2


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "expected_prefix"),
    [
        (b"{ 'struct': 'S', 'data': { 'a' 'int' } }\n", "bad.json:1:32: "),
        (b"\xff\xfe\x00junk", "bad.json:1"),
        (b"{ 'enum': 'E', 'data': [ 'a' ", "bad.json:1"),
        (b"{ 'struct': 'S'\n  'data': {} }\n", "bad.json:2:3: "),
        (b"[" * 5000, "bad.json:1"),
        (b"{ 'include': 'missing.json' }\n", "bad.json:1"),
    ],
)
def test_bad_schemas_get_a_located_error_and_exit_1(
    tmp_path: Path, content: bytes, expected_prefix: str
) -> None:
    write(tmp_path, "bad.json", content)
    result = qapigen("check", "bad.json", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    # the located error line; notes follow it (where an object opened, ...)
    located = [line for line in result.stderr.splitlines() if ": note: " not in line]
    assert located[-1].startswith(expected_prefix), result.stderr


def test_missing_schema_file_is_a_located_error(tmp_path: Path) -> None:
    result = qapigen("check", "nowhere.json", cwd=tmp_path)
    assert result.returncode == 1
    assert "nowhere.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_error_in_included_file_shows_the_include_chain(tmp_path: Path) -> None:
    write(tmp_path, "top.json", b"{ 'include': 'sub.json' }\n")
    write(tmp_path, "sub.json", b"{ 'struct': 'S', 'data': { 'a': 'nosuchtype' } }\n")
    result = qapigen("check", "top.json", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "In file included from top.json:1:"
    assert lines[-1].startswith("sub.json:1")
    assert "nosuchtype" in lines[-1]
    assert any("In struct 'S':" in line for line in lines)


def test_dump_ir_qemu_test_and_json(tmp_path: Path) -> None:
    write(tmp_path, "s.json", b"{ 'enum': 'Color', 'data': [ 'red', 'blue' ] }\n")
    text = qapigen("dump-ir", "s.json", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "enum Color\n    member red\n    member blue\n" in text.stdout
    as_json = qapigen("dump-ir", "--format", "json", "s.json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    import json

    data = json.loads(as_json.stdout)
    assert "Color" in json.dumps(data)


def test_quiet_suppresses_warnings_only() -> None:
    loud = qapigen("check", "schema/migration.json")
    quiet = qapigen("check", "--quiet", "schema/migration.json")
    assert "warning:" in loud.stderr
    assert quiet.returncode == 0
    assert quiet.stderr == ""


SMALL_SCHEMA = b"""
##
# @Color:
#
# A colour.
#
# @red: red
# @blue: blue
#
# Since: 1.0
##
{ 'enum': 'Color', 'data': [ 'red', 'blue' ] }
"""


def test_generate_writes_then_check_detects_staleness(tmp_path: Path) -> None:
    write(tmp_path, "colors.json", SMALL_SCHEMA)
    made = qapigen("generate", "colors.json", "-o", "out", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "out" / "types" / "colors.py").is_file()
    fresh = qapigen("generate", "colors.json", "-o", "out", "--check", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr

    types_py = tmp_path / "out" / "types" / "colors.py"
    types_py.write_text(types_py.read_text() + "# edited by hand\n")
    stale = qapigen("generate", "colors.json", "-o", "out", "--check", cwd=tmp_path)
    assert stale.returncode == 1
    assert "-# edited by hand" in stale.stdout
    assert "to fix it run: qapigen generate colors.json -o out" in stale.stderr
    # --check never writes.
    assert types_py.read_text().endswith("# edited by hand\n")


def test_generate_without_arguments_reads_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "colors.json", SMALL_SCHEMA)
    write(
        tmp_path,
        "pyproject.toml",
        b'[tool.qapigen]\nschema = "colors.json"\noutput = "pkg/colors"\n'
        b'package = "colors"\n',
    )
    made = qapigen("generate", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "pkg" / "colors" / "__init__.py").is_file()
    assert qapigen("generate", "--check", cwd=tmp_path).returncode == 0


def test_generate_rejects_a_bad_pyproject_table(tmp_path: Path) -> None:
    write(
        tmp_path, "pyproject.toml", b'[tool.qapigen]\nschema = "x.json"\nbogus = "1"\n'
    )
    result = qapigen("generate", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "qapigen: pyproject.toml:3: [tool.qapigen]: bogus: unknown key"
        " (known: schema, output, package, qapi-version, optional)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        # Every committed package: the targets of [tool.qapigen] in pyproject.toml.
        [],
        # The reference VM's QMP package.
        [
            "schema/qapigen-vm.json",
            "-o",
            "generated/qapigen_vm_qmp",
            "--package",
            "qapigen_vm_qmp",
        ],
    ],
)
def test_committed_bindings_are_current(args: list[str]) -> None:
    result = qapigen("generate", "--quiet", "--check", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


@pytest.mark.parametrize(
    ("parts", "package"),
    [
        (("qga", "qapi-schema.json"), "qapigen_qga"),
        (("storage-daemon", "qapi", "qapi-schema.json"), "qapigen_storage_daemon"),
    ],
)
def test_committed_qemu_packages_are_current_wherever_the_schema_is(
    parts: tuple[str, ...], package: str
) -> None:
    """The optional targets' schemas (QEMU 7.2's) may be missing beside the checkout,
    where `generate --check` skips them: checked here from QEMU's data wherever it is
    (../shared, or the cache scripts/fetch-qemu-sources fills, as CI's setup does)."""
    schema = qemu_release("7.2", *parts)
    if schema is None:
        pytest.skip("QEMU 7.2's schemas are absent (run scripts/fetch-qemu-sources)")
    result = qapigen(
        "generate",
        "--quiet",
        "--check",
        str(schema),
        "-o",
        f"generated/{package}",
        "--qapi-version",
        "7.2",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_no_change_regeneration_is_skipped_until_an_input_changes(
    tmp_path: Path,
) -> None:
    write(tmp_path, "top.json", b"{ 'include': 'colors.json' }\n")
    write(tmp_path, "colors.json", SMALL_SCHEMA)
    args = ("generate", "top.json", "-o", "out")
    assert qapigen(*args, cwd=tmp_path).returncode == 0
    again = qapigen(*args, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stderr.strip() == "out: up to date"

    # An included file changed: the stamp no longer matches, so the pipeline runs.
    write(tmp_path, "colors.json", SMALL_SCHEMA.replace(b"blue", b"green"))
    changed = qapigen(*args, cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "up to date" not in changed.stderr
    assert "GREEN" in (tmp_path / "out" / "types" / "colors.py").read_text()

    # The stamp never vouches for output edited by hand.
    types_py = tmp_path / "out" / "types" / "colors.py"
    types_py.write_text(types_py.read_text().replace("GREEN", "RED_"))
    stale = qapigen(*args, "--check", cwd=tmp_path)
    assert stale.returncode == 1
    assert "+    GREEN" in stale.stdout
