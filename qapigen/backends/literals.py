"""Python literals of JSON data and dict displays, as layout nodes (black's style)."""

from __future__ import annotations

from ..layout import Assign, Group, Node, flat
from ..render import py_string


def dict_literal(target: str, items: list[Node]) -> Node:
    """``target = {item, ...}``, one item per line (stable under black thanks to the
    trailing comma), or ``{}``."""
    if not items:
        return f"{target} = {{}}"
    return Assign(target, Group("{", items, "}", literal=True, explode=True))


def nested_dict_literal(target: str, tables: list[tuple[str, list[Node]]]) -> Node:
    """``target = {owner: {item, ...}, ...}`` of the owners whose items are not
    empty (a table of tables: members' conditions or features by class)."""
    items: list[Node] = []
    for owner, owned in tables:
        if owned:
            table = Group("{", owned, "}", literal=True, explode=True)
            items.append(keyed(owner, table))
    return dict_literal(target, items)


def frozenset_literal(target: str, items: list[Node]) -> Node:
    """``target = frozenset({item, ...})``, one item per line, or ``frozenset()``."""
    if not items:
        return f"{target} = frozenset()"
    members = Group("{", items, "}", literal=True, explode=True)
    return Assign(target, Group("frozenset(", [members], ")"))


def json_node(value: object) -> Node:
    """A JSON value as a layout node (lists and dicts can be split like black does)."""
    if isinstance(value, list):
        return Group("[", [json_node(v) for v in value], "]", literal=True)
    if isinstance(value, dict):
        items: list[Node] = [keyed(str(k), json_node(v)) for k, v in value.items()]
        return Group("{", items, "}", literal=True)
    return repr_json(value)


def keyed(key: str, value: Node) -> Node:
    """``"key": value`` as a dict item node."""
    if isinstance(value, Group):
        return Group(
            f"{py_string(key)}: {value.opening}",
            value.items,
            value.closing,
            explode=value.explode,
            literal=value.literal,
        )
    return f"{py_string(key)}: {flat(value)}"


def repr_json(value: object) -> str:
    """A JSON value as Python source in black's style (double quotes)."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return py_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(repr_json(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{repr_json(k)}: {repr_json(v)}" for k, v in value.items())
        return "{" + items + "}"
    return repr(value)
