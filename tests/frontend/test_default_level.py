"""The default language level: what any supported release accepts passes, a rule only
some releases enforce is a warning there (and an error at exactly those releases'
levels), what every release rejects is an error; and how warnings are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from qapigen import rules
from qapigen.frontend import load_schema
from qapigen.level import Level
from qapigen.rules import RELEASES, Rule, group_warnings, report_warnings
from qapigen.schema import Schema
from qapigen.source import QAPIError, QAPIWarning, SourceInfo


def load(tmp_path: Path, text: str, level: Level = Level.PERMISSIVE) -> Schema:
    path = tmp_path / "s.json"
    path.write_text(text)
    return load_schema(str(path), level)


def doc(*lines: str) -> str:
    return "##\n" + "".join(f"# {line}\n" if line else "#\n" for line in lines) + "##\n"


LEAF = "{ 'struct': 'Leaf', 'data': { 'x': 'int' } }\n"
LETTER = "{ 'enum': 'Letter', 'data': [ 'a' ] }\n"

# one schema per rule, breaking that rule and nothing else
BREACHES: dict[str, str] = {
    "name-case": "{ 'struct': 'lower_struct', 'data': { 'a': 'int' } }\n"
    "{ 'command': 'Get_It2' }\n"
    "{ 'event': 'lower_event' }\n"
    "{ 'struct': 'Holder', 'data': { 'a_b': 'int' } }\n",
    "name-upper-case": "{ 'struct': 'Holder', 'data': { 'X-foo': 'int' } }\n",
    "name-kind-suffix": "{ 'enum': 'FooKind', 'data': [ 'a' ] }\n",
    "legacy-if": "{ 'struct': 'Foo', 'data': { 'a': 'int' },"
    " 'if': 'defined(CONFIG_A) && !defined(CONFIG_B)' }\n"
    "{ 'struct': 'Bar', 'data': { 'a': 'int' }, 'if': [ 'CONFIG_A', 'CONFIG_B' ] }\n",
    "modern-if": "{ 'struct': 'Foo', 'data': { 'a': 'int' },"
    " 'if': { 'all': [ 'CONFIG_A', { 'not': 'CONFIG_B' } ] } }\n",
    "simple-union": "{ 'union': 'Simple', 'data': { 'a': 'int', 'b': 'str' } }\n",
    "array-alternative": "{ 'alternate': 'Alt', 'data': { 'a': ['int'], 'b': 'str' } }\n",
    "enum-value-features": "{ 'enum': 'Foo',"
    " 'data': [ { 'name': 'a', 'features': [ 'deprecated' ] } ] }\n",
    "legacy-pragma": "{ 'pragma': { 'returns-whitelist': [ 'get-it' ] } }\n"
    "{ 'command': 'get-it', 'returns': 'int' }\n",
    "modern-pragma": "{ 'pragma': { 'command-returns-exceptions': [ 'get-it' ] } }\n"
    "{ 'command': 'get-it', 'returns': 'int' }\n",
    "new-pragma": "{ 'pragma': { 'documentation-exceptions': [ 'Foo' ] } }\n",
    "union-branch-union": LETTER
    + LEAF
    + "{ 'union': 'Inner', 'base': { 'k': 'Letter' }, 'discriminator': 'k',"
    " 'data': { 'a': 'Leaf' } }\n"
    "{ 'union': 'Outer', 'base': { 'j': 'Letter' }, 'discriminator': 'j',"
    " 'data': { 'a': 'Inner' } }\n",
    "special-feature-on-type": "{ 'struct': 'Foo', 'data': { 'a': 'int' },"
    " 'features': [ 'unstable' ] }\n",
    "conditional-unboxed-args": "{ 'command': 'do-it',"
    " 'data': { 'a': { 'type': 'int', 'if': 'CONFIG_A' } } }\n",
    "feature-count": "{ 'struct': 'Foo', 'data': { 'a': 'int' }, 'features': [ "
    + ", ".join(f"'f{i}'" for i in range(64))
    + " ] }\n",
    "returns-type": "{ 'command': 'get-it', 'returns': 'int' }\n",
    # QEMU 10.0's net.json: a paragraph between the members and "Features:"
    "doc-layout-10.0": doc(
        "@Foo:",
        "",
        "@a: a member",
        "",
        "Only some values work.",
        "",
        "Features:",
        "",
        "@deprecated: Member @a is deprecated.",
        "",
        "Since: 7.2",
    )
    + "{ 'struct': 'Foo',"
    " 'data': { 'a': { 'type': 'int', 'features': [ 'deprecated' ] } } }\n",
    "doc-indent-5.0": doc("@Foo:", "", "@a: line one,", "line two", "", "Since: 1.0")
    + "{ 'struct': 'Foo', 'data': { 'a': 'int' } }\n",
    "doc-rejected-by-10.0": doc(
        "@do-it:", "", "Example:", "", '-> { "execute": "do-it" }'
    )
    + "{ 'command': 'do-it' }\n",
    "undocumented-member": doc("@Foo:", "", "@a: documented")
    + "{ 'struct': 'Foo', 'data': { 'a': 'int', 'b': 'int' } }\n",
    "doc-section-place": doc("@do-it:", "", "Returns: nothing")
    + "{ 'command': 'do-it' }\n",
}
RULES = {value.name: value for value in vars(rules).values() if isinstance(value, Rule)}


def test_every_rule_has_a_breaching_schema() -> None:
    assert set(BREACHES) == set(RULES)
    for rule in RULES.values():
        assert rule.enforced_by and rule.enforced_by <= set(RELEASES)
        assert rule.summary and not rule.summary.endswith(")")


@pytest.mark.parametrize("name", sorted(BREACHES))
def test_a_rule_is_a_warning_by_default(tmp_path: Path, name: str) -> None:
    schema = load(tmp_path, BREACHES[name])
    assert schema.warnings
    assert {w.rule.name for w in schema.warnings} == {name}
    for warning in schema.warnings:
        assert warning.info.fname.endswith("s.json") and warning.info.line >= 1
        assert str(warning).endswith(f"({RULES[name].rejected_by()})")


@pytest.mark.parametrize("name", sorted(BREACHES))
@pytest.mark.parametrize("level", RELEASES, ids=lambda level: level.value)
def test_a_rule_is_an_error_exactly_where_enforced(
    tmp_path: Path, name: str, level: Level
) -> None:
    warned = load(tmp_path, BREACHES[name]).warnings
    if level in RULES[name].enforced_by:
        with pytest.raises(QAPIError) as caught:
            load(tmp_path, BREACHES[name], level)
        # at the place of the first warning (in the release's words, which may
        # come from another check: "unknown pragma", "lacks required keys")
        assert caught.value.info is not None
        assert caught.value.info.line == warned[0].info.line
    else:
        assert load(tmp_path, BREACHES[name], level).warnings == []


def test_names_7_2_rejects_are_warned_with_the_name(tmp_path: Path) -> None:
    schema = load(tmp_path, BREACHES["name-case"])
    assert [w.line() for w in schema.warnings] == [
        f"{tmp_path}/s.json:1: warning: struct 'lower_struct': name of a struct must"
        " be CamelCase (QEMU 7.2 and 10.0 reject this)",
        f"{tmp_path}/s.json:2: warning: command 'Get_It2': name of command must be"
        " lower-case words joined by '-' (QEMU 7.2 and 10.0 reject this)",
        f"{tmp_path}/s.json:3: warning: event 'lower_event': name of an event must"
        " be upper-case words joined by '_' (QEMU 7.2 and 10.0 reject this)",
        f"{tmp_path}/s.json:4: warning: struct 'Holder': name of 'data' member 'a_b'"
        " must be lower-case words joined by '-' (QEMU 7.2 and 10.0 reject this)",
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # upper case in a member name: 5.2 and 7.2 both reject it
        (
            "{ 'struct': 'Holder', 'data': { 'Upper': 'int' } }",
            "name of 'data' member 'Upper' must be lower-case",
        ),
        # a condition no C compiler takes becomes no symbol that can never hold
        (
            "{ 'struct': 'Foo', 'data': { 'a': 'int' }, 'if': 'defined(CONFIG_A' }",
            "'if' condition 'defined(CONFIG_A' of struct is not a C preprocessor"
            " expression: it ends where the ')' of 'defined(' should follow",
        ),
        (
            "{ 'struct': 'Foo', 'data': { 'a': 'int' }, 'if': [ 'A', 'B)' ] }",
            "'if' condition 'B)' of struct is not a C preprocessor expression",
        ),
        # the spellings of two releases in one condition
        (
            "{ 'struct': 'Foo', 'data': { 'a': 'int' },"
            " 'if': { 'any': [ 'CONFIG_A', 'defined(CONFIG_B)' ] } }",
            "a C preprocessor expression (QEMU 5.x) cannot be part of an all/any/not",
        ),
        # 'Returns:' outside commands
        (
            doc("@Foo:", "", "Returns: a thing")
            + "{ 'struct': 'Foo', 'data': { 'a': 'int' } }",
            "'Returns:' is only valid for commands",
        ),
        # a doc comment no release reads: a member after a section, then a
        # de-indent
        (
            doc("@Foo:", "", "Since: 1.0", "", "@a: late", "  deeper", "shallower")
            + "{ 'struct': 'Foo', 'data': { 'a': 'int' } }",
            "'@a:' can't follow 'Since' section",
        ),
    ],
)
def test_what_every_release_rejects_is_an_error_by_default(
    tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(QAPIError) as caught:
        load(tmp_path, text + "\n")
    assert words in caught.value.message


def test_malformed_conditions_are_errors_at_every_level(tmp_path: Path) -> None:
    text = "{ 'struct': 'Foo', 'data': { 'a': 'int' }, 'if': 'defined(CONFIG_A' }\n"
    for level in Level:
        with pytest.raises(QAPIError) as caught:
            load(tmp_path, text, level)
        assert "defined(CONFIG_A" in caught.value.message


def test_c_beyond_conditions_is_kept_opaque_under_5_2(tmp_path: Path) -> None:
    text = "{ 'struct': 'Foo', 'data': { 'a': 'int' }, 'if': 'CONFIG_N > 2' }\n"
    for level in (Level.V5_2, Level.PERMISSIVE):
        foo = load(tmp_path, text, level).lookup_type("Foo")
        assert foo is not None
        assert foo.ifcond.names() == {"CONFIG_N > 2"}


def test_a_doc_only_10_0_reads_takes_its_reading(tmp_path: Path) -> None:
    schema = load(tmp_path, BREACHES["doc-layout-10.0"])
    [foo_doc] = schema.docs
    assert [(s.kind, s.text) for s in foo_doc.all_sections] == [
        ("body", ""),
        ("member", "a member"),
        ("plain", "Only some values work."),
        ("feature", "Member @a is deprecated."),
        ("tagged", "7.2"),
    ]
    [warning] = schema.warnings
    assert warning.line(definition=False).endswith(
        ":10:1: warning: '@deprecated:' can't follow 'None' section"
        " (QEMU 5.2 and 7.2 reject this)"
    )


def test_10_0_indentation_is_taken_out_of_its_reading(tmp_path: Path) -> None:
    text = doc(
        "@Foo:",
        "",
        "@a: first line",
        "    second line",
        "",
        "    ::",
        "",
        "      literal",
        "",
        "A paragraph.",
        "",
        "Features:",
        "",
        "@feat: text",
    ) + ("{ 'struct': 'Foo', 'data': { 'a': 'int' }, 'features': [ 'feat' ] }\n")
    with pytest.raises(QAPIError):
        load(tmp_path, text, Level.V7_2)
    ten = load(tmp_path, text, Level.V10_0).docs[0].args["a"].text
    default = load(tmp_path, text).docs[0].args["a"].text
    assert ten == "first line\n    second line\n\n    ::\n\n      literal"
    assert default == "first line\nsecond line\n\n::\n\n  literal"


def test_the_further_error_wins_when_no_reading_accepts_a_doc(tmp_path: Path) -> None:
    # 7.2's reading stops at line 10 ("Features:" after a paragraph), 10.0's at
    # line 14 (a 'Note:' section): the further one is the likelier dialect
    text = BREACHES["doc-layout-10.0"].replace(
        "# Since: 7.2\n", "# Since: 7.2\n#\n# Note: a note\n"
    )
    with pytest.raises(QAPIError) as caught:
        load(tmp_path, text)
    assert caught.value.info is not None and caught.value.info.line == 14
    assert "'Note' section is no longer supported" in caught.value.message
    # 7.2's reading gets further here: "@a:" after a section at line 5; 10.0
    # stops there too ("follows a section")
    text = doc("@Foo:", "", "Since: 1.0", "@a: x") + LEAF.replace("Leaf", "Foo")
    with pytest.raises(QAPIError) as caught:
        load(tmp_path, text)
    assert caught.value.info is not None and caught.value.info.line == 5
    assert caught.value.message == "'@a:' can't follow 'Since' section"


# ---- reporting


def warning(line: int, rule: Rule, message: str = "m") -> QAPIWarning:
    info = SourceInfo("a.json", line, 1, SourceInfo("top.json", 3))
    return QAPIWarning(info.in_definition("struct", "Foo"), message, rule)


def test_warnings_group_by_rule_in_order_of_first_place() -> None:
    found = [
        warning(5, rules.NAME_CASE),
        warning(2, rules.LEGACY_IF),
        warning(9, rules.NAME_CASE),
    ]
    groups = group_warnings(found)
    assert [(g.rule.name, len(g.warnings)) for g in groups] == [
        ("name-case", 2),
        ("legacy-if", 1),
    ]
    assert report_warnings(found) == [
        "a.json:5:1: warning: names that break the case rules of QEMU 7.2 and later:"
        " 2 places, the first here (QEMU 7.2 and 10.0 reject them)",
        "a.json:2:1: warning: struct 'Foo': m (QEMU 7.2 and 10.0 reject this)",
    ]
    # verbose: every place, with its include chain and definition
    assert report_warnings(found, verbose=True)[0] == (
        "In file included from top.json:3:\n"
        "a.json: In struct 'Foo':\n"
        "a.json:5:1: warning: m (QEMU 7.2 and 10.0 reject this)"
    )
    assert report_warnings([]) == []


def test_who_rejects_reads_well() -> None:
    assert rules.MODERN_IF.rejected_by() == "QEMU 5.2 rejects this"
    assert rules.DOC_LAYOUT_10.rejected_by("them") == "QEMU 5.2 and 7.2 reject them"
    assert rules.RETURNS_TYPE.rejected_by() == (
        "every QEMU release rejects this, unless the schema that includes this file"
        " lists the command in that pragma"
    )


def test_the_7_2_schema_reports_one_line_per_rule() -> None:
    from qapigen_testing.paths import shared_path

    path = shared_path("qemu", "7.2", "qapi", "qapi-schema.json")
    schema = load_schema(str(path))
    lines = report_warnings(schema.warnings)
    # hundreds of places, a line for each rule
    assert len(schema.warnings) > 500
    assert len(lines) == len({w.rule.name for w in schema.warnings}) < 12
    assert all("\n" not in line and ": warning: " in line for line in lines)
    assert any("'Note:' and 'Example:'" in line for line in lines)


def test_the_readme_counts_the_rules() -> None:
    from qapigen_testing.paths import REPO

    readme = (REPO / "README.md").read_text()
    assert f"lists the {len(RULES)} rules" in readme


@pytest.mark.parametrize("release", ["5.2", "7.2", "10.0"])
def test_qapigen_check_takes_a_complete_schema_without_flags(release: str) -> None:
    """The command a user runs: exit 0, a warning line per rule, no traceback."""
    import subprocess
    import sys

    from qapigen_testing.paths import release_root

    path = release_root(release) / "qapi" / "qapi-schema.json"
    if not path.exists():
        pytest.skip(f"QEMU {release}'s schema is absent")
    result = subprocess.run(
        [sys.executable, "-m", "qapigen.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    rules_met = {w.rule.name for w in load_schema(str(path)).warnings}
    assert len(lines) == len(rules_met)
    assert all(": warning: " in line for line in lines)
