"""`qapigen generate --from-introspection` on the command line: a saved reply makes a
package and `--check` keeps it current; wrong input is one located line, exit 1 (a
usage mistake exit 2), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qapigen_testing.cli import run_qapigen

REPLY = Path(__file__).parent / "introspection_replies" / "qemu-5.2.0.json"


def test_saved_reply_generates_and_checks(tmp_path: Path) -> None:
    made = run_qapigen(
        "generate", "--from-introspection", str(REPLY), "-o", "q52", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    first = (tmp_path / "q52" / "__init__.py").read_text().splitlines()[0]
    assert first == (
        '"""Typed QMP bindings for the QAPI schema introspection saved in'
        " qemu-5.2.0.json."
    )
    again = ["generate", "--from-introspection", str(REPLY), "--package", "q52"]
    assert run_qapigen(*again, "--check", cwd=tmp_path).returncode == 0
    (tmp_path / "q52" / "commands.py").write_text("stale\n")
    stale = run_qapigen(*again, "--check", cwd=tmp_path)
    assert stale.returncode == 1
    assert "q52 is stale" in stale.stderr
    assert stale.stdout.startswith("--- a/q52/commands.py")


def test_return_value_alone_is_read_too(tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(json.loads(REPLY.read_text())["return"]))
    made = run_qapigen(
        "generate", "--from-introspection", str(bare), "-o", "bare", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "bare" / "types" / "qmp_schema.py").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[", "bad.json:1:2: not JSON: Expecting value"),
        ('{"return": 3}', "bad.json: expected the query-qmp-schema answer"),
        (
            '[{"name": "x", "meta-type": "command", "arg-type": "0", "ret-type": "0"}]',
            "bad.json: [0] (command 'x'): arg-type: no entry named '0'",
        ),
    ],
)
def test_bad_reply_is_one_located_line(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "bad.json").write_text(content)
    ran = run_qapigen(
        "generate", "--from-introspection", "bad.json", "-o", "out", cwd=tmp_path
    )
    assert ran.returncode == 1
    assert ran.stderr.startswith(message), ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x.json"], "--from-introspection needs -o DIR or --package NAME"),
        (["x.json", "-o", "p", "schema.json"], "give either SCHEMA or"),
        (["x.json", "-o", "p", "--qapi-version", "7.2"], "--qapi-version applies"),
    ],
)
def test_usage_mistakes(tmp_path: Path, args: list[str], message: str) -> None:
    option, *rest = args
    positional = [a for a in rest if a.endswith(".json")]
    flags = [a for a in rest if not a.endswith(".json")]
    ran = run_qapigen(
        "generate", *positional, "--from-introspection", option, *flags, cwd=tmp_path
    )
    assert ran.returncode == 2
    assert message in ran.stderr


def test_missing_file_and_unreachable_server(tmp_path: Path) -> None:
    ran = run_qapigen(
        "generate", "--from-introspection", "nope.json", "-o", "p", cwd=tmp_path
    )
    assert (ran.returncode, ran.stderr.strip()) == (
        1,
        "qapigen: nope.json: No such file or directory",
    )
    ran = run_qapigen(
        "generate", "--from-introspection", "unix:/nonexistent/q.sock", "-o", "p",
        cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 1
    assert ran.stderr.startswith("unix:/nonexistent/q.sock: cannot connect to")
    assert "Traceback" not in ran.stderr
