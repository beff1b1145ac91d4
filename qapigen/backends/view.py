"""What the templates see: plain records with every name and expression decided.

Backends turn schema entities into these records (choosing Python names through
`qapigen.naming`, codec expressions, and the imports those expressions use); templates
only arrange them into code. Expressions that may be long are `layout` nodes so the
templates can lay them out the way black would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..layout import INDENT, Assign, Field, Group, Node, Split, flat, lay_out
from ..render import py_string


@dataclass
class TypeUse:
    """How a QAPI type appears in Python code.

    `annotation` is the Python type; `decoder` an expression for a callable
    ``(value, path, strict) -> T``; `encode` a format string turning a value expression
    `{}` into its wire value; `json_kinds` the JSON kinds its wire values have (what an
    alternate dispatches on); `isinstance` the class (or tuple) an alternate checks on
    encode, None for plain JSON values.
    """

    annotation: str
    decoder: str
    encode: str = "{}"
    json_kinds: tuple[str, ...] = ()
    isinstance: str | None = None
    qapi_name: str = ""

    def encode_expr(self, value: str) -> str:
        return self.encode.format(value)

    def encode_node(self, value: str) -> Node:
        """The wire value of `value` as a layout node (an array's comprehension can be
        split inside its brackets)."""
        text = self.encode_expr(value)
        if text.startswith("[") and text.endswith("]"):
            element, loop = text[1:-1].split(" for ", 1)
            return Group("[", [Split([element, "for " + loop])], "]", literal=True)
        return text


def _prefixed(prefix: str, node: Node) -> Node:
    if isinstance(node, Group):
        return Group(
            prefix + node.opening, node.items, node.closing, literal=node.literal
        )
    return prefix + flat(node)


@dataclass
class Member:
    wire: str
    attr: str
    type: TypeUse
    optional: bool
    doc: str = ""
    # The `if` condition in JSON form (None: unconditional).
    cond_json: object = None
    deprecated: bool = False
    # A union branch's discriminator: fixed to this enum member.
    fixed_tag: str | None = None

    @property
    def annotation(self) -> str:
        if self.fixed_tag is not None:
            return f"Literal[{self.fixed_tag}]"
        if self.optional:
            return f"{self.type.annotation} | None"
        return self.type.annotation

    @property
    def declaration(self) -> Node:
        """The dataclass field line."""
        if self.fixed_tag is not None:
            field = Group(
                "dataclasses.field(", [f"default={self.fixed_tag}", "init=False"], ")"
            )
            return Assign(f"{self.attr}: {self.annotation}", field)
        if self.optional:
            return Field(self.attr, self.annotation, "None")
        return Field(self.attr, self.annotation)

    def set_optional(self, target: str, value: str, indent: str) -> str:
        """``if value is not None: target["wire"] = encoded``, laid out at `indent`."""
        assign = Assign(
            f"{target}[{py_string(self.wire)}]", self.type.encode_node(value)
        )
        return f"{indent}if {value} is not None:\n" + lay_out(assign, indent + INDENT)


@dataclass
class EnumValue:
    wire: str
    attr: str
    cond_json: object = None
    deprecated: bool = False


@dataclass
class Enum:
    name: str
    qapi_name: str
    values: list[EnumValue]
    doc: str


@dataclass
class Struct:
    """A dataclass with a codec: a struct, a union branch, or an event's data."""

    name: str
    qapi_name: str
    members: list[Member]
    doc: str
    # Event classes carry their QMP event name.
    event_name: str | None = None
    deprecated: bool = False

    @property
    def known_members(self) -> Node:
        """The class constant listing the wire names of its members."""
        items: list[Node] = [py_string(m.wire) for m in self.members]
        members = Group("{", items, "}", literal=True) if items else "()"
        value = Group("frozenset(", [members], ")")
        return Assign("_MEMBERS: ClassVar[frozenset[str]]", value)

    @property
    def from_wire_call(self) -> Node:
        """``return cls(member=decode..., extra=...)``."""
        items: list[Node] = []
        for m in self.members:
            if m.fixed_tag is not None:
                continue
            helper = "_c.optional" if m.optional else "_c.required"
            args: list[Node] = ["data", py_string(m.wire), "path", "strict"]
            items.append(Group(f"{m.attr}={helper}(", [*args, m.type.decoder], ")"))
        items.append(
            Group(
                "extra=_c.extra_members(",
                ["data", "cls._MEMBERS", "path", "strict", py_string(self.name)],
                ")",
            )
        )
        return Group("return cls(", items, ")")

    @property
    def wire_dict(self) -> Node:
        """``wire: dict[str, object] = {required members}``."""
        items: list[Node] = [
            _prefixed(f"{py_string(m.wire)}: ", m.type.encode_node("self." + m.attr))
            for m in self.members
            if not m.optional
        ]
        return Assign("wire: dict[str, object]", Group("{", items, "}", literal=True))


@dataclass
class Branch:
    tag_value: str
    enum_member: str
    cls: str


@dataclass
class Union:
    """A discriminated union: one Struct per branch, an alias, a decode function."""

    name: str
    qapi_name: str
    tag_wire: str
    tag_type: TypeUse
    branches: list[Branch]
    decode_function: str
    doc: str

    @property
    def branch_classes(self) -> list[str]:
        return [branch.cls for branch in self.branches]


# How an alternate recognises each JSON kind on the wire.
_KIND_TESTS = {
    "str": "type(value) is str",
    "int": "type(value) is int",
    "number": "type(value) is int or type(value) is float",
    "bool": "type(value) is bool",
    "null": "value is None",
    "object": "type(value) is dict",
    "array": "type(value) is list",
}


@dataclass
class Alternative:
    type: TypeUse

    @property
    def kind_test(self) -> str:
        return " or ".join(_KIND_TESTS[kind] for kind in self.type.json_kinds)


@dataclass
class EncodeStep:
    """One `if isinstance(...): return ...` of an alternate's encoder (test None: the
    final unconditional return)."""

    test: str | None
    expr: str


@dataclass
class Alternate:
    name: str
    qapi_name: str
    alternatives: list[Alternative]
    decode_function: str
    encode_function: str
    doc: str

    @property
    def annotations(self) -> list[str]:
        return [alt.type.annotation for alt in self.alternatives]

    @property
    def encode_steps(self) -> list[EncodeStep]:
        """Classes first (null, enums, objects), plain JSON values last."""
        steps: list[EncodeStep] = []
        plain = False
        for alt in self.alternatives:
            if alt.type.isinstance is None:
                plain = True
                continue
            test = f"isinstance(value, {alt.type.isinstance})"
            steps.append(EncodeStep(test, alt.type.encode_expr("value")))
        if plain:
            steps.append(EncodeStep(None, "value"))
        elif steps:
            steps[-1].test = None
        return steps


@dataclass
class Module:
    """One generated file."""

    path: str
    docstring: str
    imports: list[str] = field(default_factory=list)
    # The rendered body, filled by the backend.
    body: str = ""
