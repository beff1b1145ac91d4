"""`generate` writes only packages that compile, and output stays in proportion to the
schema: nesting past qapigen's bounds (qapigen/backends/limits.py) is refused with a
located error before anything is generated, and what is generated grows linearly with
the number of definitions.

The deep shapes are the ones that once blew up: unions nested in unions (100 deep gave
a 52 MB module Python refused: too many indentation levels) and struct base chains
(800 deep gave 81 MB, 3,000 deep 1.17 GB).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import qapigen.generate
from qapigen import cli
from qapigen.backends.limits import MAX_BASE_DEPTH, MAX_FLAT_MEMBERS, MAX_UNION_NESTING
from qapigen.backends.view import Module
from qapigen.frontend import schema_from_parsed
from qapigen.generate import (
    VERIFY_VARIABLE,
    GeneratedCodeError,
    check_compiles,
    check_written_text,
    generate_package,
    verifying,
)
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.source import QAPIError
from qapigen_testing.cli import plain_failure, run_qapigen


def nested_unions(depth: int, copies: int = 1) -> str:
    """`copies` chains of unions, each nesting `depth` deep: union U{c}_{i}'s branch
    'a' is the union U{c}_{i-1}."""
    lines = [
        "{ 'enum': 'Kind', 'data': [ 'a', 'b' ] }",
        "{ 'struct': 'Leaf', 'data': { 'x': 'int' } }",
    ]
    for c in range(copies):
        for i in range(depth + 1):
            inner = "Leaf" if i == 0 else f"U{c}x{i - 1}"
            lines.append(
                f"{{ 'union': 'U{c}x{i}', 'base': {{ 'k{i}': 'Kind' }},"
                f" 'discriminator': 'k{i}', 'data': {{ 'a': '{inner}', 'b': 'Leaf' }} }}"
            )
    return "\n".join(lines) + "\n"


def base_chain(depth: int, copies: int = 1, members: int = 1) -> str:
    """`copies` chains of structs, each `depth` bases deep, each adding `members`."""
    lines = []
    for c in range(copies):
        for i in range(depth + 1):
            own = ", ".join(f"'m{i}-{j}': 'int'" for j in range(members))
            base = f" 'base': 'S{c}x{i - 1}'," if i else ""
            lines.append(f"{{ 'struct': 'S{c}x{i}',{base} 'data': {{ {own} }} }}")
    return "\n".join(lines) + "\n"


def generated_size(text: str) -> int:
    parsed = parse_text(text, "deep.json", Level.PERMISSIVE)
    schema = schema_from_parsed(parsed, "deep.json", Level.PERMISSIVE)
    files = generate_package(schema, "deep", "deep.json")
    return sum(len(body.encode()) for body in files.values())


def refusal(text: str) -> str:
    parsed = parse_text(text, "deep.json", Level.PERMISSIVE)
    schema = schema_from_parsed(parsed, "deep.json", Level.PERMISSIVE)
    with pytest.raises(QAPIError) as caught:
        generate_package(schema, "deep", "deep.json")
    return str(caught.value)


def test_deepest_accepted_shapes_generate() -> None:
    # generate_package compiles every module it returns
    assert generated_size(nested_unions(MAX_UNION_NESTING)) > 0
    assert generated_size(base_chain(MAX_BASE_DEPTH)) > 0


SHAPES: dict[str, Callable[[int], str]] = {
    "nested-unions": lambda copies: nested_unions(MAX_UNION_NESTING, copies),
    "base-chains": lambda copies: base_chain(MAX_BASE_DEPTH, copies),
    "wide-base-chains": lambda copies: base_chain(4, copies, members=20),
}


@pytest.mark.parametrize("name", SHAPES)
def test_output_grows_linearly_with_the_schema(name: str) -> None:
    """Ten times the definitions, ten times the code (within 10%: the package's
    fixed part is shared)."""
    shape = SHAPES[name]
    small, large = generated_size(shape(4)), generated_size(shape(40))
    schema_ratio = len(shape(40)) / len(shape(4))
    assert 0.9 * schema_ratio <= large / small <= 1.1 * schema_ratio, (small, large)


def test_unions_nested_too_deep_are_refused_where_they_nest() -> None:
    depth = MAX_UNION_NESTING + 1
    message = refusal(nested_unions(100))
    assert message.startswith("deep.json: In union 'U0x9':\n"), message
    assert f"deep.json:{depth + 3}: union type 'U0x9' nests unions {depth} deep" in (
        message
    )
    assert "qapigen generates at most 8" in message


def test_base_chains_too_deep_are_refused_where_they_start() -> None:
    depth = MAX_BASE_DEPTH + 1
    message = refusal(base_chain(3000))
    assert f"deep.json:{depth + 1}: struct type 'S0x{depth}' has a base chain" in (
        message
    )


def test_too_many_gathered_members_are_refused() -> None:
    members = MAX_FLAT_MEMBERS // 4 + 1
    message = refusal(base_chain(3, members=members))
    assert f"gathers {4 * members} members" in message, message


def test_command_line_refuses_with_a_location_and_writes_nothing(
    tmp_path: Path,
) -> None:
    schema = tmp_path / "chain.json"
    schema.write_text(base_chain(800))
    result = run_qapigen("generate", "chain.json", "-o", "out/pkg", cwd=tmp_path)
    stderr = plain_failure(result)
    assert "chain.json:18: struct type 'S0x17' has a base chain 17 deep" in stderr
    assert not (tmp_path / "out").exists()


def _broken_introspection(
    monkeypatch: pytest.MonkeyPatch, body: str, *, verify: bool
) -> None:
    """Make generation produce `body` as introspection.py: a bug of qapigen's."""

    def broken(schema: object, schema_name: str) -> Module:
        return Module("introspection.py", "broken", [], body=body)

    monkeypatch.setattr(qapigen.generate, "generate_introspection", broken)
    if verify:
        monkeypatch.setenv(VERIFY_VARIABLE, "1")
    else:
        monkeypatch.delenv(VERIFY_VARIABLE, raising=False)


def test_code_that_does_not_compile_is_an_internal_error_and_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _broken_introspection(monkeypatch, "def f(:\n", verify=True)
    schema = tmp_path / "colours.json"
    schema.write_text("{ 'enum': 'Colour', 'data': [ 'red' ] }\n")
    status = cli.main(["generate", str(schema), "-o", str(tmp_path / "out" / "pkg")])
    stderr = capsys.readouterr().err
    assert status == 1
    assert "internal error: GeneratedCodeError: introspection.py:1:" in stderr
    assert "does not compile" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "body",
    [
        "x = 1\n"
        + "".join("    " * i + "if x:\n" for i in range(101))
        + " " * 404
        + "x\n",
        "x = '\x00'\n",
        "s = '\udc80'\n",
    ],
    ids=["indentation", "nul", "surrogate"],
)
def test_check_compiles_names_the_file(body: str) -> None:
    with pytest.raises(GeneratedCodeError, match=r"^types/m\.py\b"):
        check_compiles({"types/m.py": body, "py.typed": ""})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('"""Doc."""\n\nx = 1  # \x00\n', "NUL byte"),
        ('"""Doc."""\n\ns = "\udc80"\n', "not encodable as UTF-8"),
    ],
    ids=["nul", "surrogate"],
)
def test_every_run_refuses_text_python_cannot_read(
    body: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without QAPIGEN_VERIFY, generate still refuses what schema text could break:
    the error names the file and line, and nothing is written."""
    _broken_introspection(monkeypatch, body, verify=False)
    schema = tmp_path / "colours.json"
    schema.write_text("{ 'enum': 'Colour', 'data': [ 'red' ] }\n")
    status = cli.main(["generate", str(schema), "-o", str(tmp_path / "out" / "pkg")])
    stderr = capsys.readouterr().err
    assert status == 1
    assert "internal error: GeneratedCodeError: introspection.py:3:" in stderr
    assert reason in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_text_check_passes_what_compiles() -> None:
    files = {"types/m.py": 'x = "\u2028 \\x00"\n', "py.typed": "\x00"}
    check_written_text(files)  # an escaped NUL is text; py.typed is not Python
    check_compiles(files)


def test_verifying_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VERIFY_VARIABLE, "1")
    assert verifying()
    for value in ("", "0", "yes"):
        monkeypatch.setenv(VERIFY_VARIABLE, value)
        assert not verifying()
    monkeypatch.delenv(VERIFY_VARIABLE)
    assert not verifying()


def test_the_suite_compiles_every_generated_package() -> None:
    """tests/conftest.py turns verification on for every test and the processes they
    start: the whole-package compile that generate skips runs throughout the suite."""
    assert verifying()
