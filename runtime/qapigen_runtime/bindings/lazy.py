"""Lazy facades: `PKG.types` and `PKG.events` name every class of a schema, but the
file that defines one (one per schema module, as QEMU splits its generated code) is
imported only when the name is first used, so a program pays for what it uses.

A facade lists its names for type checkers and IDEs under `if TYPE_CHECKING:` and, at
run time only, defines a module `__getattr__` that calls `load`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping


def load(
    package: str,
    locations: Mapping[str, str],
    name: str,
    namespace: MutableMapping[str, object],
) -> object:
    """The attribute `name` of facade `package`, imported from the submodule
    `locations` names and kept in the facade's `namespace` (its globals), so the
    next access is a plain attribute lookup."""
    module = locations.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{package}.{module}"), name)
    namespace[name] = value
    return value


def names(locations: Mapping[str, str], namespace: Mapping[str, object]) -> list[str]:
    """What `dir()` of a facade lists: what it defines and what it can load."""
    return sorted({*namespace, *locations})
