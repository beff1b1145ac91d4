"""The QAPI lexer/parser: syntax, locations, includes, pragmas, and QEMU's corpora.

The corpus test runs every case of QEMU 5.2's, 7.2's and 10.0's `tests/qapi-schema`
at that release's level (10.0's from the scripts/fetch-qemu-sources cache). A case whose expected error comes from the parsing stage (lexical and
syntax errors, directives, doc-comment layout) must fail with exactly QEMU's text
(include chain, `file:line:col`, message); every other case must parse, since its
error, if any, belongs to a later stage.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from qapigen.level import Level
from qapigen.parser import MAX_NESTING, Expression, parse_schema, parse_text
from qapigen.source import QAPIError
from qapigen_testing.paths import release_root

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CORPUS = {
    level: release_root(level.value) / "qapi-schema-tests"
    for level in (Level.V5_2, Level.V7_2, Level.V10_0)
}

# Messages QEMU's parser and doc-comment parser raise (the expression checks and the
# schema IR raise the others). Matched against the message of an .err's last line.
_PARSE_STAGE = re.compile(
    r"^(expected .*|stray '.*|duplicate key '.*'|missing terminating .*"
    r"|unknown escape .*|funny character in string"
    r"|documentation for '.*' is not followed by the definition"
    r"|definition documentation required|top-level expression must be an object"
    r"|can't read .*|inclusion loop for .*|invalid 'include' directive"
    r"|value of 'include' must be a string|invalid 'pragma' directive"
    r"|value of 'pragma' must be an object|unknown pragma '.*'|pragma .* must be .*"
    r"|junk after '##' .*|documentation comment must end with '##'"
    r"|missing space after #|line should end with ':'|name required after '@'"
    r"|invalid name|invalid parameter name|'.*' parameter name duplicated"
    r"|duplicated '.*' section|empty doc section '.*'|'@.*:' can't follow '.*' section"
    r"|'@.*:' not allowed in free-form documentation"
    r"|unexpected de-indent .*|unexpected '=' markup in definition documentation"
    # QEMU 10.0's doc reading
    r"|duplicated 'Features:' line|feature descriptions expected"
    r"|text required after '.*:'|description of '@.*:' follows a section"
    r"|'=' heading must come first in a comment block"
    r"|The '.*' section is no longer supported.*)$"
)


def _corpus_cases() -> list[tuple[Level, str]]:
    cases = []
    for level, folder in CORPUS.items():
        if folder.is_dir():
            for err in sorted(folder.glob("*.err")):
                cases.append((level, err.stem))
    return cases


def _expected_parse_error(folder: Path, case: str) -> str | None:
    text = (folder / f"{case}.err").read_text().strip()
    if not text:
        return None
    message = re.sub(r"^\S+?:\d+(:\d+)?: ", "", text.splitlines()[-1])
    return text if _PARSE_STAGE.match(message) else None


@pytest.mark.parametrize(
    "level,case",
    [
        pytest.param(level, case, id=f"{level.value}-{case}")
        for level, case in _corpus_cases()
    ],
)
def test_qemu_corpus_parse_stage(
    level: Level, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = CORPUS[level]
    # QEMU's harness runs in the corpus folder, so file names in messages are bare.
    monkeypatch.chdir(folder)
    expected = _expected_parse_error(folder, case)
    if not (folder / f"{case}.json").exists() and "can't read" not in (expected or ""):
        pytest.skip(f"{case}.json is missing from the corpus copy")
    if expected is None:
        parse_schema(f"{case}.json", level)
    else:
        with pytest.raises(QAPIError) as caught:
            parse_schema(f"{case}.json", level)
        # QEMU's text; qapigen may add notes below it (tests/frontend/test_hints.py)
        assert caught.value.headline() == expected


def test_corpus_present() -> None:
    if not any(folder.is_dir() for folder in CORPUS.values()):
        pytest.skip("../shared/qemu is absent: QEMU's test corpora live there")
    assert len(_corpus_cases()) > 350


@pytest.mark.parametrize("version,level", [("5.2", Level.V5_2), ("7.2", Level.V7_2)])
def test_complete_qemu_schema(version: str, level: Level) -> None:
    root = SHARED / "qemu" / version / "qapi"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    schema = parse_schema(str(root / "qapi-schema.json"), level)
    includes = [e for e in schema.exprs if "include" in e.expr]
    assert len(includes) > 30
    definitions = [e for e in schema.exprs if "include" not in e.expr]
    assert len(definitions) > 600
    # every definition of QEMU's own schema is documented
    assert all(e.doc is not None and e.doc.symbol for e in definitions)
    assert not schema.warnings


# ---- the bundled 5.0-era schema: QEMU 5.2 tightened doc indentation ----


def test_bundled_schema_permissive_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    schema = parse_schema("schema/migration.json")
    names = [e.expr.get("command") or e.expr.get("struct") for e in schema.exprs]
    assert "migrate" in names and "MigrationParameters" in names
    # what 5.2 rejects (below) is a warning here
    indentation = [w for w in schema.warnings if "de-indent" in w.message]
    assert indentation[0].info.location() == "schema/migration.json:613:1"
    # one warning per description laid out that way, QEMU 10.0's way
    assert len(indentation) == 10
    assert {w.rule.name for w in indentation} == {"doc-layout-10.0"}


@pytest.mark.parametrize("level", [Level.V5_2, Level.V7_2])
def test_bundled_schema_fails_where_qemu_fails(level: Level) -> None:
    with pytest.raises(QAPIError) as caught:
        parse_schema(str(REPO / "schema" / "migration.json"), level)
    assert caught.value.info is not None
    assert caught.value.info.location().endswith("migration.json:613:1")
    assert "unexpected de-indent" in caught.value.message


# ---- syntax ----


def test_values_and_key_order() -> None:
    schema = parse_text(
        "{ 'struct': 'S', 'data': { 'b': 'int', 'a': ['str'] },\n"
        "  'boxed': true, 'gen': false, 'x': 'back\\\\slash' }\n"
    )
    [expr] = schema.exprs
    assert list(expr.expr) == ["struct", "data", "boxed", "gen", "x"]
    assert expr.expr["data"] == {"b": "int", "a": ["str"]}
    assert expr.expr["boxed"] is True and expr.expr["gen"] is False
    assert expr.expr["x"] == "back\\slash"
    assert expr.info.fname == "<string>" and expr.info.line == 1


def test_expression_line_is_its_opening_brace() -> None:
    schema = parse_text("# comment\n\n  # another\n{ 'enum': 'E',\n 'data': [] }\n")
    assert schema.exprs[0].info.line == 4


@pytest.mark.parametrize(
    "text,where,message",
    [
        ("{ 'a' 'b' }", "1:7", "expected ':'"),
        ("{ 'a': 'b' 'c' }", "1:12", "expected ',' or '}'"),
        ("{ 'a': 'b', }", "1:13", "expected string"),
        ("{ 'a': [ 'b' 'c' ] }", "1:14", "expected ',' or ']'"),
        ("{ 'a': 1 }", "1:8", "stray '1'"),
        ("{ 'a': null }", "1:8", "stray 'null'"),
        ('{ "a": 1 }', "1:3", "stray '\"'"),
        ("{ 'a': 'b\\n' }", "1:8", "unknown escape \\n"),
        ("{ 'a': 'b\n' }", "1:8", 'missing terminating "\'"'),
        ("{ 'a': 'caf\u00e9' }", "1:8", "funny character in string"),
        ("{ 'a': 'b', 'a': 'c' }", "1:18", "duplicate key 'a'"),
        ("{ 'a': ", "1:8", "expected '{', '[', string, or boolean"),
        ("{ 'a': [ ", "1:10", "expected '{', '[', ']', string, or boolean"),
        ("{ 'a': 'b'\n\n", "2:1", "expected ',' or '}'"),
        ("\t{ 'a' }", "1:15", "expected ':'"),
        ("{\t\t'a' }", "1:21", "expected ':'"),
    ],
)
def test_syntax_errors(text: str, where: str, message: str) -> None:
    with pytest.raises(QAPIError) as caught:
        parse_text(text, "t.json", Level.V7_2)
    assert caught.value.headline() == f"t.json:{where}: {message}"


def test_top_level_must_be_object_per_level() -> None:
    with pytest.raises(QAPIError, match=r"^t.json:1:1: expected '\{'$"):
        parse_text("[ ]", "t.json", Level.V5_2)
    with pytest.raises(QAPIError, match=r"^t.json:1: top-level expression must be"):
        parse_text("[ ]", "t.json", Level.V7_2)


def test_deep_nesting_is_reported_not_a_crash() -> None:
    text = "{ 'a': " + "[" * 5000 + "]" * 5000 + " }"
    with pytest.raises(QAPIError, match=f"nesting too deep \\(more than {MAX_NESTING}"):
        parse_text(text)
    ok = "{ 'a': " + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + " }"
    assert parse_text(ok).exprs


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b"{ 'enum': 'E',\n  'data': [ '\xff' ] }\n")
    with pytest.raises(QAPIError) as caught:
        parse_schema(str(path))
    assert str(caught.value) == f"{path}:2:14: invalid UTF-8 (byte 0xff)"


def test_missing_schema_file(tmp_path: Path) -> None:
    with pytest.raises(QAPIError) as caught:
        parse_schema(str(tmp_path / "nope.json"))
    assert caught.value.info is None
    assert "can't read schema file" in str(caught.value)


def test_too_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qapigen.parser.MAX_FILE_BYTES", 100)
    path = tmp_path / "big.json"
    path.write_text("# padding\n" * 20)
    with pytest.raises(QAPIError, match="too large"):
        parse_schema(str(path))


# ---- includes ----


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_includes_relative_once_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path,
        {
            "main.json": "{ 'include': 'sub/a.json' }\n{ 'include': 'b.json' }\n"
            "{ 'enum': 'Main', 'data': [] }\n",
            "sub/a.json": "{ 'include': '../b.json' }\n{ 'enum': 'A', 'data': [] }\n",
            "b.json": "{ 'enum': 'B', 'data': [] }\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    schema = parse_schema("main.json")
    summary = [
        (e.expr.get("include") or e.expr.get("enum"), e.info.fname, e.include_path)
        for e in schema.exprs
    ]
    assert summary == [
        ("sub/a.json", "main.json", "sub/a.json"),
        ("../b.json", "sub/a.json", os.path.join("sub", "../b.json")),
        ("B", os.path.join("sub", "../b.json"), None),
        ("A", "sub/a.json", None),
        ("b.json", "main.json", "b.json"),  # already read: not again
        ("Main", "main.json", None),
    ]
    b_info = schema.exprs[2].info
    assert b_info.parent is not None and b_info.parent.fname == "sub/a.json"
    assert b_info.parent.parent is not None and b_info.parent.parent.line == 1


def test_include_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        tmp_path,
        {
            "a.json": "{ 'include': 'b.json' }\n",
            "b.json": "\n{ 'include': 'a.json' }\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QAPIError) as caught:
        parse_schema("a.json")
    assert str(caught.value) == (
        "In file included from a.json:1:\n" "b.json:2: inclusion loop for a.json"
    )


def test_include_directory_and_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dir.json").mkdir()
    _write(tmp_path, {"a.json": "{ 'include': 'dir.json' }\n"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QAPIError) as caught:
        parse_schema("a.json")
    assert str(caught.value) == (
        "a.json:1: can't read include file 'dir.json': Is a directory"
    )
    _write(tmp_path, {"c.json": "{ 'include': 'gone/x.json' }\n"})
    with pytest.raises(QAPIError, match="can't read include file 'gone/x.json'"):
        parse_schema("c.json")


def test_error_in_included_file_has_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path,
        {
            "a.json": "# top\n{ 'include': 'inc/b.json' }\n",
            "inc/b.json": "{ 'include': 'c.json' }\n",
            "inc/c.json": "{ 'enum' 'E' }\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QAPIError) as caught:
        parse_schema("a.json")
    assert caught.value.headline() == (
        "In file included from a.json:2:\n"
        "In file included from inc/b.json:1:\n"
        "inc/c.json:1:10: expected ':'"
    )


# ---- pragmas ----


def test_pragmas_by_level_and_shared_through_infos() -> None:
    modern = (
        "{ 'pragma': { 'doc-required': true,\n"
        "              'command-name-exceptions': [ 'a_b' ],\n"
        "              'command-returns-exceptions': [ 'c' ],\n"
        "              'member-name-exceptions': [ 'T' ] } }\n"
        "{ 'enum': 'E', 'data': [] }\n"
    )
    schema = parse_text(modern, "p.json", Level.V7_2)
    pragma = schema.exprs[0].info.pragma
    assert pragma is schema.pragma
    assert pragma.doc_required and pragma.command_name_exceptions == ["a_b"]
    assert pragma.command_returns_exceptions == ["c"]
    assert pragma.member_name_exceptions == ["T"]
    with pytest.raises(QAPIError, match="unknown pragma 'command-name-exceptions'"):
        parse_text(modern, "p.json", Level.V5_2)

    legacy = (
        "{ 'pragma': { 'returns-whitelist': [ 'c' ],\n"
        "              'name-case-whitelist': [ 'X' ] } }\n"
    )
    for level in (Level.V5_2, Level.PERMISSIVE):
        pragma = parse_text(legacy, "p.json", level).pragma
        assert pragma.command_returns_exceptions == ["c"]
        assert pragma.command_name_exceptions == ["X"]
        assert pragma.member_name_exceptions == ["X"]
    with pytest.raises(QAPIError, match="unknown pragma 'returns-whitelist'"):
        parse_text(legacy, "p.json", Level.V7_2)

    latest = "{ 'pragma': { 'documentation-exceptions': [ 'S' ] } }\n"
    assert parse_text(latest, "p.json", Level.V10_0).pragma.documentation_exceptions
    with pytest.raises(QAPIError, match="unknown pragma 'documentation-exceptions'"):
        parse_text(latest, "p.json", Level.V7_2)


def test_pragma_in_included_file_is_schema_wide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path,
        {
            "a.json": "{ 'enum': 'E', 'data': [] }\n{ 'include': 'b.json' }\n",
            "b.json": "{ 'pragma': { 'doc-required': true } }\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    schema = parse_schema("a.json")
    first: Expression = schema.exprs[0]
    assert first.info.pragma is not None and first.info.pragma.doc_required


@pytest.mark.parametrize(
    "value,message",
    [
        ("{ 'doc-required': 'yes' }", "pragma 'doc-required' must be boolean"),
        (
            "{ 'member-name-exceptions': [ true ] }",
            "pragma member-name-exceptions must be a list of strings",
        ),
        ("[ ]", "value of 'pragma' must be an object"),
    ],
)
def test_pragma_errors(value: str, message: str) -> None:
    with pytest.raises(QAPIError) as caught:
        parse_text(f"\n{{ 'pragma': {value} }}\n", "p.json", Level.V7_2)
    assert str(caught.value) == f"p.json:2: {message}"
