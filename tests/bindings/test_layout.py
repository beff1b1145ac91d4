"""The layout rules produce what black itself would print, for every statement shape
the templates use, at every length around the 88-column limit."""

from __future__ import annotations

import black
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen.layout import INDENT, Assign, Chain, Field, Group, Node, Split, lay_out

MODE = black.Mode(line_length=88)
names = st.text(alphabet="abcdefghij_", min_size=1, max_size=40).map(lambda s: "n" + s)


def assert_black_stable(code: str) -> None:
    assert black.format_str(code, mode=MODE) == code


def in_function(node: Node, indent: str = "    ") -> str:
    return "def f():\n" + lay_out(node, indent) + "\n"


@settings(max_examples=150, deadline=None)
@given(st.lists(names, min_size=1, max_size=8), names)
def test_calls_hug_or_explode_like_black(args: list[str], callee: str) -> None:
    call = Group(f"return {callee}(", list(args), ")")
    assert_black_stable(in_function(call))


@settings(max_examples=150, deadline=None)
@given(st.lists(names, min_size=1, max_size=6), names, names)
def test_nested_calls_in_keyword_arguments(
    args: list[str], key: str, callee: str
) -> None:
    inner = Group(f"{key}=_c.required(", ["data", *args], ")")
    outer = Group(f"return {callee}(", [inner, f"{key}2=1"], ")")
    assert_black_stable(
        in_function(outer, "        ").replace("def f():\n", "def f():\n    if x:\n")
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(names, min_size=0, max_size=6), names)
def test_literals_explode_like_black(items: list[str], target: str) -> None:
    quoted: list[Node] = [f'"{item}"' for item in items]
    members = Group("{", quoted, "}", literal=True) if quoted else "()"
    value = Group("frozenset(", [members], ")")
    assert_black_stable(
        in_function(Assign(f"{target}: ClassVar[frozenset[str]]", value))
    )


@settings(max_examples=150, deadline=None)
@given(names, names, names)
def test_assignments_wrap_in_parentheses_like_black(
    target: str, tag: str, enum: str
) -> None:
    field = Group("dataclasses.field(", [f"default={enum}.{tag}", "init=False"], ")")
    stmt = Assign(f"{target}: Literal[{enum}.{tag}]", field)
    assert_black_stable("class C:\n" + lay_out(stmt, "    ") + "\n")
    plain = Assign(f'wire["{target}"]', f"self.{target}_{tag}")
    assert_black_stable(in_function(plain))


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=1, max_size=5), names)
def test_def_signatures_like_black(params: list[str], name: str) -> None:
    signature = Group(
        f"def {name}(",
        [f"{p}: int" for p in dict.fromkeys(params)],
        ") -> None:",
        is_def=True,
    )
    assert_black_stable(lay_out(signature) + "\n    pass\n")


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=2, max_size=12), names)
def test_union_aliases_like_black(operands: list[str], alias: str) -> None:
    assert_black_stable(lay_out(Chain(f"{alias}: TypeAlias = ", operands)) + "\n")


@settings(max_examples=100, deadline=None)
@given(names, names)
def test_comprehensions_split_before_for_like_black(element: str, source: str) -> None:
    comprehension = Group(
        "[",
        [Split([f"{element}.to_wire()", f"for {element} in self.{source}"])],
        "]",
        literal=True,
    )
    stmt = Assign(f'wire["{source}-{element}"]', comprehension)
    assert_black_stable(
        in_function(stmt, "        ").replace("def f():\n", "def f():\n    if x:\n")
    )


@settings(max_examples=150, deadline=None)
@given(names, names, st.booleans())
def test_dataclass_fields_like_black(name: str, type_name: str, optional: bool) -> None:
    annotation = f"list[{type_name}]" + (" | None" if optional else "")
    field = Field(name, annotation, "None" if optional else None)
    assert_black_stable("class C:\n" + lay_out(field, "    ") + "\n")


long_names = st.text(alphabet="abcdefghij_", min_size=20, max_size=90).map(
    lambda s: "n" + s
)


@settings(max_examples=200, deadline=None)
@given(long_names, long_names, long_names, st.integers(min_value=1, max_value=4))
def test_subscript_targets_too_long_split_at_the_values_bracket_like_black(
    key: str, callee: str, argument: str, depth: int
) -> None:
    """``_arguments["key"] = _t.encode_x(arg)`` where even ``_arguments["key"] = (``
    is too long: black leaves the optional parentheses out and splits at the call's
    bracket, though ``] = _t.encode_x(`` may still be too long (the random-schema
    black test found it, with a 60-character argument and a 70-character encoder)."""
    arguments: list[Node] = [argument]
    stmt = Assign(f'_arguments["{key}"]', Group(f"_t.{callee}(", arguments, ")"))
    indent = INDENT * depth
    code = "def f():\n" + "".join(
        INDENT * level + "if x:\n" for level in range(1, depth)
    )
    assert_black_stable(code + lay_out(stmt, indent) + "\n")


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=100),
    st.lists(
        st.integers(min_value=1, max_value=90).map(lambda n: "B" + "b" * (n - 1)),
        min_size=1,
        max_size=5,
    ),
)
def test_type_aliases_of_long_names_split_at_the_annotation_like_black(
    length: int, operands: list[str]
) -> None:
    """``NAME: _typing.TypeAlias = A | B`` where even ``NAME: _typing.TypeAlias = (``
    is too long (names of 62+ characters; the random-schema black test found one):
    black puts the annotation in parentheses of its own."""
    alias = Chain("T" + "a" * (length - 1) + ": _typing.TypeAlias = ", operands)
    assert_black_stable(lay_out(alias) + "\n")


returned_types = st.integers(min_value=1, max_value=95).flatmap(
    lambda n: st.sampled_from(
        ["T" + "a" * n, "_t.T" + "a" * n, f"list[_t.T{'a' * n}]", f"T{'a' * n} | None"]
    )
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [["self"], ["self", "arguments: _t.Boxed", "/"], ["cls", "x: int"]]
    ),
    returned_types,
    st.booleans(),
    st.booleans(),
)
def test_long_return_annotations_like_black(
    params: list[str], returned: str, stub: bool, in_class: bool
) -> None:
    """A return annotation that makes the closing line too long: split at its
    subscript (``) -> list[`` / item / ``]:``), else put in parentheses, one ``|``
    operand a line if need be; a protocol's stub (``: ...``) alike. The random-schema
    black test found the subscript case on a stub."""
    parameters: list[Node] = list(params)
    signature = Group(
        "async def method(",
        parameters,
        f") -> {returned}:{' ...' if stub else ''}",
        is_def=True,
    )
    indent = INDENT if in_class else ""
    body = "" if stub else "\n" + indent + INDENT + "pass"
    code = ("class C:\n" if in_class else "") + lay_out(signature, indent) + body + "\n"
    assert_black_stable(code)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=95),
    st.integers(min_value=1, max_value=40),
    st.sampled_from(["list[_t.T{}] | None", "_t.T{} | None", "list[_t.T{}]", "T{}"]),
    st.booleans(),
)
def test_long_fields_without_a_default_like_black(
    length: int, name_length: int, shape: str, default: bool
) -> None:
    """A field whose annotation is too long for its line, with and without a default:
    a union (``list[X] | None``, an event's optional member) stays in parentheses and
    splits at ``|`` when still too long there (the random-schema black test found it).
    """
    annotation = shape.format("a" * length)
    # a default (None) comes with an optional annotation only
    optional = default and annotation.endswith(" | None")
    field = Field("m" * name_length, annotation, "None" if optional else None)
    assert_black_stable("class C:\n" + lay_out(field, "    ") + "\n")


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=100),
    st.lists(
        st.integers(min_value=1, max_value=40).map(lambda n: "V_" + "B" * n),
        min_size=1,
        max_size=3,
        unique=True,
    ),
)
def test_annotated_constants_of_long_names_like_black(
    length: int, values: list[str]
) -> None:
    """``_E_DEPRECATED: frozenset[E] = frozenset({E.V})`` where even
    ``_E_DEPRECATED: frozenset[`` is too long: black keeps the annotation in
    parentheses of its own when it then fits, and the value split at its bracket (the
    random-schema black test found it with a 66-character enum name)."""
    enum = "T" + "a" * (length - 1)
    members: list[Node] = [f"{enum}.{value}" for value in values]
    value = Group("frozenset(", [Group("{", members, "}", literal=True)], ")")
    constant = Assign(f"_{enum}_DEPRECATED: frozenset[{enum}]", value)
    assert_black_stable(lay_out(constant) + "\n")
