"""Conditions (`'if'`) as a tree that can be printed as written and evaluated.

A schema definition, member, branch, enum value or feature may be conditional. QEMU
compiles the condition into `#if`; qapigen keeps it as metadata instead, so a server
built from the bindings can offer exactly what a set of enabled symbols allows.

Two spellings exist:

- modern (QEMU 6.0+): an identifier `'CONFIG_X'`, or `{'all': [...]}`,
  `{'any': [...]}`, `{'not': COND}`;
- legacy (QEMU 5.x): a C preprocessor expression such as
  `'defined(CONFIG_X) && !defined(Y)'`, or a list of them that must all hold.

Both become the same tree of `IfName`, `IfAll`, `IfAny`, `IfNot`. The value as written
(`raw`) is kept too, because QEMU's test dump prints it verbatim. A legacy expression
this module cannot parse (arithmetic, macros compared with numbers, ...) becomes one
opaque `IfName` holding the whole text: it is true only when that exact text is among
the defined symbols, which keeps it visible and never silently true.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

JsonCond = str | list[object] | dict[str, object]


@dataclass(frozen=True, slots=True)
class IfName:
    """A symbol that holds when it is defined (`CONFIG_X`, `defined(CONFIG_X)`)."""

    name: str


@dataclass(frozen=True, slots=True)
class IfAll:
    operands: tuple[IfExpr, ...]


@dataclass(frozen=True, slots=True)
class IfAny:
    operands: tuple[IfExpr, ...]


@dataclass(frozen=True, slots=True)
class IfNot:
    operand: IfExpr


IfExpr = IfName | IfAll | IfAny | IfNot


def evaluate(expr: IfExpr, defined: Collection[str]) -> bool:
    if isinstance(expr, IfName):
        return expr.name in defined
    if isinstance(expr, IfAll):
        return all(evaluate(op, defined) for op in expr.operands)
    if isinstance(expr, IfAny):
        return any(evaluate(op, defined) for op in expr.operands)
    return not evaluate(expr.operand, defined)


def _names(expr: IfExpr) -> Iterator[str]:
    if isinstance(expr, IfName):
        yield expr.name
    elif isinstance(expr, IfNot):
        yield from _names(expr.operand)
    else:
        for op in expr.operands:
            yield from _names(op)


def to_json(expr: IfExpr) -> object:
    """The modern JSON spelling of a tree (what the JSON IR dump uses)."""
    if isinstance(expr, IfName):
        return expr.name
    if isinstance(expr, IfAll):
        return {"all": [to_json(op) for op in expr.operands]}
    if isinstance(expr, IfAny):
        return {"any": [to_json(op) for op in expr.operands]}
    return {"not": to_json(expr.operand)}


@dataclass(frozen=True, slots=True)
class IfCond:
    """A condition; `IfCond.ALWAYS` (no `'if'`) is the unconditional one.

    `expr` is the tree (None when unconditional); `raw` is the value as the schema wrote
    it, after the level's normalisation (QEMU 5.2 turns a single string into a list).
    """

    expr: IfExpr | None = None
    # as written; equality and hashing go by the tree only
    raw: object = field(default=None, compare=False)

    def is_present(self) -> bool:
        return self.expr is not None

    def __bool__(self) -> bool:
        return self.expr is not None

    def evaluate(self, defined: Collection[str]) -> bool:
        """True when the condition holds with exactly the symbols in `defined`."""
        return self.expr is None or evaluate(self.expr, defined)

    def names(self) -> frozenset[str]:
        """Every symbol the condition mentions."""
        return frozenset(_names(self.expr)) if self.expr is not None else frozenset()

    def to_json(self) -> object:
        return None if self.expr is None else to_json(self.expr)

    def dump_text(self) -> str:
        """The text QEMU's test harness prints after `if `."""
        if isinstance(self.raw, str):
            return self.raw
        return repr(self.raw)

    @staticmethod
    def modern(raw: object) -> IfCond:
        """From a modern condition that the expression checks have validated."""
        return IfCond(_modern_tree(raw), raw)

    @staticmethod
    def legacy(raw: list[str]) -> IfCond:
        """From a legacy list of C preprocessor expressions, all of which must hold."""
        trees = [parse_legacy(text) for text in raw]
        tree = trees[0] if len(trees) == 1 else IfAll(tuple(trees))
        return IfCond(tree, raw)

    @staticmethod
    def mixed(raw: object) -> IfCond:
        """From a condition in either spelling (the permissive level)."""
        return IfCond(_mixed_tree(raw), raw)


ALWAYS = IfCond()

IDENTIFIER = re.compile(r"[A-Z][A-Z0-9_]*")


def _modern_tree(raw: object) -> IfExpr:
    if isinstance(raw, str):
        return IfName(raw)
    assert isinstance(raw, dict) and len(raw) == 1
    ((key, value),) = raw.items()
    if key == "not":
        return IfNot(_modern_tree(value))
    assert isinstance(value, list)
    operands = tuple(_modern_tree(v) for v in value)
    return IfAll(operands) if key == "all" else IfAny(operands)


def _mixed_tree(raw: object) -> IfExpr:
    if isinstance(raw, str):
        return IfName(raw) if IDENTIFIER.fullmatch(raw) else parse_legacy(raw)
    if isinstance(raw, list):
        trees = tuple(_mixed_tree(v) for v in raw)
        return trees[0] if len(trees) == 1 else IfAll(trees)
    assert isinstance(raw, dict) and len(raw) == 1
    ((key, value),) = raw.items()
    if key == "not":
        return IfNot(_mixed_tree(value))
    assert isinstance(value, list)
    operands = tuple(_mixed_tree(v) for v in value)
    return IfAll(operands) if key == "all" else IfAny(operands)


# Legacy C preprocessor expressions: `||`, `&&`, `!`, parentheses, `defined(X)`,
# `defined X` and a bare macro name (true when defined: QEMU's config macros are 1).
_TOKEN = re.compile(r"\s*(\|\||&&|!|\(|\)|defined\b|[A-Za-z_][A-Za-z0-9_]*)")


class _LegacyParser:
    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise ValueError(text)
            self.tokens.append(match.group(1))
            pos = match.end()
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end")
        self.pos += 1
        return token

    def expect(self, token: str) -> None:
        if self.take() != token:
            raise ValueError(token)

    def parse(self) -> IfExpr:
        tree = self.disjunction()
        if self.peek() is not None:
            raise ValueError("trailing tokens")
        return tree

    def disjunction(self) -> IfExpr:
        operands = [self.conjunction()]
        while self.peek() == "||":
            self.take()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else IfAny(tuple(operands))

    def conjunction(self) -> IfExpr:
        operands = [self.unary()]
        while self.peek() == "&&":
            self.take()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else IfAll(tuple(operands))

    def unary(self) -> IfExpr:
        token = self.take()
        if token == "!":
            return IfNot(self.unary())
        if token == "(":
            tree = self.disjunction()
            self.expect(")")
            return tree
        if token == "defined":
            if self.peek() == "(":
                self.take()
                name = self.name()
                self.expect(")")
                return IfName(name)
            return IfName(self.name())
        if token[0].isalpha() or token[0] == "_":
            return IfName(token)
        raise ValueError(token)

    def name(self) -> str:
        token = self.take()
        if not (token[0].isalpha() or token[0] == "_") or token == "defined":
            raise ValueError(token)
        return token


def parse_legacy(text: str) -> IfExpr:
    """Parse one legacy condition; unparseable text becomes an opaque `IfName`."""
    try:
        return _LegacyParser(text).parse()
    except ValueError:
        return IfName(text.strip())
