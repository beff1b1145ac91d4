"""Text from the schema never becomes code: whatever a file name, a doc comment or a
wire string holds, the generated package compiles, importing it runs nothing but the
generated code, and the text shows intact where the package shows it.

Every text reaches generated code through one of two functions of qapigen.render:
`py_string` (a string literal) and `docstring` (prose). The properties below check them
on any text (lone surrogates included); the schema cases then put each hostile string
in every slot of the schema that carries free text (the schema's file name, the doc
comment of every kind of definition, member, enum value, feature and tagged section),
generate, write, import and use the package, and check black leaves it alone.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import black
import pytest
from black.mode import TargetVersion
from hypothesis import given, settings
from hypothesis import strategies as st

import qapigen.template_folder
from qapigen.frontend import schema_from_parsed
from qapigen.generate import generate_package
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.render import docstring, py_string, shown_text
from qapigen_testing.cli import run_qapigen
from qapigen_testing.generated_packages import imported_package

BLACK = black.Mode(line_length=88, target_versions={TargetVersion.PY311})

# What a payload does if it ever runs: a flag no generated code sets.
PAYLOAD = "import builtins; builtins.QAPIGEN_PWNED = 1"

HOSTILE = [
    f'x"""\n{PAYLOAD}\n"""',
    f"x'''\n{PAYLOAD}\n'''",
    f'"""; {PAYLOAD}  #',
    f'\\"""; {PAYLOAD}  #',
    "ends with a backslash \\",
    'ends with a quote: "',
    '"quoted at both ends"',
    "NUL \x00 BEL \x07 ESC \x1b[31m DEL \x7f",
    "CR \r VT \x0b FF \x0c FS \x1c NEL \x85 LS \u2028 PS \u2029",
    "bidi \u202e\u2066 trojan \u2069\u202c zero width \u200b\ufeff",
    "lone surrogates \ud800 \udfff \udcff",
    "{{ 7 * 7 }} {% raw %} {# x #} {%- endraw %} {{ schema_name }}",
    "\ttab and trailing spaces   ",
    "escapes spelled out: \\N{BULLET} \\x41 \\u0041 \\n",
    "private \ue000 unassigned \U000e0080 astral \U0001f600",
]


def _shown(text: str) -> list[str]:
    """The parts of `text` a docstring must show: its words, whitespace aside (a
    docstring strips the ends of lines, tabs become spaces, and lone surrogates
    show as their escapes)."""
    return [word for word in shown_text(text).replace("\t", " ").split() if word]


# ---------------------------------------------------------------- the two functions

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_py_string_is_a_literal_of_any_text(text: str) -> None:
    literal = py_string(text)
    assert ast.literal_eval(literal) == text
    line = f"x = {literal}\n"
    line.encode("utf-8")  # nothing unencodable is left in the source
    assert black.format_str(line, mode=BLACK) == line


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_docstring_shows_any_text_and_is_only_a_string(text: str) -> None:
    literal = docstring(text, "    ")
    source = f"def f() -> None:\n{literal}\n    pass\n" if literal else ""
    source.encode("utf-8")
    tree = ast.parse(source)
    if not literal:
        assert not text.replace("\t", " ").strip(" \n")
        return
    (function,) = tree.body
    assert isinstance(function, ast.FunctionDef)
    first, second = function.body  # the docstring is one expression, nothing more
    assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    assert isinstance(second, ast.Pass)
    shown = first.value.value
    assert isinstance(shown, str)
    for word in _shown(text):
        assert word in shown
    assert black.format_str(source, mode=BLACK) == source


# ---------------------------------------------------------------- whole packages


def _doc(text: str) -> str:
    """`text` as the lines of a doc comment."""
    return "\n".join(f"# {line}" if line else "#" for line in text.split("\n"))


def _schema(body: str, line: str) -> str:
    """A schema with `body` as the description of every definition and `line` in
    every one-line slot of its doc comments: members, values, features, sections."""
    return f"""
##
# @Colour:
#
{_doc(body)}
#
# @red: {line}
# @blue: {line}
#
# Since: {line}
##
{{ 'enum': 'Colour', 'data': [ 'red', 'blue' ] }}

##
# @Thing:
#
{_doc(body)}
#
# @colour: {line}
# @count: {line}
#
# Features:
# @unstable: {line}
#
# Since: {line}
##
{{ 'struct': 'Thing', 'data': {{ 'colour': 'Colour', '*count': 'int' }},
  'features': [ 'unstable' ] }}

##
# @Shape:
#
{_doc(body)}
#
# @kind: {line}
##
{{ 'union': 'Shape', 'base': {{ 'kind': 'Colour' }}, 'discriminator': 'kind',
  'data': {{ 'red': 'Thing', 'blue': 'Thing' }} }}

##
# @ThingOrName:
#
{_doc(body)}
#
# @thing: {line}
# @name: {line}
##
{{ 'alternate': 'ThingOrName', 'data': {{ 'thing': 'Thing', 'name': 'str' }} }}

##
# @make-thing:
#
{_doc(body)}
#
# @colour: {line}
# @name: {line}
#
# Features:
# @deprecated: {line}
#
# Returns: {line}
#
# Since: {line}
##
{{ 'command': 'make-thing', 'data': {{ 'colour': 'Colour', 'name': 'ThingOrName' }},
  'returns': 'Thing', 'features': [ 'deprecated' ] }}

##
# @THING_MADE:
#
{_doc(body)}
#
# @thing: {line}
##
{{ 'event': 'THING_MADE', 'data': {{ 'thing': 'Thing' }} }}
"""


# Doc comments are schema text: NUL is refused there with a located error (a test
# below), every other hostile string reaches the generator.
DOC_HOSTILE = [text for text in HOSTILE if "\x00" not in text and "\ud800" not in text]


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


@pytest.fixture(autouse=True)
def _nothing_ran() -> object:
    yield
    assert not hasattr(builtins, "QAPIGEN_PWNED"), "a payload ran"


def _check_black(files: dict[str, str]) -> None:
    for path, source in files.items():
        if path.endswith(".py"):
            source.encode("utf-8")
            assert black.format_str(source, mode=BLACK) == source, path


def _use(pkg: ModuleType) -> dict[str, str | None]:
    """Import and use every part of the package; the docstrings it shows, by what."""
    for part in ("types", "events", "commands", "introspection"):
        importlib.import_module(f"{pkg.__name__}.{part}")
    t = pkg.types
    thing = t.Thing(colour=t.Colour.RED, count=3)
    assert t.Thing.from_wire(thing.to_wire()).to_wire() == thing.to_wire()
    wire = {"kind": "blue", "colour": "red"}
    assert t.decode_shape(wire).to_wire() == wire
    assert t.decode_thing_or_name("x") == "x"
    event = pkg.events.decode_event("THING_MADE", {"thing": {"colour": "red"}})
    assert event is not None
    assert pkg.commands.CommandDispatcher is not None
    assert pkg.introspection.schema_info()
    return {
        "package": pkg.__doc__,
        "commands": pkg.commands.__doc__,
        "enum": t.Colour.__doc__,
        "struct": t.Thing.__doc__,
        "union": t.decode_shape.__doc__,
        "alternate": t.decode_thing_or_name.__doc__,
        "command": pkg.commands.SyncClient.make_thing.__doc__,
        "event": type(event).__doc__,
    }


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_schema_name(hostile: str, tmp_path: Path) -> None:
    schema = schema_from_parsed(
        parse_text(_schema("A doc.", "a line"), "s.json", Level.PERMISSIVE),
        "s.json",
        Level.PERMISSIVE,
    )
    files = generate_package(schema, "hostile_name", hostile)
    _check_black(files)
    with imported_package(files, tmp_path, "hostile_name") as pkg:
        assert hostile == pkg.SCHEMA_NAME
        docs = _use(pkg)
    for what in ("package", "commands"):
        shown = docs[what] or ""
        for word in _shown(hostile):
            assert word in shown, (what, word)


@pytest.mark.parametrize("hostile", DOC_HOSTILE, ids=range(len(DOC_HOSTILE)))
def test_hostile_doc_comments(hostile: str, tmp_path: Path) -> None:
    line = _one_line(hostile)
    text = _schema(hostile, line)
    schema = schema_from_parsed(
        parse_text(text, "s.json", Level.PERMISSIVE), "s.json", Level.PERMISSIVE
    )
    files = generate_package(schema, "hostile_doc", "s.json")
    _check_black(files)
    with imported_package(files, tmp_path, "hostile_doc") as pkg:
        docs = _use(pkg)
    for what, shown in docs.items():
        if what in ("package", "commands"):
            continue
        for word in _shown(hostile):
            assert word in (shown or ""), (what, word)
    for word in _shown(line):
        assert word in (docs["struct"] or "")  # a member's doc line


def test_nul_in_a_doc_comment_is_a_located_error(tmp_path: Path) -> None:
    schema = tmp_path / "nul.json"
    schema.write_text(_schema("a NUL \x00 here", "x"))
    result = run_qapigen("generate", str(schema), "-o", str(tmp_path / "out" / "pkg"))
    assert result.returncode == 1, result.stderr
    assert f"{schema}:5:9: NUL character" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name",
    [
        'x"""\nimport os; os.system("touch PWNED")\n""".json',
        "x'''\nimport os; os.system('touch PWNED')\n'''.json",
        'back\\slash "quote" \u202ebidi.json',
    ],
    ids=["triple-double", "triple-single", "backslash-bidi"],
)
def test_hostile_file_name_end_to_end(name: str, tmp_path: Path) -> None:
    """The issue's case through the command line: exit 0, then importing and using
    the package runs nothing."""
    (tmp_path / name).write_text("{ 'enum': 'Colour', 'data': [ 'red' ] }\n")
    result = run_qapigen("generate", name, "-o", "out/pkg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    use = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pkg, pkg.types, pkg.commands, pkg.events, pkg.introspection\n"
            "assert pkg.types.Colour.RED.value == 'red'\n"
            "print(pkg.SCHEMA_NAME)",
        ],
        cwd=tmp_path / "out",
        capture_output=True,
        text=True,
    )
    assert use.returncode == 0, use.stderr
    assert use.stdout == name + "\n"
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "out" / "PWNED").exists()


def test_undecodable_file_name_end_to_end(tmp_path: Path) -> None:
    """A file name that is not UTF-8 reaches the generator with lone surrogates."""
    raw = bytes(tmp_path) + b"/bad\xff\xfe.json"
    with open(raw, "wb") as out:
        out.write(b"{ 'enum': 'Colour', 'data': [ 'red' ] }\n")
    name = "bad\udcff\udcfe.json"
    result = run_qapigen("generate", name, "-o", "out/pkg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    use = subprocess.run(
        [sys.executable, "-c", "import pkg.types; print(ascii(pkg.SCHEMA_NAME))"],
        cwd=tmp_path / "out",
        capture_output=True,
        text=True,
    )
    assert use.returncode == 0, use.stderr
    assert use.stdout == ascii(name) + "\n"


def test_templates_put_no_variable_inside_a_literal() -> None:
    """Text reaches a docstring or a string only through `docstring` or `py_string`:
    no template interpolates a variable between quotes itself."""
    folder = Path(qapigen.template_folder.templates_folder())
    templates = sorted(folder.glob("*.j2"))
    assert templates
    for template in templates:
        text = template.read_text()
        for index, chunk in enumerate(text.split('"""')):
            if index % 2:  # inside a triple-quoted literal
                assert "{{" not in chunk, (template.name, chunk)
        for line in text.splitlines():
            for quote in ('"{{', "'{{"):
                assert quote not in line, (template.name, line)
