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
beyond `defined`, `!`, `&&`, `||` (arithmetic, macros compared with numbers, ...)
becomes one opaque `IfName` holding the whole text: it is true only when that exact
text is among the defined symbols, which keeps it visible and never silently true.
Text that is no C preprocessor expression at all (`'defined(CONFIG_A'`) is refused:
no release's build would accept it.
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


# Legacy C preprocessor expressions. QEMU 5.x pastes the string into `#if`, so any
# C constant expression is valid; this reads the whole grammar (so what a C compiler
# would refuse is an error here too) and builds a tree from the part conditions are
# made of: `defined(X)`, `defined X`, a bare macro name (true when defined: QEMU's
# config macros are 1), `!`, `&&`, `||` and parentheses.
_TOKEN = re.compile(
    r"\s*(\|\||&&|==|!=|<=|>=|<<|>>|[!()~+\-*/%<>&|^?:]"
    r"|[A-Za-z_][A-Za-z0-9_]*|[0-9][A-Za-z0-9_]*|\S)"
)
_NUMBER = re.compile(r"(?:0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*")
# binary operators by precedence, loosest first (`?:`, `||`, `&&` are parsed apart)
_BINARY = (
    ("|",),
    ("^",),
    ("&",),
    ("==", "!="),
    ("<", ">", "<=", ">="),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
)


class ConditionSyntaxError(ValueError):
    """A legacy condition that is not a C preprocessor expression; `reason` says
    why, in words for an error message."""

    def __init__(self, reason: str, text: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        # the condition as written (set by parse_legacy)
        self.text = text


class _LegacyParser:
    """Each method returns the tree of what it read, or None when that part is valid
    C but beyond what conditions are made of (arithmetic, comparisons, numbers)."""

    def __init__(self, text: str) -> None:
        self.tokens = [m.group(1) for m in _TOKEN.finditer(text.rstrip())]
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, what: str) -> str:
        token = self.peek()
        if token is None:
            raise ConditionSyntaxError(f"it ends where {what} should follow")
        self.pos += 1
        return token

    def expect(self, token: str, what: str) -> None:
        found = self.take(what)
        if found != token:
            raise ConditionSyntaxError(f"'{found}' where {what} should be")

    def parse(self) -> IfExpr | None:
        if not self.tokens:
            raise ConditionSyntaxError("it is empty")
        tree = self.conditional()
        token = self.peek()
        if token is not None:
            raise ConditionSyntaxError(
                f"unexpected '{token}' after a complete expression"
            )
        return tree

    def conditional(self) -> IfExpr | None:
        tree = self.disjunction()
        if self.peek() == "?":
            self.take("")
            self.conditional()
            self.expect(":", "the ':' of '?:'")
            self.conditional()
            return None
        return tree

    def disjunction(self) -> IfExpr | None:
        operands = [self.conjunction()]
        while self.peek() == "||":
            self.take("")
            operands.append(self.conjunction())
        return _combine(IfAny, operands)

    def conjunction(self) -> IfExpr | None:
        operands = [self.binary(0)]
        while self.peek() == "&&":
            self.take("")
            operands.append(self.binary(0))
        return _combine(IfAll, operands)

    def binary(self, rank: int) -> IfExpr | None:
        if rank == len(_BINARY):
            return self.unary()
        tree = self.binary(rank + 1)
        while self.peek() in _BINARY[rank]:
            self.take("")
            self.binary(rank + 1)
            tree = None
        return tree

    def unary(self) -> IfExpr | None:
        token = self.take("an operand")
        if token == "!":
            operand = self.unary()
            return None if operand is None else IfNot(operand)
        if token in ("~", "+", "-"):
            self.unary()
            return None
        if token == "(":
            tree = self.conditional()
            self.expect(")", "a ')'")
            return tree
        if token == "defined":
            parenthesized = self.peek() == "("
            if parenthesized:
                self.take("")
            name = self.take("a macro name")
            if not _is_name(name) or name == "defined":
                raise ConditionSyntaxError(
                    f"'defined' needs a macro name, not '{name}'"
                )
            if parenthesized:
                self.expect(")", "the ')' of 'defined('")
            return IfName(name)
        if _is_name(token):
            return IfName(token)
        if _NUMBER.fullmatch(token):
            return None
        raise ConditionSyntaxError(f"unexpected '{token}'")


def _is_name(token: str) -> bool:
    return token[0].isalpha() or token[0] == "_"


def _combine(
    kind: type[IfAll] | type[IfAny], operands: list[IfExpr | None]
) -> IfExpr | None:
    if len(operands) == 1:
        return operands[0]
    if any(op is None for op in operands):
        return None
    return kind(tuple(op for op in operands if op is not None))


def parse_legacy(text: str) -> IfExpr:
    """Parse one legacy condition. A valid C expression beyond what conditions are
    made of (`CONFIG_X > 2`) becomes an opaque `IfName` of the whole text; text that
    is no C expression at all (`defined(X`) raises `ConditionSyntaxError`."""
    try:
        tree = _LegacyParser(text).parse()
    except ConditionSyntaxError as exc:
        exc.text = text
        raise
    return IfName(text.strip()) if tree is None else tree
