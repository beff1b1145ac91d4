"""Conditions: legacy C preprocessor strings and modern objects, one tree."""

from __future__ import annotations

import pytest

from qapigen.ifcond import (
    ALWAYS,
    ConditionSyntaxError,
    IfAll,
    IfAny,
    IfCond,
    IfName,
    IfNot,
    parse_legacy,
)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("defined(CONFIG_X)", IfName("CONFIG_X")),
        ("defined CONFIG_X", IfName("CONFIG_X")),
        ("CONFIG_X", IfName("CONFIG_X")),
        ("!defined(A)", IfNot(IfName("A"))),
        (
            "defined(A) || defined(B) || defined(C)",
            IfAny((IfName("A"), IfName("B"), IfName("C"))),
        ),
        (
            "defined(A) && !(defined(B) || defined(C))",
            IfAll((IfName("A"), IfNot(IfAny((IfName("B"), IfName("C")))))),
        ),
        # && binds tighter than ||
        (
            "defined(A) || defined(B) && defined(C)",
            IfAny((IfName("A"), IfAll((IfName("B"), IfName("C"))))),
        ),
    ],
)
def test_legacy_expressions(text: str, tree: object) -> None:
    assert parse_legacy(text) == tree


@pytest.mark.parametrize(
    "text", ["CONFIG_X > 2", "defined(A) && B + 1", "A ? B : C", "-1", "0x1fUL", "~A"]
)
def test_c_beyond_conditions_stays_opaque(text: str) -> None:
    tree = parse_legacy(text)
    assert tree == IfName(text.strip())
    cond = IfCond(tree, text)
    # never silently true: only when that exact text is "defined"
    assert not cond.evaluate({"CONFIG_X", "A", "B", "C"})
    assert cond.evaluate({text.strip()})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("defined(CONFIG_A", "it ends where the ')' of 'defined(' should follow"),
        ("defined(", "it ends where a macro name should follow"),
        ("A &&", "it ends where an operand should follow"),
        ("(A", "it ends where a ')' should follow"),
        ("A B", "unexpected 'B' after a complete expression"),
        ("defined(1)", "'defined' needs a macro name, not '1'"),
        ("A @ B", "unexpected '@' after a complete expression"),
        ("A ? B", "it ends where the ':' of '?:' should follow"),
        ("A ||| B", "unexpected '|'"),
    ],
)
def test_text_that_is_no_c_expression_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_legacy(text)
    assert caught.value.reason == reason
    assert caught.value.text == text


def test_modern_and_legacy_spellings_compare_equal() -> None:
    modern = IfCond.modern({"all": ["A", {"not": "B"}]})
    legacy = IfCond.legacy(["defined(A)", "!defined(B)"])
    assert modern == legacy and hash(modern) == hash(legacy)
    assert modern.dump_text() == "{'all': ['A', {'not': 'B'}]}"
    assert legacy.dump_text() == "['defined(A)', '!defined(B)']"
    assert modern.to_json() == {"all": ["A", {"not": "B"}]}
    assert modern.names() == {"A", "B"}


def test_evaluation() -> None:
    cond = IfCond.modern({"any": ["A", {"all": ["B", {"not": "C"}]}]})
    assert cond.evaluate({"A"})
    assert cond.evaluate({"B"})
    assert not cond.evaluate({"B", "C"})
    assert not cond.evaluate(set())
    assert ALWAYS.evaluate(set()) and not ALWAYS and ALWAYS.to_json() is None
