"""What the templates see: plain records with every name and expression decided.

Backends turn schema entities into these records (choosing Python names through
`qapigen.naming`, codec expressions, and the imports those expressions use); templates
only arrange them into code. Expressions that may be long are `layout` nodes so the
templates can lay them out the way black would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..layout import (
    INDENT,
    LINE_LENGTH,
    Assign,
    Chain,
    Field,
    Group,
    Node,
    Split,
    flat,
    lay_out,
)
from ..render import py_string


@dataclass
class TypeUse:
    """How a QAPI type appears in Python code.

    `annotation` is the Python type; `decoder` an expression for a callable
    ``(value, path, strict) -> T``; `encode` a format string turning a value expression
    `{}` into its wire value; `json_kinds` the JSON kinds its wire values have (what an
    alternate dispatches on); `isinstance` the class (or tuple) an alternate checks on
    encode, None for plain JSON values; `enum_table` the module-level table of an
    enum's values (what generated codecs look wire values up in); `deprecated_tables`
    the module-level sets of deprecated enum values its values may be (an enum's, an
    array's elements', an alternate's enum alternatives').
    """

    annotation: str
    decoder: str
    encode: str = "{}"
    json_kinds: tuple[str, ...] = ()
    isinstance: str | None = None
    qapi_name: str = ""
    enum_table: str | None = None
    deprecated_tables: tuple[str, ...] = ()
    # the same as this module's code spells them (see TypeMapper.import_deprecated_values)
    deprecated_refs: tuple[str, ...] = ()

    @property
    def decoder_node(self) -> Node:
        """The decoder expression as a layout node (``_c.array_of(...)`` can be split
        inside its brackets)."""
        return _call_node(self.decoder)

    def decode_call(self, arguments: list[Node]) -> Node:
        """A call of the decoder with `arguments`: directly when it is a name, through
        ``_c.decode`` when it is itself a call (black lays ``f(x)(y)`` out its own
        way; generated code does not use that shape)."""
        if "(" in self.decoder:
            return Group("_c.decode(", [self.decoder_node, *arguments], ")")
        return Group(f"{self.decoder}(", arguments, ")")

    def encode_expr(self, value: str) -> str:
        return self.encode.format(value)

    def encode_node(self, value: str) -> Node:
        """The wire value of `value` as a layout node (an array's comprehension can be
        split inside its brackets)."""
        text = self.encode_expr(value)
        if text.startswith("[") and text.endswith("]"):
            element, loop = text[1:-1].split(" for ", 1)
            return Group("[", [Split([element, "for " + loop])], "]", literal=True)
        if self.encode.endswith("({})"):
            # a call of an encoder function (an alternate's): black splits inside its
            # brackets, as it does any call whose opening line fits
            return Group(self.encode[: -len("{})")], [value], ")")
        return text


def _call_node(expression: str) -> Node:
    """``f(g(x))`` as nested groups; a name as itself."""
    if not expression.endswith(")") or "(" not in expression:
        return expression
    head, _, inner = expression.partition("(")
    return Group(head + "(", [_call_node(inner[:-1])], ")")


def _prefixed(prefix: str, node: Node) -> Node:
    if isinstance(node, Group):
        return Group(
            prefix + node.opening, node.items, node.closing, literal=node.literal
        )
    return prefix + flat(node)


# The ranges of QAPI's integer types (as the runtime codec checks them), as code:
# ``low <= value < high``; CPython folds the powers into constants.
_INT_RANGES = {
    "int": ("-(2**63)", "2**63"),
    "int8": ("-(2**7)", "2**7"),
    "int16": ("-(2**15)", "2**15"),
    "int32": ("-(2**31)", "2**31"),
    "int64": ("-(2**63)", "2**63"),
    "uint8": ("0", "2**8"),
    "uint16": ("0", "2**16"),
    "uint32": ("0", "2**32"),
    "uint64": ("0", "2**64"),
    "size": ("0", "2**64"),
}


def _needs_helper(use: TypeUse, local: str) -> list[str] | None:
    """The operands (joined by ``or``) of the inline test that sends a member's wire
    value to the runtime helper: true when the value is absent, of another JSON kind,
    out of range, or one the helper converts (a negative uint64). None: the type is
    always decoded by its helper (objects, arrays, alternates, null).

    Only values the helper would return unchanged pass the test, so the inline path
    cannot differ from the helper's, and every fault is still reported by the helper
    with its usual message and JSON path (built only then)."""
    name = use.qapi_name if use.decoder.startswith("_c.") else ""
    if name in ("str", "bool"):
        return [f"type({local}) is not {name}"]
    if name in _INT_RANGES:
        low, high = _INT_RANGES[name]
        return [f"type({local}) is not int", f"not {low} <= {local} < {high}"]
    if name == "any":
        return [f"{local} is None"]
    if use.enum_table is not None:
        # strict decoding checks the server's conditions: always the helper
        return [
            "strict",
            f"type({local}) is not str",
            f"{local} not in {use.enum_table}",
        ]
    return None


def _statement(indent: str, text: str, node: Node) -> str:
    """`text` on one line when it fits, else `node` laid out as black would."""
    if len(indent) + len(text) <= LINE_LENGTH:
        return indent + text
    return lay_out(node, indent)


def _if_given(indent: str, value: str) -> str:
    """``if value is not None:`` at `indent`."""
    return _statement(
        indent,
        f"if {value} is not None:",
        Chain("if ", [value, "None"], "is not", ":"),
    )


def _condition(indent: str, operands: list[str]) -> str:
    """``if a or b:`` at `indent`."""
    return _statement(
        indent, f"if {' or '.join(operands)}:", Chain("if ", operands, "or", ":")
    )


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
    # Its features a server's `-compat` policy acts on ("deprecated", "unstable").
    special: list[str] = field(default_factory=list)
    # Where a server's disabled members of this member's object are listed
    # (`codec.Disabled.members`): the class name; "" for a command's arguments.
    owner: str = ""

    @property
    def omissible(self) -> bool:
        """Whether a peer may leave the member out: it is optional, or a server may
        lack it though the schema requires it (a build without its `if` condition has
        no such member; ``-compat deprecated-output=hide`` drops deprecated ones).
        Such a member is ``T | None``, absent when None."""
        return self.optional or self.required_but_omissible

    @property
    def required_but_omissible(self) -> bool:
        """A member the schema requires that a build (without its `if` condition)
        or a policy (hiding what is deprecated) may still leave out."""
        return (
            not self.optional
            and self.fixed_tag is None
            and (self.cond_json is not None or self.deprecated)
        )

    @property
    def annotation(self) -> str:
        if self.fixed_tag is not None:
            return f"_typing.Literal[{self.fixed_tag}]"
        if self.omissible:
            return f"{self.type.annotation} | None"
        return self.type.annotation

    @property
    def declaration(self) -> Node:
        """The class-body line: an annotated slot (a union branch's tag too: fixed,
        set by ``__init__`` and ``from_wire``, never a parameter)."""
        return Field(self.attr, self.annotation)

    @property
    def value(self) -> str:
        """What ``__init__`` sets the attribute to: its parameter, or the fixed tag."""
        return self.fixed_tag or self.attr

    @property
    def parameter(self) -> Node:
        """The member as a keyword parameter (black parenthesizes a long annotation
        as it does a field's)."""
        return Field(self.attr, self.annotation, "None" if self.omissible else None)

    @property
    def fetches(self) -> bool:
        """Whether `decode_lines` reads the member with ``get`` (else only through
        the helper)."""
        if self.required_but_omissible:
            return False
        return (
            self.optional
            or self.type.decoder == "_c.number"
            or self.type.json_kinds == ("object",)
            or _needs_helper(self.type, "v") is not None
        )

    def decode_lines(self, local: str, indent: str) -> list[str]:
        """Statements decoding this member of the wire object ``data`` (its ``get``
        bound as ``get``) into variable `local`: inline checks for scalars, the runtime
        helper (`_c.required`) for what they do not accept, so faults read as before.
        """
        wire = py_string(self.wire)
        if self.required_but_omissible:
            return [self._omissible_helper(local, indent, wire)]
        inner = indent + INDENT
        fetch = _statement(
            indent, f"{local} = get({wire})", Assign(local, Group("get(", [wire], ")"))
        )
        if self.type.decoder == "_c.number":
            # JSON numbers without a fraction arrive as int: converted here
            lines = [fetch, f"{indent}if type({local}) is int:"]
            lines.append(f"{inner}{local} = float({local})")
            lines.append(f"{indent}elif type({local}) is not float:")
            return lines + self._call_helper(local, inner, wire)
        if self.type.json_kinds == ("object",):
            return [fetch] + self._object_lines(local, indent, wire)
        operands = _needs_helper(self.type, local)
        if operands is None:
            if not self.optional:
                return [self._helper(local, indent, wire)]
            return [fetch] + self._call_helper(local, indent, wire)
        lines = [fetch, _condition(indent, operands)]
        lines += self._call_helper(local, inner, wire, operands)
        if self.type.enum_table is not None:
            lines.append(f"{indent}else:")
            table = self.type.enum_table
            lookup = Assign(local, Group(f"{table}[", [local], "]"))
            lines.append(_statement(inner, f"{local} = {table}[{local}]", lookup))
        return lines

    def refusal_lines(self, indent: str) -> list[str]:
        """``if strict: _c.refuse_member(...)``: a server whose `-compat` input policy
        refuses the member refuses it here, before the members after it are decoded,
        as QEMU's input visitor asks its policy at each member in schema order (a
        required member whether or not it is there: ``True`` last)."""
        arguments: list[Node] = [
            "data",
            py_string(self.wire),
            "path",
            py_string(self.owner),
        ]
        if not self.optional:
            arguments.append("True")
        call = f"_c.refuse_member({', '.join(map(flat, arguments))})"
        inner = indent + INDENT
        node = Group("_c.refuse_member(", arguments, ")")
        return [f"{indent}if strict:", _statement(inner, call, node)]

    def _object_lines(self, local: str, indent: str, wire: str) -> list[str]:
        """A struct or union member: a JSON object goes straight to its decoder, with
        the member's path; anything else (absent, null, another kind) to the helper,
        which reports it. Faults inside the object are named by the decoder's own
        members, so the two paths report alike."""
        inner = indent + INDENT
        path = f"path + {py_string('.' + self.wire)} if path else {wire}"
        call = f"{local} = {self.type.decoder}({local}, {path}, strict)"
        # split, the path is a call (black would split a long conditional its own
        # way); on one line, the cheaper conditional
        at: Node = Group("_c.at(", ["path", wire], ")")
        node = Assign(local, Group(f"{self.type.decoder}(", [local, at, "strict"], ")"))
        lines = [f"{indent}if type({local}) is dict:", _statement(inner, call, node)]
        if self.optional:
            present = [f"{local} is not None", f"{wire} in data"]
            lines.append(
                _statement(
                    indent,
                    f"elif {' or '.join(present)}:",
                    Chain("elif ", present, "or", ":"),
                )
            )
        else:
            lines.append(f"{indent}else:")
        return lines + [self._helper(local, inner, wire)]

    def _helper(self, local: str, indent: str, wire: str) -> str:
        """``local = _c.required(data, "wire", path, strict, decoder)``."""
        arguments = ["data", wire, "path", "strict", self.type.decoder]
        text = f"{local} = _c.required({', '.join(arguments)})"
        items: list[Node] = [*arguments[:-1], self.type.decoder_node]
        return _statement(
            indent, text, Assign(local, Group("_c.required(", items, ")"))
        )

    def _omissible_helper(self, local: str, indent: str, wire: str) -> str:
        """``local = _c.omissible(data, "wire", path, strict, decoder, owner)``: absent
        is None when decoding leniently; strict decoding (a server's arguments) still
        requires it unless the server's conditions leave it out (`owner` names where
        the server's disabled members are listed; ``""`` for a command's arguments;
        None when the member is unconditional, only deprecated)."""
        arguments = ["data", wire, "path", "strict", self.type.decoder]
        owner = "None" if self.cond_json is None else py_string(self.owner)
        text = f"{local} = _c.omissible({', '.join([*arguments, owner])})"
        items: list[Node] = [*arguments[:-1], self.type.decoder_node, owner]
        return _statement(
            indent, text, Assign(local, Group("_c.omissible(", items, ")"))
        )

    def _call_helper(
        self,
        local: str,
        indent: str,
        wire: str,
        operands: list[str] | None = None,
    ) -> list[str]:
        """The helper call, for an optional member only when the member is present
        (null included: the helper reports it)."""
        if not self.optional:
            return [self._helper(local, indent, wire)]
        present = [f"{wire} in data"]
        if operands != [f"{local} is None"]:  # else known not to be None here
            present.insert(0, f"{local} is not None")
        return [_condition(indent, present), self._helper(local, indent + INDENT, wire)]

    def deprecation_lines(
        self, value: str, where: str, indent: str, stacklevel: int
    ) -> list[str]:
        """Statements that warn (DeprecationWarning) when a program supplies this
        member as `value`: set at all when the member is deprecated, or holding an
        enum value the schema deprecates. `where` names the member in messages
        ("member 'x' of Foo"); `stacklevel` makes the warning name the program's line.
        None of this runs when decoding, so what a server sends never warns."""
        lines: list[str] = []
        inner = indent
        if self.deprecated and self.fixed_tag is None:  # a fixed tag is not set
            message = py_string(f"{where} is deprecated")
            warn = Group(
                "_warnings.warn(",
                [message, "DeprecationWarning", f"stacklevel={stacklevel}"],
                ")",
            )
            if self.omissible:
                lines.append(_if_given(indent, value))
                inner = indent + INDENT
            lines.append(lay_out(warn, inner))
        if self.type.deprecated_refs:
            tables = " | ".join(self.type.deprecated_refs)
            call = Group(
                "_c.warn_deprecated_values(",
                [value, tables, py_string(where), str(stacklevel)],
                ")",
            )
            lines.append(lay_out(call, indent))
        return lines

    def set_optional(self, target: str, value: str, indent: str) -> str:
        """``if value is not None: target["wire"] = encoded``, laid out at `indent`."""
        assign = Assign(
            f"{target}[{py_string(self.wire)}]", self.type.encode_node(value)
        )
        return _if_given(indent, value) + "\n" + lay_out(assign, indent + INDENT)


@dataclass
class EnumValue:
    wire: str
    attr: str
    cond_json: object = None
    deprecated: bool = False
    special: list[str] = field(default_factory=list)


@dataclass
class Enum:
    name: str
    qapi_name: str
    values: list[EnumValue]
    doc: str
    # the module-level table of the values the schema defines
    table: str = ""
    # the module-level set of its deprecated values (None: it has none)
    deprecated_table: str | None = None

    @property
    def table_definition(self) -> Node:
        """``_Name_VALUES: dict[str, Name] = {m.value: m for m in Name}``: what struct
        codecs look a wire value up in (unknown values go through the enum's own
        decoding, which keeps them on a client)."""
        comprehension = Split(["member.value: member", f"for member in {self.name}"])
        return Assign(
            f"{self.table}: dict[str, {self.name}]",
            Group("{", [comprehension], "}", literal=True),
        )

    @property
    def deprecated_definition(self) -> Node | None:
        """``_Name_DEPRECATED: frozenset[Name] = frozenset({Name.OLD})``: the values a
        program is warned about when it supplies them."""
        if self.deprecated_table is None:
            return None
        items: list[Node] = [
            f"{self.name}.{v.attr}" for v in self.values if v.deprecated
        ]
        members = Group("{", items, "}", literal=True)
        return Assign(
            f"{self.deprecated_table}: frozenset[{self.name}]",
            Group("frozenset(", [members], ")"),
        )


@dataclass
class Struct:
    """A class with a codec: a struct, a union branch, or an event."""

    name: str
    qapi_name: str
    members: list[Member]
    doc: str
    # Event classes carry their QMP event name.
    event_name: str | None = None
    deprecated: bool = False
    # Only events carry it: an unstable event (types and members cannot be).
    unstable: bool = False

    def __post_init__(self) -> None:
        for member in self.members:
            member.owner = self.name

    @property
    def base(self) -> str:
        return "_Struct" if self.event_name is None else "_Event"

    @property
    def settable(self) -> list[Member]:
        """The members an instance holds (a branch's fixed tag is the class's)."""
        return [m for m in self.members if m.fixed_tag is None]

    @property
    def fixed(self) -> list[Member]:
        return [m for m in self.members if m.fixed_tag is not None]

    @property
    def own_attributes(self) -> list[str]:
        """Every attribute an instance holds, in order (an event's `timestamp` is
        its base class's)."""
        return [m.attr for m in self.members] + ["extra"]

    @property
    def slots(self) -> Node:
        return Assign("__slots__", _tuple_literal(self.own_attributes))

    @property
    def fixed_fields(self) -> Node | None:
        if not self.fixed:
            return None
        names = [m.attr for m in self.fixed]
        return Assign(
            "_FIXED: _typing.ClassVar[tuple[str, ...]]", _tuple_literal(names)
        )

    @property
    def known_members(self) -> Node:
        """The class constant listing the wire names of its members."""
        items: list[Node] = [py_string(m.wire) for m in self.members]
        members = Group("{", items, "}", literal=True) if items else "()"
        value = Group("frozenset(", [members], ")")
        return Assign("_MEMBERS: _typing.ClassVar[frozenset[str]]", value)

    @property
    def init_signature(self) -> Node:
        params: list[Node] = ["self", "*"]
        params += [m.parameter for m in self.settable]
        params.append("extra: dict[str, object] | None = None")
        if self.event_name is not None:
            params.append("timestamp: _Timestamp = _NO_TIMESTAMP")
        return Group("def __init__(", params, ") -> None:", is_def=True)

    @property
    def init_body(self) -> str:
        """Set each attribute; then warn about each deprecated member a program sets
        and each deprecated enum value it gives. `from_wire` bypasses ``__init__``, so
        a client is told what it sends, never what it receives. Event classes do not
        warn: a program builds events only to serve them."""
        indent = INDENT * 2
        lines = [
            _statement(
                indent, f"self.{m.attr} = {m.value}", Assign(f"self.{m.attr}", m.value)
            )
            for m in self.members
        ]
        lines.append(f"{indent}self.extra = {{}} if extra is None else extra")
        if self.event_name is not None:
            lines.append(f"{indent}self.timestamp = timestamp")
            return "\n".join(lines)
        for m in self.members:
            where = f"member '{m.wire}' of {self.qapi_name}"
            # stack: warnings.warn, __init__, the caller
            lines += m.deprecation_lines(m.value, where, indent, 2)
        return "\n".join(lines)

    @property
    def from_wire_body(self) -> str:
        """The statements of ``from_wire``: each member checked inline into a local
        variable (in member order, so the first fault is the one reported), unknown
        members looked for only when some key is not a member, then the instance,
        its slots filled directly."""
        indent = INDENT * 2
        decoded = self.settable
        locals_ = _local_names(decoded)
        lines = [
            f"{indent}data: dict[str, object] = (",
            f"{indent}{INDENT}value if type(value) is dict else _c.object_(value, path)",
            f"{indent})",
        ]
        if any(m.fetches for m in decoded):
            lines.append(f"{indent}get = data.get")
        for m in decoded:
            if m.special and self.event_name is None:
                lines += m.refusal_lines(indent)
            lines += m.decode_lines(locals_[m.attr], indent)
        extra = Group(
            "extra = _c.extra_members(",
            ["data", "cls._MEMBERS", "path", "strict", py_string(self.name)],
            ")",
        )
        lines.append(f"{indent}if strict or not cls._MEMBERS.issuperset(data):")
        lines.append(lay_out(extra, indent + INDENT))
        lines.append(f"{indent}else:")
        lines.append(f"{indent}{INDENT}extra = {{}}")
        # Filling the slots directly skips the keyword matching of __init__, which
        # costs more than all the checks above (it sets nothing else).
        lines.append(f"{indent}decoded = object.__new__(cls)")
        for m in self.members:
            value = m.fixed_tag or locals_[m.attr]
            assign = f"decoded.{m.attr} = {value}"
            lines.append(_statement(indent, assign, Assign(f"decoded.{m.attr}", value)))
        lines.append(f"{indent}decoded.extra = extra")
        if self.event_name is not None:
            # the data member carries no stamp: the decode paths set the envelope's
            lines.append(f"{indent}decoded.timestamp = _NO_TIMESTAMP")
        lines.append(f"{indent}return decoded")
        return "\n".join(lines)

    @property
    def hides_members(self) -> bool:
        """Whether a server's `-compat` output policy may hide some of its members
        (`to_wire` then asks `_c.hide_members`; events are a program's to send)."""
        return self.event_name is None and any(m.special for m in self.members)

    @property
    def uses_warnings(self) -> bool:
        """Whether the class's code calls `warnings.warn` itself."""
        return self.event_name is None and any(
            m.deprecated and m.fixed_tag is None for m in self.members
        )

    @property
    def wire_dict(self) -> Node:
        """``wire: dict[str, object] = {required members}``."""
        items: list[Node] = [
            _prefixed(f"{py_string(m.wire)}: ", m.type.encode_node("self." + m.attr))
            for m in self.members
            if not m.omissible
        ]
        return Assign("wire: dict[str, object]", Group("{", items, "}", literal=True))


def _tuple_literal(names: list[str]) -> Node:
    """``("a", "b")``; a one-element tuple keeps its comma."""
    items: list[Node] = [py_string(name) for name in names]
    if len(items) == 1:
        # the comma makes it a tuple, on one line or split
        return Group("(", [f"{flat(items[0])},"], ")", literal=True)
    return Group("(", items, ")", literal=True)


# Names `from_wire` binds or reads besides its members' variables.
_CODEC_NAMES = frozenset(
    {
        "value",
        "path",
        "strict",
        "cls",
        "data",
        "get",
        "extra",
        "decoded",
        "object",
        "type",
        "float",
        "dict",
        "str",
        "int",
        "bool",
        "list",
        "_c",
        "_NO_TIMESTAMP",
    }
)


# Longer attribute names are decoded into ``m<position>``: the decoding statements
# then stay short, and laid out only in the few shapes the layout rules know.
_MAX_LOCAL = 20


def _local_names(members: list[Member]) -> dict[str, str]:
    """The variable each member is decoded into: its attribute name, unless that is
    long or a name the codec uses (``data``, ``value``, a class it refers to, ...)."""
    taken = set(_CODEC_NAMES)
    for m in members:
        taken.update(_referenced_names(m.type))
    attrs = {m.attr for m in members}
    names: dict[str, str] = {}
    for position, m in enumerate(members):
        name = m.attr if len(m.attr) <= _MAX_LOCAL else f"m{position}"
        while name in taken or (name != m.attr and name in attrs):
            name += "_"
        taken.add(name)
        names[m.attr] = name
    return names


def _referenced_names(use: TypeUse) -> set[str]:
    """The top-level names a member's decoding code mentions (its decoder's and its
    enum table's), which a local variable must not shadow."""
    text = use.decoder + " " + (use.enum_table or "")
    words = text.replace("(", " ").replace(")", " ").replace(",", " ").split()
    return {word.split(".")[0] for word in words}


@dataclass
class Branch:
    """One value of a union's tag: the class decoding takes for it or, when the
    branch's type is itself a union (QEMU flattens its members, tag and all, into the
    same JSON object), the dispatch on that inner union's tag."""

    tag_value: str
    enum_member: str
    cls: str | None
    nested: Dispatch | None = None

    @property
    def classes(self) -> list[str]:
        if self.nested is None:
            assert self.cls is not None
            return [self.cls]
        return [cls for branch in self.nested.branches for cls in branch.classes]


@dataclass
class Dispatch:
    """Which class a decoded object becomes, by the value of one tag member."""

    tag_wire: str
    tag_type: TypeUse
    branches: list[Branch]


@dataclass
class Union:
    """A discriminated union: one Struct per leaf branch, an alias, a decode
    function."""

    name: str
    qapi_name: str
    dispatch: Dispatch
    decode_function: str
    doc: str

    @property
    def branch_classes(self) -> list[str]:
        return [cls for branch in self.dispatch.branches for cls in branch.classes]


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

    test: Node | None
    expr: Node


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
            test = Group("if isinstance(", ["value", alt.type.isinstance], "):")
            steps.append(EncodeStep(test, alt.type.encode_node("value")))
        if plain:
            steps.append(EncodeStep(None, "value"))
        elif steps:
            steps[-1].test = None
        return steps


@dataclass
class FacadeExports:
    """What a lazy facade (`types/__init__.py`, `events/__init__.py`) names: every
    name with the module of the package that defines it, in the package's modules'
    order (`modules`)."""

    locations: dict[str, str]
    modules: list[str]
    # names the facade itself defines that a program uses
    also: tuple[str, ...] = ()

    @property
    def public(self) -> list[str]:
        """``__all__``: the names a program uses (tables are the package's own)."""
        listed = [name for name in self.locations if not name.startswith("_")]
        return sorted({*listed, *self.also})

    def type_checking_imports(self, indent: str) -> list[str]:
        """``from .module import (Name as Name, ...)``, a statement per module, so
        type checkers and IDEs see every name where it is defined."""
        statements: list[str] = []
        for module in sorted(self.modules):
            names = sorted(n for n, m in self.locations.items() if m == module)
            if not names:
                continue
            items: list[Node] = [f"{name} as {name}" for name in names]
            group = Group(f"from .{module} import (", items, ")", explode=True)
            statements.append(lay_out(group, indent))
        return statements

    @property
    def all_list(self) -> Node:
        items: list[Node] = [py_string(name) for name in self.public]
        if not items:
            return "__all__: list[str] = []"
        return Assign("__all__", Group("[", items, "]", literal=True, explode=True))

    @property
    def locations_table(self) -> Node:
        items: list[Node] = [
            f"{py_string(name)}: {py_string(self.locations[name])}"
            for name in sorted(self.locations)
        ]
        if not items:
            return "_LOCATIONS: dict[str, str] = {}"
        return Assign(
            "_LOCATIONS: dict[str, str]",
            Group("{", items, "}", literal=True, explode=True),
        )


@dataclass
class Module:
    """One generated file."""

    path: str
    docstring: str
    imports: list[str] = field(default_factory=list)
    # The rendered body, filled by the backend.
    body: str = ""
