"""Bad input never escapes as anything but QAPIError.

Random bytes, QAPI-flavoured token soup, and randomly damaged real schemas go through
the whole front end (parse → expression checks → schema IR); whatever happens, the
only exception allowed out is a located QAPIError. A few hostile inputs (deep
nesting, unterminated strings, huge files) are checked explicitly.
"""

from __future__ import annotations

import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qapigen.level import Level
from qapigen.source import QAPIError

try:
    from qapigen.frontend import load_schema as _load_schema

    front_end: Callable[[str, Level], object] = _load_schema
except ImportError:  # the front end proper not written yet: the parser alone
    from qapigen.parser import parse_schema

    front_end = parse_schema

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
LEVELS = st.sampled_from(list(Level))
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def run_front_end(path: Path, data: bytes, level: Level) -> None:
    path.write_bytes(data)
    try:
        front_end(str(path), level)
    except QAPIError as exc:
        text = str(exc)
        assert text and "Traceback" not in text
        # input is quoted escaped: no control or format character reaches a terminal
        assert not [
            ch
            for ch in text
            if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        ], text
        # a located error names the file (the top-level read error has no location)
        assert exc.info is None or exc.info.fname


@FUZZ
@given(data=st.binary(max_size=400), level=LEVELS)
def test_random_bytes(scratch: Path, data: bytes, level: Level) -> None:
    run_front_end(scratch / "bytes.json", data, level)


TOKENS = [
    "{", "}", "[", "]", ":", ",", "'", "''", "'a'", "'struct'", "'enum'", "'data'",
    "'command'", "'union'", "'base'", "'discriminator'", "'if'", "'features'",
    "'include'", "'pragma'", "'doc-required'", "'*x'", "'int'", "['str']", "true",
    "false", "null", "1", "\\", "\\\\", "\t", " ", "\n", "#", "# ", "##", "##\n",
    "# @foo:\n", "# @a: x\n", "#     y\n", "# Since: 1\n", "# Features:\n", "# = H\n",
    "# Returns: r\n", "# Note:\n", "é", "\x00", "\x7f", "\r\n",
]  # fmt: skip


@FUZZ
@given(parts=st.lists(st.sampled_from(TOKENS), max_size=80), level=LEVELS)
def test_token_soup(scratch: Path, parts: list[str], level: Level) -> None:
    run_front_end(scratch / "soup.json", "".join(parts).encode(), level)


DOC_LINES = [
    "##", "## x", "#", "#x", "# @foo:", "# @foo", "# @:", "# @a: x", "# @b:",
    "#     continued", "#  de-indented", "#\tx", "# Features:", "# @feat: f",
    "# Since: 1", "# Since:", "# Returns: r", "# Errors: e", "# Note: n",
    "# Example:", "# TODO: t", "# = Heading", "# text", "# @x:y", "", "  # indented",
    "{ 'command': 'foo', 'data': { 'a': 'int' }, 'features': [ 'feat' ] }",
    "{ 'struct': 'foo', 'data': { 'b': 'str' } }", "{ 'pragma': {} }",
]  # fmt: skip


@FUZZ
@given(lines=st.lists(st.sampled_from(DOC_LINES), max_size=30), level=LEVELS)
def test_doc_comment_soup(scratch: Path, lines: list[str], level: Level) -> None:
    run_front_end(scratch / "docs.json", "\n".join(lines).encode(), level)


def _seed_schemas() -> list[bytes]:
    seeds = [(REPO / "schema" / "common.json").read_bytes()]
    corpus = SHARED / "qemu" / "7.2" / "qapi-schema-tests"
    for name in ("doc-good.json", "qapi-schema-test.json", "union-base-union.json"):
        if (corpus / name).exists():
            seeds.append((corpus / name).read_bytes())
    return seeds


SEEDS = _seed_schemas()


@st.composite
def mutated_schema(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        span = draw(st.integers(1, 40))
        action = draw(st.sampled_from(["delete", "insert", "duplicate", "flip"]))
        if action == "delete":
            del data[at : at + span]
        elif action == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS)).encode()
        elif action == "duplicate":
            data[at:at] = data[at : at + span]
        else:
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(data=mutated_schema(), level=LEVELS)
def test_mutated_real_schemas(scratch: Path, data: bytes, level: Level) -> None:
    run_front_end(scratch / "mutant.json", data, level)


@pytest.mark.parametrize(
    "text",
    [
        "{ 'a': " + "[" * 100_000,
        "{ 'a': " + "{ 'b': " * 50_000,
        "{ 'struct': 'S', 'data': { 'a': 'int",
        "{ 'struct': 'S' 'data'",
        "##\n# @S:\n",
        "'" * 10_000,
        "\\" * 10_000,
    ],
)
@pytest.mark.parametrize("level", list(Level))
def test_hostile_inputs(tmp_path: Path, text: str, level: Level) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(QAPIError):
        front_end(str(path), level)


def test_huge_valid_input(tmp_path: Path) -> None:
    # ~4 MB: thousands of documented definitions go through without trouble
    parts = []
    for i in range(8000):
        parts.append(
            f"##\n# @T{i}:\n#\n# Type number {i}.\n#\n# @m: a member\n##\n"
            f"{{ 'struct': 'T{i}', 'data': {{ 'm': 'int' }} }}\n"
            + "# filler comment line\n" * 10
        )
    path = tmp_path / "huge.json"
    path.write_text("".join(parts))
    front_end(str(path), Level.PERMISSIVE)
