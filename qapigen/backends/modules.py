"""Which file of a generated package each type and event goes into.

As QEMU's generator writes one output file per schema module (`qapi-types-block-core.h`,
...), a package has one types module and one events module per schema file: a reader
finds a type where the schema keeps it, and a program imports only the modules of the
types it uses (the `types` and `events` facades load them on first use). Types modules
import what they use from each other at the top, so the import graph must have no cycle:
schema modules whose types refer to each other in a circle share one file.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from ..schema import Entity, Schema


def module_key(entity: Entity) -> str:
    """The schema file an entity is defined in, as the IR names it."""
    assert entity.module is not None, entity.name
    return entity.module.name


class ModulePlan:
    """Schema file -> Python module name, and each entity's module."""

    def __init__(self, schema: Schema, taken: Iterable[str] = ()) -> None:
        self._names: dict[str, str] = {}
        used = set(taken)
        for module in schema.modules:
            if module.is_builtin:
                continue
            name = _python_module_name(module.name)
            unique = name
            counter = 2
            while unique in used:
                unique = f"{name}_{counter}"
                counter += 1
            used.add(unique)
            self._names[module.name] = unique
        # entity name -> schema file, for every entity with a module
        self._entity_module: dict[str, str] = {
            entity.name: module_key(entity)
            for entity in schema.entities
            if entity.module is not None and not entity.module.is_builtin
        }
        # schema files merged into another's Python module (cycles)
        self._merged: dict[str, str] = {}

    def module_of(self, entity_name: str) -> str:
        """The Python module (of the types or events package) defining `entity_name`."""
        key = self._entity_module[entity_name]
        return self._names[self._merged.get(key, key)]

    def modules(self) -> list[str]:
        """Every Python module name, in schema order (merged ones once)."""
        seen: dict[str, None] = {}
        for key in self._names:
            seen[self._names[self._merged.get(key, key)]] = None
        return list(seen)

    def merge_cycles(self, imports: Mapping[str, set[str]]) -> bool:
        """Given each module's imports of other modules, merge every cycle into its
        first module (schema order); True when something was merged (the modules
        must then be generated again)."""
        order = self.modules()
        components = _strongly_connected(order, imports)
        merged = False
        by_name = {name: key for key, name in self._names.items()}
        for component in components:
            if len(component) < 2:
                continue
            first = min(component, key=order.index)
            for name in component:
                if name != first:
                    self._merged[by_name[name]] = by_name[first]
                    merged = True
        # a file merged into one that is itself merged follows it
        for key, target in list(self._merged.items()):
            while target in self._merged:
                target = self._merged[target]
            self._merged[key] = target
        return merged


def _python_module_name(path: str) -> str:
    """``qapi/block-core.json`` -> ``block_core``."""
    stem = PurePosixPath(path).name.rsplit(".", 1)[0]
    name = re.sub(r"[^0-9a-zA-Z_]", "_", stem).lower().strip("_") or "schema"
    if name[0].isdigit():
        name = "m_" + name
    if keyword.iskeyword(name) or name in ("types", "events"):
        name += "_"
    return name


def _strongly_connected(
    nodes: list[str], edges: Mapping[str, set[str]]
) -> list[list[str]]:
    """Tarjan's strongly connected components of the module graph (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                target = pending.pop()
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, sorted(edges.get(target, ()))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components
