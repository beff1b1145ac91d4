"""Doc comments: the layout rules of QEMU 5.2, 7.2 and 10.0, the permissive level's
warnings, and what the IR stage reads (sections, connect, check)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from qapigen.doc import QAPIDoc
from qapigen.level import Level
from qapigen.parser import parse_schema, parse_text
from qapigen.source import QAPIError, SourceInfo

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@dataclass
class Member:
    """Stands for an IR member or feature: what connect_member/feature use."""

    name: str
    info: SourceInfo | None = None
    role: str = "member"


def docs_of(text: str, level: Level = Level.V7_2) -> list[QAPIDoc]:
    return parse_text(text, "d.json", level).docs


def doc_error(text: str, level: Level = Level.V7_2) -> str:
    with pytest.raises(QAPIError) as caught:
        parse_text(text, "d.json", level)
    return str(caught.value)


def block(*lines: str, expr: str = "{ 'command': 'foo' }") -> str:
    body = "".join(f"# {line}\n" if line else "#\n" for line in lines)
    return f"##\n{body}##\n{expr}\n"


# ---- QEMU's doc-good case, as its test dump prints the docs ----


def _dump(doc: QAPIDoc) -> list[str]:
    """QEMU's test-harness form of one doc (without undocumented-member stubs)."""
    out = [f"doc symbol={doc.symbol}" if doc.symbol else "doc freeform"]
    out += ["    body=", *doc.body.text.split("\n")]
    for name, section in doc.args.items():
        out += [f"    arg={name}", *section.text.split("\n")]
    for name, section in doc.features.items():
        out += [f"    feature={name}", *section.text.split("\n")]
    for section in doc.sections:
        out += [f"    section={section.name}", *section.text.split("\n")]
    return out


@pytest.mark.parametrize(
    "version,level",
    [("5.2", Level.V5_2), ("7.2", Level.V7_2), ("7.2", Level.PERMISSIVE)],
)
def test_doc_good_matches_qemu_dump(version: str, level: Level) -> None:
    folder = SHARED / "qemu" / version / "qapi-schema-tests"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: QEMU's test corpora live there")
    schema = parse_text((folder / "doc-good.json").read_text(), "doc-good.json", level)
    text = (folder / "doc-good.out").read_text()
    expected = text[text.index("doc freeform") :].rstrip("\n").split("\n")
    # QEMU's dump also shows an empty description (one empty line) for each
    # undocumented member, which the IR stage adds through connect_member; drop
    # those to compare the parse alone.
    documented = {name for doc in schema.docs for name in doc.args}
    trimmed: list[str] = []
    lines = iter(expected)
    for line in lines:
        if line.startswith("    arg=") and line[8:] not in documented:
            assert next(lines) == ""
            continue
        trimmed.append(line)
    assert [line for doc in schema.docs for line in _dump(doc)] == trimmed


def test_free_form_headings_split_blocks_legacy() -> None:
    docs = docs_of(block("= One", "", "text", "== Two", "more", expr=""))
    assert [d.body.text for d in docs] == ["= One\n\ntext", "== Two\nmore"]
    assert all(d.symbol is None and d.info.line == 1 for d in docs)


# ---- QEMU 5.2 / 7.2 layout rules ----


@pytest.mark.parametrize(
    "lines,where,message",
    [
        (("@foo:", "@a: line one", "line two"), "4:1", "unexpected de-indent"),
        (("@foo", ""), "2:1", "line should end with ':'"),
        (("@:",), "2:1", "name required after '@'"),
        (("@foo:", "@: x"), "3:1", "invalid parameter name"),
        (("@foo:", "@a: x", "@a: y"), "4:1", "'a' parameter name duplicated"),
        (("@foo:", "Since: 1", "Since: 2"), "4:1", "duplicated 'Since' section"),
        (("@foo:", "Returns: 1", "Returns: 2"), "4:1", "duplicated 'Returns' section"),
        (("@foo:", "Note:"), "4:1", "empty doc section 'Note'"),
        (("@foo:", "Since: 1", "@a: x"), "4:1", "'@a:' can't follow 'Since' section"),
        (("text", "@a: x"), "3:1", "'@a:' not allowed in free-form documentation"),
        (("@foo:", "= Heading"), "3:1", "unexpected '=' markup"),
    ],
)
def test_legacy_layout_errors(lines: tuple[str, ...], where: str, message: str) -> None:
    text = block(*lines)
    if lines[0].startswith("text"):
        text = block(*lines, expr="")
    assert doc_error(text).startswith(f"d.json:{where}: {message}")


def test_legacy_comment_form_errors() -> None:
    assert doc_error("##\n#@foo:\n##\n") == "d.json:2:1: missing space after #"
    assert doc_error("## x\n##\n") == (
        "d.json:1:1: junk after '##' at start of documentation comment"
    )
    assert doc_error("##\n# x\n## x\n") == (
        "d.json:3:1: junk after '##' at end of documentation comment"
    )
    assert doc_error("##\n# x\n{ 'enum': 'E' }\n") == (
        "d.json:3:1: documentation comment must end with '##'"
    )
    # an earlier layout error wins over the missing end
    assert doc_error("##\n#x\n") == "d.json:2:1: missing space after #"


def test_legacy_definition_doc_placement() -> None:
    assert doc_error(block("@foo:", expr="{ 'include': 'x.json' }")) == (
        "d.json:1: documentation for 'foo' is not followed by the definition"
    )
    assert doc_error(block("@foo:", expr="")) == (
        "d.json:1: documentation for 'foo' is not followed by the definition"
    )
    assert (
        doc_error(block("free form")) == "d.json:1: definition documentation required"
    )


def test_level_5_2_wording() -> None:
    assert doc_error(block("@:"), Level.V5_2) == "d.json:2:1: invalid name"


def test_legacy_sections_and_indentation() -> None:
    [doc] = docs_of(
        block(
            "@foo:",
            "Body text.",
            "",
            "@a: first",
            "    second",
            "",
            "@b:",
            "unindented after a bare header",
            "",
            "Features:",
            "@feat: a feature",
            "",
            "Returns: something",
            "         on two lines",
            "Since: 1.0",
        )
    )
    assert doc.symbol == "foo" and doc.body.text == "Body text."
    assert {k: v.text for k, v in doc.args.items()} == {
        "a": "first\nsecond",
        "b": "unindented after a bare header",
    }
    assert doc.features["feat"].text == "a feature"
    assert [(s.name, s.tag, s.text) for s in doc.sections] == [
        ("Returns", "Returns", "something\non two lines"),
        ("Since", "Since", "1.0"),
    ]
    assert doc.args["a"].info.line == 5 and doc.args["a"].kind == "member"


# ---- the permissive level ----


def _doc_summary(docs: list[QAPIDoc]) -> list[object]:
    return [
        (
            d.symbol,
            d.body.text,
            [(k, v.text) for k, v in d.args.items()],
            [(k, v.text) for k, v in d.features.items()],
            [(v.name, v.text) for v in d.sections],
        )
        for d in docs
    ]


@pytest.mark.parametrize("version,level", [("5.2", Level.V5_2), ("7.2", Level.V7_2)])
def test_permissive_reads_release_schemas_like_the_release(
    version: str, level: Level
) -> None:
    root = SHARED / "qemu" / version / "qapi" / "qapi-schema.json"
    if not root.exists():
        pytest.skip(f"{root} is absent")
    strict = parse_schema(str(root), level)
    permissive = parse_schema(str(root), Level.PERMISSIVE)
    assert len(strict.docs) > 500
    assert _doc_summary(permissive.docs) == _doc_summary(strict.docs)


def test_permissive_turns_5_2_indentation_into_warning() -> None:
    schema = parse_text(
        block("@foo:", "@a: line one", "line two"), "d.json", Level.PERMISSIVE
    )
    assert schema.docs[0].args["a"].text == "line one\nline two"
    [warning] = schema.warnings
    assert str(warning).startswith("d.json:4:1: warning: unexpected de-indent")


def test_permissive_accepts_10_0_indentation_with_a_warning_per_section() -> None:
    text = block("@foo:", "@abc: Lorem ipsum", "    dolor sit", "      amet")
    schema = parse_text(text + text.replace("foo", "bar"), "d.json", Level.PERMISSIVE)
    assert [d.args["abc"].text for d in schema.docs] == [
        "Lorem ipsum\ndolor sit\n  amet"
    ] * 2
    assert [str(w) for w in schema.warnings] == [
        f"d.json:{line}:1: warning: unexpected de-indent (expected at least 6"
        " spaces) (QEMU 5.2 and 7.2 reject this)"
        for line in (4, 11)
    ]
    assert {w.rule.name for w in schema.warnings} == {"doc-layout-10.0"}
    # the same text is an error at the 5.2 and 7.2 levels
    for level in (Level.V5_2, Level.V7_2):
        assert doc_error(text, level) == (
            "d.json:4:1: unexpected de-indent (expected at least 6 spaces)"
        )


def test_permissive_warns_about_sections_10_0_rejects() -> None:
    text = block("@foo:", "", "Example:", "-> in")
    schema = parse_text(text, "d.json", Level.PERMISSIVE)
    assert schema.docs[0].sections[0].name == "Example"
    assert [str(w) for w in schema.warnings] == [
        "d.json:4:1: warning: The 'Example' section is no longer supported. Please"
        " use the '.. qmp-example::' directive, or other suitable markup instead."
        " (QEMU 10.0 rejects this)"
    ]
    # one per doc comment: 10.0's reading stops at the first
    text += block("@bar:", "Notes: x", "", "Examples: y")
    schema = parse_text(text, "d.json", Level.PERMISSIVE)
    assert [w.info.location() for w in schema.warnings] == [
        "d.json:4:1",
        "d.json:10:1",
    ]
    assert {w.rule.name for w in schema.warnings} == {"doc-rejected-by-10.0"}


def test_permissive_reads_10_0_sections() -> None:
    text = block(
        "@foo:",
        "",
        "Returns: r",
        "",
        "Errors: e",
        "",
        ".. note:: a paragraph after a section",
    )
    schema = parse_text(text, "d.json", Level.PERMISSIVE)
    assert [(s.name, s.text) for s in schema.docs[0].sections] == [
        ("Returns", "r"),
        ("Errors", "e"),
        (None, ".. note:: a paragraph after a section"),
    ]
    assert schema.warnings == []
    # 7.2 knows no Errors: tag, and rejects the unindented paragraph
    assert doc_error(text, Level.V7_2) == (
        "d.json:6:1: unexpected de-indent (expected at least 9 spaces)"
    )


# ---- QEMU 10.0 layout rules ----

SPEC_EXAMPLE = """\
##
# @query-blockstats:
#
# Query the @BlockStats for all virtual block devices.
#
# @query-nodes: If true, the command will query all the block nodes
#     ... explain, explain ...
#     (Since 2.3)
#
# Returns: A list of @BlockStats for each virtual block devices.
#
# Errors:
#     - If @device does not exist, DeviceNotFound
#
# Since: 0.14
#
# .. qmp-example::
#
#     -> { "execute": "query-blockstats" }
##
{ 'command': 'query-blockstats',
  'data': { '*query-nodes': 'bool' },
  'returns': ['BlockStats'] }
"""


def test_10_0_reads_the_specification_example() -> None:
    [doc] = docs_of(SPEC_EXAMPLE, Level.V10_0)
    assert doc.symbol == "query-blockstats"
    assert doc.body.text == "Query the @BlockStats for all virtual block devices."
    # 10.0 keeps the continuation lines' indentation (the rST renderer dedents)
    assert doc.args["query-nodes"].text == (
        "If true, the command will query all the block nodes\n"
        "    ... explain, explain ...\n    (Since 2.3)"
    )
    assert [(s.kind, s.name) for s in doc.sections] == [
        ("tagged", "Returns"),
        ("tagged", "Errors"),
        ("tagged", "Since"),
        ("plain", None),
    ]
    assert doc.sections[1].text == "    - If @device does not exist, DeviceNotFound"
    assert doc.sections[3].text.startswith(".. qmp-example::\n\n    -> {")
    doc.connect_member(Member("query-nodes"))
    doc.check_expr({"command": "query-blockstats", "returns": ["BlockStats"]})
    doc.check()


def test_10_0_descriptions_and_untagged_paragraphs() -> None:
    [doc] = docs_of(
        block(
            "@foo:",
            "",
            "Intro.",
            "",
            "@a:",
            "  starts on the next line,",
            "  indented",
            "@b: same line",
            "    then indented",
            "",
            "Features:",
            "@f: a feature",
            "",
            "@b is mentioned, not described",
            "",
            "TODO: later",
            "",
            "Note::",
            "    a literal block, not a section",
            "",
            "Examples::",
            "",
            "  - neither",
            "",
            "Since: 10.0",
        ),
        Level.V10_0,
    )
    assert doc.body.text == "Intro."
    assert doc.args["a"].text == "  starts on the next line,\n  indented"
    assert doc.args["b"].text == "same line\n    then indented"
    assert doc.features["f"].text == "a feature"
    assert [(s.kind, s.name, s.text) for s in doc.sections] == [
        ("plain", None, "@b is mentioned, not described"),
        ("tagged", "TODO", "later"),
        (
            "plain",
            None,
            "Note::\n    a literal block, not a section\n\nExamples::\n\n  - neither",
        ),
        ("tagged", "Since", "10.0"),
    ]


@pytest.mark.parametrize(
    "lines,where,message",
    [
        (("@foo:", "", "Note: x"), "4:1", "The 'Note' section is no longer supported"),
        (("@foo:", "", "Example:"), "4:1", "The 'Example' section is no longer"),
        (("@foo:", "Since: 1", "", "@a: x"), "5:1", "description of '@a:' follows"),
        (("@foo:", "@a: x", "    y", "  z"), "5:1", "unexpected de-indent"),
        (("@foo:", "Features:", "", "text"), "5:1", "feature descriptions expected"),
        (("@foo:", "Since: 1", "Since: 2"), "4", "duplicated 'Since' section"),
        (("@foo:", "Errors: a", "Errors: b"), "4", "duplicated 'Errors' section"),
        (("@foo:", "Since:"), "3", "text required after 'Since:'"),
        (("@foo:", "@a:"), "3", "text required after '@a:'"),
        (("@foo:", "== Heading"), "3:1", "unexpected '=' markup"),
    ],
)
def test_10_0_layout_errors(lines: tuple[str, ...], where: str, message: str) -> None:
    assert doc_error(block(*lines), Level.V10_0).startswith(
        f"d.json:{where}: {message}"
    )


def test_10_0_headings_and_free_form() -> None:
    [doc] = docs_of(block("= Title", "", "text", expr=""), Level.V10_0)
    assert doc.symbol is None and doc.body.text == "= Title\n\ntext"
    assert doc_error(block("text", "= Late", expr=""), Level.V10_0) == (
        "d.json:3:1: '=' heading must come first in a comment block"
    )
    # section tags are only recognized at the start of a paragraph
    [doc] = docs_of(block("@foo:", "Text", "Since: 1"), Level.V10_0)
    assert doc.body.text == "Text\nSince: 1" and doc.sections == []


# ---- connect / check_expr / check, per level ----


def test_connect_and_check_legacy() -> None:
    [doc] = docs_of(block("@foo:", "@a: x", "", "Features:", "@f: y"))
    doc.connect_member(Member("a"))
    doc.connect_member(Member("b"))  # undocumented: an empty stub, as QEMU's dump
    doc.connect_feature(Member("f"))
    assert doc.args["b"].text == "" and doc.args["a"].member is not None
    assert list(doc.args) == ["a", "b"]
    doc.check()
    with pytest.raises(QAPIError, match="feature 'g' lacks documentation"):
        doc.connect_feature(Member("g"))


@pytest.mark.parametrize(
    "level,message",
    [
        (Level.V5_2, "d.json:1: documented member 'f' does not exist"),
        (Level.V7_2, "d.json:1: documented feature 'f' does not exist"),
        (Level.V10_0, "d.json:6: documented feature 'f' does not exist"),
    ],
)
def test_check_reports_bogus_descriptions(level: Level, message: str) -> None:
    [doc] = docs_of(block("@foo:", "@a: x", "", "Features:", "@f: y"), level)
    doc.connect_member(Member("a"))
    with pytest.raises(QAPIError) as caught:
        doc.check()
    assert str(caught.value) == message


def test_check_reports_all_bogus_members() -> None:
    [doc] = docs_of(block("@foo:", "@a: x", "@b: y"))
    with pytest.raises(QAPIError) as caught:
        doc.check()
    assert str(caught.value) == "d.json:1: documented members 'a', 'b' do not exist"


def test_returns_only_for_commands() -> None:
    [doc] = docs_of(block("@foo:", "Returns: x"))
    doc.check_expr({"command": "foo"})
    with pytest.raises(QAPIError, match="'Returns:' is only valid for commands"):
        doc.check_expr({"event": "FOO"})
    [doc] = docs_of(block("@foo:", "Returns: x"), Level.V10_0)
    with pytest.raises(QAPIError, match="command doesn't return anything"):
        doc.check_expr({"command": "foo"})
    [doc] = docs_of(block("@FOO:", "Errors: x", expr="{ 'event': 'FOO' }"), Level.V10_0)
    with pytest.raises(QAPIError, match="'Errors' section is only valid"):
        doc.check_expr({"event": "FOO"})


def test_10_0_requires_member_docs_unless_excepted() -> None:
    text = block("@foo:", "@a: x")
    [doc] = docs_of(text, Level.V10_0)
    where = SourceInfo("d.json", 9)
    with pytest.raises(QAPIError) as caught:
        doc.connect_member(Member("b", where, role="value"))
    assert str(caught.value) == "d.json:9: value 'b' lacks documentation"
    pragma = "{ 'pragma': { 'documentation-exceptions': [ 'foo' ] } }\n"
    [doc] = docs_of(pragma + text, Level.V10_0)
    doc.connect_member(Member("b", where))
    assert doc.args["b"].text == ""
    # 7.2 accepts undocumented members without a word, the default level warns
    schema = parse_text(text, "d.json", Level.V7_2)
    schema.docs[0].connect_member(Member("b", where))
    assert schema.warnings == [] and schema.docs[0].args["b"].text == ""
    schema = parse_text(text, "d.json", Level.PERMISSIVE)
    schema.docs[0].connect_member(Member("b", where))
    assert [str(w) for w in schema.warnings] == [
        "d.json:9: warning: member 'b' lacks documentation (QEMU 10.0 rejects this)"
    ]
    assert schema.docs[0].args["b"].text == ""
    schema = parse_text(pragma + text, "d.json", Level.PERMISSIVE)
    schema.docs[0].connect_member(Member("b", where))
    assert [w.rule.name for w in schema.warnings] == ["new-pragma"]
