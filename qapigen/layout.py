"""Lay out long statements the way black does, so output needs no formatter pass.

Running black over the ~84k lines generated from QEMU's full schema takes about a minute
and a half; the generator must take about a second. So generated code is built from a few
statement shapes whose black layout is simple and known, and this module applies black's
rules for those shapes (line length 88):

- a bracketed group (`Group`: a call, a literal, a subscript, a parameter list) stays on
  one line if it fits; otherwise its contents move to their own line ("hugging" the
  brackets) if they fit there (not for a literal of two or more items); otherwise each
  item goes on its own line with a trailing comma (when there are two or more), and
  each item is laid out again by the same rules;
- a `def` whose parameters fit on one line is split the same way, but black adds a
  trailing comma (and so explodes) a parameter list of a single parameter;
- an operator chain (`Chain`, e.g. a long ``A | B | C`` type alias, or an ``if``
  condition of ``or``-ed tests) is wrapped in parentheses, hugged if it fits, else one
  operand per line with the operator leading (an operand still too long is split
  before its comparison operators).

`tests/test_generate.py` runs `black --check` over generated trees to keep this honest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LINE_LENGTH = 88
INDENT = "    "


@dataclass
class Group:
    """`opening` + items joined by ", " + `closing`: ``foo(`` [a, b] ``)``.

    `opening` includes everything before the bracket and the bracket; `closing` the
    bracket and what follows it on the line (``) -> int:``). `explode` forces one item
    per line (black's "magic trailing comma"). `is_def` applies black's rule for
    parameter lists: a single parameter gets a trailing comma. `literal` marks a
    display (list, dict, set, tuple): black never hugs one with two or more items, it
    explodes it.
    """

    opening: str
    items: list[Node]
    closing: str
    explode: bool = False
    is_def: bool = False
    literal: bool = False
    # The one-line text, made once: laying out a group that does not fit measures each
    # item again at every level it nests (nodes are not changed once built).
    _flat: str | None = field(default=None, init=False, repr=False, compare=False)

    def flat(self) -> str:
        if self._flat is None:
            items = ", ".join([flat(item) for item in self.items])
            self._flat = self.opening + items + self.closing
        return self._flat


@dataclass
class Chain:
    """`prefix` + operands joined by `` op `` (+ `suffix`): ``X: TypeAlias = A | B``."""

    prefix: str
    operands: list[str]
    operator: str = "|"
    suffix: str = ""

    def flat(self) -> str:
        return self.prefix + f" {self.operator} ".join(self.operands) + self.suffix


@dataclass
class Assign:
    """``target = value``: black splits the value at its brackets when the line
    before the bracket fits, else wraps the whole value in parentheses."""

    target: str
    value: Node
    # what joins them: " = ", or " " for ``return value`` (see `Return`)
    joint: str = " = "

    def flat(self) -> str:
        return f"{self.target}{self.joint}{flat(self.value)}"


def Return(value: Node) -> Assign:
    """``return value``: laid out as an assignment's value is."""
    return Assign("return", value, " ")


@dataclass
class Split:
    """Pieces black splits between when the whole does not fit, each on its own line
    at the same indent: a comprehension's element and its ``for`` clause."""

    parts: list[str]

    def flat(self) -> str:
        return " ".join(self.parts)


@dataclass
class Field:
    """A dataclass field ``name: annotation`` or ``name: annotation = None``: when too
    long, black parenthesizes the default of a field with one if the line up to that
    parenthesis fits, else its annotation; it splits the last bracket of a field
    without a default."""

    name: str
    annotation: str
    default: str | None = None

    def flat(self) -> str:
        text = f"{self.name}: {self.annotation}"
        return text if self.default is None else f"{text} = {self.default}"


Node = str | Group | Chain | Assign | Split | Field


def flat(node: Node) -> str:
    return node if isinstance(node, str) else node.flat()


def lay_out(node: Node, indent: str = "") -> str:
    """The statement `node` at `indent`, as black would print it (no final newline)."""
    return "\n".join(_lines(node, indent, ""))


def _fits(text: str) -> bool:
    return len(text) <= LINE_LENGTH


def _lines(node: Node, indent: str, trailer: str) -> list[str]:
    """`node` at `indent`, with `trailer` (a "," when it is an item) after its end."""
    one_line = indent + flat(node) + trailer
    if isinstance(node, str):
        return [one_line]
    if isinstance(node, Chain):
        if _fits(one_line):
            return [one_line]
        return _chain_lines(node, indent, trailer)
    if isinstance(node, Assign):
        if _fits(one_line):
            return [one_line]
        return _assign_lines(node, indent, trailer)
    if isinstance(node, Field):
        if _fits(one_line):
            return [one_line]
        return _field_lines(node, indent, trailer)
    if isinstance(node, Split):
        if _fits(one_line):
            return [one_line]
        pieces = [indent + part for part in node.parts]
        pieces[-1] += trailer
        return pieces
    if _fits(one_line) and not node.explode:
        return [one_line]
    inner = indent + INDENT
    head = indent + node.opening
    tails = _tail_lines(node, indent, trailer)
    if not node.items:
        return [one_line]
    single_def_param = node.is_def and len(node.items) == 1
    exploded_literal = node.literal and len(node.items) > 1
    if not node.explode and not single_def_param and not exploded_literal:
        body = inner + ", ".join(flat(item) for item in node.items)
        if _fits(body):
            return [head, body, *tails]
    # Black puts a trailing comma after the last item only when it split at commas
    # (two or more items), or in any parameter list.
    comma = "," if len(node.items) > 1 or node.is_def or node.explode else ""
    lines = [head]
    for item in node.items:
        lines += _lines(item, inner, comma)
    return lines + tails


_RETURN_ANNOTATION = re.compile(r"^\) -> (.+?)(:(?: \.\.\.)?)$")


def _tail_lines(node: Group, indent: str, trailer: str) -> list[str]:
    """The closing line of a split group. A `def`'s return annotation that makes it
    too long is split as black splits it: at its own subscript when it has one (and
    no ``|`` outside it), else inside parentheses of its own (one ``|`` operand a
    line if it is still too long there), unless it is one name that does not fit
    even there."""
    tail = indent + node.closing + trailer
    annotation = _RETURN_ANNOTATION.match(node.closing)
    if not node.is_def or _fits(tail) or annotation is None:
        return [tail]
    returned, colon = annotation.groups()
    if returned.endswith("]") and len(_top_level_split(returned, "|")) == 1:
        opening = returned.index("[") + 1
        items: list[Node] = list(_top_level_split(returned[opening:-1], ","))
        subscript = Group(") -> " + returned[:opening], items, "]" + colon)
        return _lines(subscript, indent, trailer)
    inside = indent + INDENT + returned
    if not _fits(inside) and _single_token(returned):
        return [tail]  # parentheses would not make one name fit: black leaves it
    return [
        f"{indent}) -> (",
        *_union_lines(returned, indent + INDENT),
        f"{indent}){colon}{trailer}",
    ]


def _top_level_split(text: str, separator: str) -> list[str]:
    """`text` split at each `separator` outside brackets, the pieces stripped."""
    pieces: list[str] = []
    depth = start = 0
    for position, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == separator and depth == 0:
            pieces.append(text[start:position].strip())
            start = position + 1
    pieces.append(text[start:].strip())
    return pieces


def _assign_lines(node: Assign, indent: str, trailer: str) -> list[str]:
    value = node.value
    prefix = f"{node.target}{node.joint}"
    if (
        not _fits(indent + prefix + "(")
        and node.target.endswith("]")
        and "[" in node.target
    ):
        # Even the target does not fit: black splits its subscript first
        # (``x: Literal[`` / ``E.V`` / ``] = value``).
        opening = node.target.index("[") + 1
        head, inner = node.target[:opening], indent + INDENT + node.target[opening:-1]
        closing = "]"
        annotated = _ANNOTATED_NAME.match(node.target)
        if annotated and not _fits(indent + head):
            # ``name: frozenset[`` is too long: black's second try keeps the
            # annotation's own (invisible) parentheses: ``name: (`` / annotation /
            # ``) = value``, when the annotation then fits on its line; the value
            # stays split at its bracket from the first try
            name, annotation = annotated.group(1), annotated.group(2)
            if _fits(indent + name + ": (") and _fits(indent + INDENT + annotation):
                head, inner, closing = name + ": (", indent + INDENT + annotation, ")"
        rest = Assign(closing, value)
        if isinstance(value, Group) and (
            closing == ")" or not _fits(indent + flat(rest) + trailer)
        ):
            # black weighed the parentheses against the whole statement, whose
            # ``target = (`` did not fit: it left them out and split at the value's
            # last bracket, even where ``] = value(`` is then still too long
            rest_lines = _at_value_bracket(
                closing + " = ", value, indent, trailer, always=closing == ")"
            )
        else:
            rest_lines = _lines(rest, indent, trailer)
        return [indent + head, inner, *rest_lines]
    if isinstance(value, Group):
        # black splits at the value's last bracket when the line up to it fits;
        # otherwise it takes the value in parentheses: after a target with brackets
        # always, after a plain one only if then every line fits
        if _fits(indent + prefix + value.opening) or not _has_brackets(node.target):
            at_bracket = _at_value_bracket(prefix, value, indent, trailer)
            if _fits(indent + prefix + value.opening):
                return at_bracket
            wrapped = _wrapped(prefix, value, indent, trailer)
            return wrapped if all(map(_fits, wrapped)) else at_bracket
    elif (
        _single_token(flat(value))
        and not _fits(indent + INDENT + flat(value))
        and not _has_brackets(node.target)
    ):
        # one token, which parentheses would not make fit, after a target without
        # brackets (black keeps parentheses after a subscript): black leaves the
        # statement on its one long line
        return [indent + prefix + flat(value) + trailer]
    # black wraps the value in parentheses
    return _wrapped(prefix, value, indent, trailer)


# ``name: annotation`` (an annotated assignment's target)
_ANNOTATED_NAME = re.compile(r"^(\w+): (.+)$")


def _at_value_bracket(
    prefix: str, value: Group, indent: str, trailer: str, always: bool = False
) -> list[str]:
    """``prefix value.opening`` / the items / ``value.closing``: the statement split
    at its value's last bracket (`always`: even where it would fit on one line)."""
    split = Group(prefix + value.opening, value.items, value.closing)
    split.explode, split.is_def, split.literal = (
        value.explode,
        value.is_def,
        value.literal,
    )
    lines = _lines(split, indent, trailer)
    if always and len(lines) == 1 and value.items:
        body = indent + INDENT + ", ".join(flat(item) for item in value.items)
        lines = [indent + split.opening, body, indent + split.closing + trailer]
    return lines


def _wrapped(prefix: str, value: Node, indent: str, trailer: str) -> list[str]:
    """``prefix(`` / the value, one level in / ``)``."""
    return [
        indent + prefix + "(",
        *_lines(value, indent + INDENT, ""),
        indent + ")" + trailer,
    ]


def _has_brackets(text: str) -> bool:
    return any(bracket in text for bracket in "()[]{}")


def _single_token(text: str) -> bool:
    """A name, a number or one string literal: what black cannot split at all."""
    quoted = len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0]
    return (
        text.isidentifier() or text.isdigit() or (quoted and text[0] not in text[1:-1])
    )


def _field_lines(node: Field, indent: str, trailer: str) -> list[str]:
    if node.default is not None:
        head = f"{indent}{node.name}: {node.annotation} = ("
        if _fits(head):
            # black wraps the default in parentheses while the line before fits
            return [head, indent + INDENT + node.default, f"{indent}){trailer}"]
        return [
            f"{indent}{node.name}: (",
            *_union_lines(node.annotation, indent + INDENT),
            f"{indent}) = {node.default}{trailer}",
        ]
    if len(_top_level_split(node.annotation, "|")) > 1:
        # black keeps a union (``X | None``) in parentheses, split at its operators
        # if it is still too long there
        return [
            f"{indent}{node.name}: (",
            *_union_lines(node.annotation, indent + INDENT),
            f"{indent}){trailer}",
        ]
    # like an assignment's value: split at the subscript's bracket, or parenthesized
    annotation: Node = node.annotation
    if node.annotation.endswith("]"):
        opening = node.annotation.index("[") + 1
        annotation = Group(
            node.annotation[:opening], [node.annotation[opening:-1]], "]"
        )
    return _assign_lines(Assign(node.name, annotation, ": "), indent, trailer)


def _union_lines(annotation: str, indent: str) -> list[str]:
    """An annotation alone inside parentheses: on one line if it fits, else, as black
    splits at the lowest-priority operator, one ``|`` operand a line."""
    if _fits(indent + annotation):
        return [indent + annotation]
    operands = _top_level_split(annotation, "|")
    lines: list[str] = []
    for position, operand in enumerate(operands):
        text = operand if position == 0 else f"| {operand}"
        if _fits(indent + text) or not text.endswith("]"):
            lines.append(indent + text)
        else:
            # an operand still too long: black splits its subscript's brackets
            opening = text.index("[") + 1
            lines += _lines(Group(text[:opening], [text[opening:-1]], "]"), indent, "")
    return lines


def _chain_lines(node: Chain, indent: str, trailer: str) -> list[str]:
    # ``name: annotation = `` (a type alias): black may split at its annotation
    assignment = node.prefix.endswith(" = ")
    annotated = _ANNOTATED_NAME.match(node.prefix[:-3]) if assignment else None
    if annotated and not _fits(indent + node.prefix + "("):
        name, annotation = annotated.group(1), annotated.group(2)
        return _annotated_chain_lines(node, name, annotation, indent, trailer)
    inner = indent + INDENT
    head = indent + node.prefix + "("
    tail = indent + ")" + node.suffix + trailer
    body = inner + f" {node.operator} ".join(node.operands)
    if _fits(body):
        return [head, body, tail]
    lines = [head]
    for index, operand in enumerate(node.operands):
        line = inner + (f"{node.operator} " if index else "") + operand
        lines += _comparison_lines(line, inner) if not _fits(line) else [line]
    lines.append(tail)
    return lines


def _annotated_chain_lines(
    node: Chain, name: str, annotation: str, indent: str, trailer: str
) -> list[str]:
    """``name: annotation = (`` does not fit (a name of 62+ characters): black puts
    the annotation in parentheses of its own (``name: (`` / annotation / ``) = ...``);
    the value follows the closing one, as one name, or in parentheses: on that line
    if it fits there and ``name: (`` did, else laid out as a chain is."""
    head = indent + name + ": ("
    lines = [head, indent + INDENT + annotation]
    if len(node.operands) == 1:
        return [*lines, indent + ") = " + node.operands[0] + node.suffix + trailer]
    value = Chain(") = ", node.operands, node.operator, node.suffix)
    operands = f" {node.operator} ".join(node.operands)
    in_parentheses = f"{indent}) = ({operands}){node.suffix}{trailer}"
    if _fits(head) and _fits(in_parentheses):
        return [*lines, in_parentheses]
    return [*lines, *_chain_lines(value, indent, trailer)]


# The spaces before a comparison operator (not the "in" of "not in", nor a unary
# "not"): where black splits an operand that is still too long.
_COMPARISON = re.compile(r"(?<!\bnot) (?=(?:<=|<|is not|is|not in|in) )")


def _comparison_lines(line: str, indent: str) -> list[str]:
    """An operand line still too long: black splits a comparison chain before each
    comparison operator (``not -(2**63)`` / ``<= value`` / ``< 2**63``). A piece
    still too long then (a name of 65+ characters) is not split further."""
    text = line.lstrip()
    first, *rest = _COMPARISON.split(text)
    return [line[: len(line) - len(text)] + first] + [indent + p for p in rest]
