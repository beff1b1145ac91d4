"""Errors that explain themselves: syntax mistakes a user makes get a note saying
where and why, and input the front end quotes is a short, escaped excerpt (an
`include` of a secret or binary file never replays it)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen.frontend import load_schema
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.source import EXCERPT_CHARS, QAPIError, escape, excerpt


def error_text(text: str, level: Level = Level.V7_2) -> str:
    with pytest.raises(QAPIError) as caught:
        parse_text(text, "t.json", level)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{ "struct": "S", "data": {} }',
            "t.json:1:3: stray '\"'\n"
            "t.json:1:3: note: QAPI strings use single quotes: 'like this'",
        ),
        # a missing '}': the next definition is where the error shows
        (
            "{ 'struct': 'S',\n  'data': { 'a': 'int' }\n{ 'struct': 'T', 'data': {} }\n",
            "t.json:3:1: expected ',' or '}'\n"
            "t.json:1:1: note: this object is not closed: is a '}' missing?",
        ),
        # ... or the end of the file
        (
            "{ 'enum': 'E', 'data': [ 'a', 'b' ]\n",
            "t.json:1:36: expected ',' or '}'\n"
            "t.json:1:1: note: this object is not closed: is a '}' missing?",
        ),
        (
            "{ 'enum': 'E', 'data': [ 'a', 'b'\n\n{ 'enum': 'F', 'data': [] }\n",
            "t.json:3:1: expected ',' or ']'\n"
            "t.json:1:24: note: this array is not closed: is a ']' missing?",
        ),
        # the wrong closing bracket
        (
            "{ 'enum': 'E', 'data': [ 'a', 'b' } }",
            "t.json:1:35: expected ',' or ']'\n"
            "t.json:1:35: note: is a ']' missing before this '}'?",
        ),
        # trailing commas
        (
            "{ 'struct': 'S', 'data': { 'a': 'int', } }",
            "t.json:1:40: expected string\n"
            "t.json:1:38: note: no ',' after an object's last member",
        ),
        (
            "{ 'enum': 'E', 'data': [ 'a',\n ] }",
            "t.json:2:2: expected '{', '[', string, or boolean\n"
            "t.json:1:29: note: no ',' after an array's last value",
        ),
        (
            "{ 'command': 'a' },\n{ 'command': 'b' }",
            "t.json:1:19: expected '{', '[', string, or boolean\n"
            "t.json:1:19: note: definitions are not separated by ','",
        ),
        (
            "{ 'command': 'a' }\n}",
            "t.json:2:1: expected '{', '[', string, or boolean\n"
            "t.json:2:1: note: this '}' closes nothing",
        ),
        # a missing comma between members, on another line than the '{'
        (
            "{ 'struct': 'S', 'data': { 'a': 'int'\n  'b': 'str' } }",
            "t.json:2:3: expected ',' or '}'\n"
            "t.json:2:3: note: is a ',' missing before this?\n"
            "t.json:1:26: note: the object opened here",
        ),
        (
            "{ 'struct': 'S', 'data': { 'a' 'int' } }",
            "t.json:1:32: expected ':'\n"
            "t.json:1:32: note: is a ':' missing before this?",
        ),
        # words JSON or Python would take
        (
            "{ 'command': 'c', 'gen': False }",
            "t.json:1:26: stray 'False'\n"
            "t.json:1:26: note: booleans are lower-case: false",
        ),
        (
            "{ 'command': 'c', 'gen': TRUE }",
            "t.json:1:26: stray 'TRUE'\n"
            "t.json:1:26: note: booleans are lower-case: true",
        ),
        (
            "{ 'command': 'c', 'gen': null }",
            "t.json:1:26: stray 'null'\n"
            "t.json:1:26: note: QAPI has no null: leave the member out",
        ),
        (
            "{ 'struct': 'S', 'data': { 'a': 42 } }",
            "t.json:1:33: stray '42'\n"
            "t.json:1:33: note: QAPI has no numbers: a type is named ('int'),"
            " a value is a string",
        ),
        (
            "{ struct: 'S' }",
            "t.json:1:3: stray 'struct'\nt.json:1:3: note: names are strings: 'struct'",
        ),
        (
            "// the schema\n{ 'command': 'c' }",
            "t.json:1:1: stray '//'\n"
            "t.json:1:1: note: comments start with '#' and run to the end of the line",
        ),
        # tabs: whitespace between tokens, but not inside strings or after '#'
        (
            "{ 'struct': 'S',\n\t'data': { 'a': 'in\tt' } }",
            "t.json:2:24: funny character in string\n"
            "t.json:2:27: note: U+0009 (a tab): strings hold printable ASCII only",
        ),
        (
            "##\n#\t@S:\n##\n{ 'struct': 'S', 'data': {} }",
            "t.json:2:1: missing space after #\n"
            "t.json:2:1: note: '#' is followed by a tab: write '# ' (a space)",
        ),
        (
            "##\n# @S:\n#\n# @a: text\n# \tmore\n##\n{ 'struct': 'S', 'data': {} }",
            "t.json:5:1: unexpected de-indent (expected at least 4 spaces)\n"
            "t.json:5:1: note: this line is indented with a tab, which counts as one"
            " space here: indent doc comments with spaces",
        ),
        (
            "{ 'a': 'b\\n' }",
            "t.json:1:8: unknown escape \\n\n"
            "t.json:1:8: note: the only escape in a string is '\\\\'",
        ),
        (
            "{ 'a': 'no end\n}",
            't.json:1:8: missing terminating "\'"\n'
            "t.json:1:8: note: a string ends on the line it starts on",
        ),
        (
            "{ 'a': 'caf\u00e9' }",
            "t.json:1:8: funny character in string\n"
            "t.json:1:12: note: U+00E9 '\u00e9': strings hold printable ASCII only",
        ),
    ],
)
def test_syntax_errors_say_where_and_why(text: str, expected: str) -> None:
    assert error_text(text) == expected


def test_notes_do_not_change_qemus_line() -> None:
    with pytest.raises(QAPIError) as caught:
        parse_text('{ "a": 1 }', "t.json", Level.V5_2)
    assert caught.value.headline() == "t.json:1:3: stray '\"'"
    assert len(caught.value.notes) == 1
    assert str(caught.value).startswith(caught.value.headline() + "\n")


# ---- quoting input


def test_excerpt_is_short_and_escaped() -> None:
    assert excerpt("name") == "name"
    assert excerpt("x" * 100) == "x" * EXCERPT_CHARS + "..."
    assert excerpt("a\x00b\x1b[31mc\td\ne") == "a\\x00b\\x1b[31mc\\td\\ne"
    # a right-to-left override, a zero-width space, a C1 control
    assert excerpt("a\u202eb\u200bc\x9bd") == "a\\u202eb\\u200bc\\x9bd"
    assert excerpt("caf\u00e9") == "caf\u00e9"
    # a tag character (invisible), an unassigned and a private-use code point
    assert excerpt("a\U000e0041\U000e0fff\ue000") == "a\\U000e0041\\U000e0fff\\ue000"
    assert escape("two\nlines") == "two\nlines"


SECRET = "SECRET_TOKEN=hunter2-" + "x" * 200


def test_an_included_environment_is_not_replayed(tmp_path: Path) -> None:
    """`/proc/self/environ` is NUL-separated text: refused without a quote."""
    (tmp_path / "environ").write_bytes(f"{SECRET}\0PATH=/bin\0".encode())
    (tmp_path / "s.json").write_text("{ 'include': 'environ' }\n")
    with pytest.raises(QAPIError) as caught:
        load_schema(str(tmp_path / "s.json"))
    text = str(caught.value)
    assert "hunter2" not in text and "SECRET" not in text
    assert text.endswith(
        "environ:1:222: NUL character: this is not a QAPI schema (a schema is text)"
    )
    assert text.startswith(f"In file included from {tmp_path}/s.json:1:\n")


def test_a_text_file_included_by_mistake_is_quoted_briefly(tmp_path: Path) -> None:
    (tmp_path / "secrets").write_text(SECRET + "\nmore secrets\n")
    (tmp_path / "s.json").write_text("{ 'include': 'secrets' }\n")
    with pytest.raises(QAPIError) as caught:
        load_schema(str(tmp_path / "s.json"))
    message = caught.value.message
    assert message == f"stray '{SECRET[:EXCERPT_CHARS]}...'"
    assert "more secrets" not in str(caught.value)


def test_control_characters_in_input_are_escaped_everywhere(tmp_path: Path) -> None:
    # in a stray token, in a doc comment's symbol, in a definition's name
    cases = {
        "{ 'a': x\x1b]2;y }": "stray 'x\\x1b'",
        "##\n# @A\x1b]0;pwned\x07:\n##\n{ 'include': 'x.json' }": (
            "documentation for 'A\\x1b]0;pwned\\x07' is not followed"
        ),
        "##\n# @Foo:\n#\n# @a\u202e: x\n# @a\u202e: y\n##\n": "'a\\u202e' parameter",
    }
    for text, words in cases.items():
        for level in Level:
            (tmp_path / "x.json").write_text("")
            (tmp_path / "s.json").write_text(text)
            with pytest.raises(QAPIError) as caught:
                load_schema(str(tmp_path / "s.json"), level)
            shown = str(caught.value)
            assert words in shown, (level, shown)
            assert not _unsafe(shown)


def test_a_long_name_is_quoted_briefly(tmp_path: Path) -> None:
    name = "n" * 5000
    (tmp_path / "s.json").write_text(
        f"{{ 'struct': 'S{name}', 'data': {{ '{name}': 'int', 'x': 'nope' }} }}"
    )
    with pytest.raises(QAPIError) as caught:
        load_schema(str(tmp_path / "s.json"), Level.V7_2)
    assert max(len(line) for line in str(caught.value).splitlines()) < 300


def _unsafe(text: str) -> list[str]:
    """Characters a terminal may act on: controls (but the newline), format
    characters such as bidi overrides, separators, surrogates, private use and
    unassigned code points."""
    return [
        ch
        for ch in text
        if ch != "\n"
        and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_excerpt_property(text: str) -> None:
    shown = excerpt(text)
    assert not _unsafe(shown) and "\n" not in shown
    # bounded: each character becomes at most 10 ("\U000e0041")
    assert len(shown) <= EXCERPT_CHARS * 10 + 3
    if len(text) <= EXCERPT_CHARS and not _unsafe(text) and "\n" not in text:
        assert shown == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(list(Level)))
def test_no_error_replays_unsafe_input(text: str, level: Level) -> None:
    """Whatever text a schema holds, an error shows it escaped and bounded."""
    try:
        parse_text("{ 'a': " + text, "t.json", level)
    except QAPIError as exc:
        shown = str(exc)
        assert not _unsafe(shown)
        assert max(len(line) for line in shown.splitlines()) < 400
        assert not re.search(r"[^\x00-\x7f]{60}", shown)


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("{ 'strcut': 'Sx', 'data': {} }", "is 'strcut' a misspelling of 'struct'?"),
        ("{ 'struct': 'Sx', 'dat': {} }", "is 'dat' a misspelling of 'data'?"),
        (
            "{ 'struct': 'Sx', 'data': {}, 'bse': 'Base' }",
            "is 'bse' a misspelling of 'base'?",
        ),
        ("{ 'struct': 'Sx', 'data': { 'a': 'itn' } }", "did you mean 'int'?"),
        (
            "{ 'struct': 'Colour', 'data': {} }\n"
            "{ 'command': 'paint', 'data': { 'c': 'Color' } }",
            "did you mean 'Colour'?",
        ),
    ],
)
def test_misspellings_get_a_suggestion(tmp_path: Path, text: str, note: str) -> None:
    (tmp_path / "s.json").write_text(text + "\n")
    for level in Level:
        with pytest.raises(QAPIError) as caught:
            load_schema(str(tmp_path / "s.json"), level)
        assert [n.text for n in caught.value.notes] == [note]


def test_no_suggestion_when_nothing_is_close(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{ 'struct': 'Sx', 'data': { 'a': 'zzzz' } }\n")
    with pytest.raises(QAPIError) as caught:
        load_schema(str(tmp_path / "s.json"))
    assert caught.value.notes == ()
