"""How QAPI names become Python names: the one place that decides.

QAPI names may contain dashes and dots, start with a digit (enum values such as QKeyCode's
'1'), carry a downstream-extension prefix (``__org.qemu_x-foo``), or be Python keywords
('if', 'in'). Every rule here is a plain textual rewrite, and every name is registered in
a `NameScope` (one per Python namespace: a module, a class body, a parameter list), which
refuses two QAPI names that would land on the same Python name with a located QAPIError
and remembers the inverse, so the mapping is reversible within its scope.

Rules:
- ``-`` and ``.`` become ``_``; a downstream prefix ``__org.qemu_x`` loses its leading
  underscores (two leading underscores would trigger Python's private-name mangling).
- a name starting with a digit gets a leading ``_``.
- attribute, parameter and function names that are keywords or reserved by the generated
  code (``extra``, ``to_wire``, builtin type names used in annotations) get a trailing ``_``
  (the variables of decoders avoid member names themselves, so ``path`` stays ``path``);
  so do the data members of an event named like what event classes add (``timestamp``).
- enum members are upper case (``postcopy-active`` -> ``POSTCOPY_ACTIVE``).
- class names keep the QAPI spelling with the first letter upper-cased; events become
  ``CamelCase`` plus ``Event`` (``MIGRATION_PASS`` -> ``MigrationPassEvent``).
"""

from __future__ import annotations

import builtins
import keyword
import re

from .source import QAPIError, SourceInfo

# Names a generated class body or signature uses itself: a field of that name would shadow
# a builtin the annotations rely on, or the codec's own members.
RESERVED_ATTRIBUTES = frozenset(
    {
        "bool",
        "bytes",
        "classmethod",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "object",
        "str",
        "tuple",
        "type",
        "self",
        "cls",
        "extra",
        "to_wire",
        "from_wire",
        # event classes carry their event name as a class variable
        "NAME",
    }
)

# What an event class holds besides its data members: the time QMP stamped the event
# with. A data member of that name (legal QAPI) becomes ``timestamp_`` in event classes
# only; the same member in a struct keeps its plain name.
EVENT_ATTRIBUTES = frozenset({"timestamp"})

_DOWNSTREAM_PREFIX = re.compile(r"^__([a-z0-9.-]+)_")
_SEPARATORS = re.compile(r"[-.]")


def _base(name: str) -> str:
    """Separators to underscores, downstream prefix unmangled, leading digit guarded."""
    match = _DOWNSTREAM_PREFIX.match(name)
    if match:
        name = match.group(1) + "_" + name[match.end() :]
    text = _SEPARATORS.sub("_", name)
    if text[:1].isdigit():
        text = "_" + text
    return text


def attribute_name(name: str) -> str:
    """A struct member, command parameter or method name: ``max-bandwidth`` ->
    ``max_bandwidth``, ``if`` -> ``if_``."""
    text = _base(name)
    if keyword.iskeyword(text) or text in RESERVED_ATTRIBUTES:
        text += "_"
    return text


def event_member_name(name: str) -> str:
    """A data member of an event class: as `attribute_name`, and ``timestamp`` ->
    ``timestamp_`` (the class's own `timestamp` holds the QMP stamp)."""
    text = attribute_name(name)
    if text in EVENT_ATTRIBUTES:
        text += "_"
    return text


def enum_member_name(value: str) -> str:
    """An enum member: ``postcopy-active`` -> ``POSTCOPY_ACTIVE``, ``1`` -> ``_1``."""
    text = _base(value).upper()
    if text.startswith("_") and text.endswith("_"):
        # `_X_` names are reserved by the enum module ("sunder" names).
        text += "V"
    return text


def class_name(name: str) -> str:
    """A type's class: ``MigrationInfo`` stays, ``__org.qemu_x-Struct`` ->
    ``Org_qemu_x_Struct``."""
    text = _base(name)
    if text.startswith("_"):
        return "Q" + text
    text = text[:1].upper() + text[1:]
    if keyword.iskeyword(text):  # None, True, False
        text += "_"
    return text


def camel_case(name: str) -> str:
    """``MIGRATION_PASS`` or ``block-job`` -> ``MigrationPass`` / ``BlockJob``."""
    parts = [part for part in re.split(r"[-._]", _base(name)) if part]
    return "".join(part[:1].upper() + part[1:].lower() for part in parts)


def event_class_name(name: str) -> str:
    """``MIGRATION_PASS`` -> ``MigrationPassEvent``; ``__0day.org_FOO`` ->
    ``Q0dayOrgFooEvent`` (a downstream prefix may start with a digit)."""
    text = camel_case(name) + "Event"
    return "Q" + text if text[:1].isdigit() else text


def branch_class_name(union: str, branch: str) -> str:
    """The class of one union branch: ``BlockdevOptions`` + ``qcow2`` ->
    ``BlockdevOptionsQcow2``."""
    return class_name(union) + camel_case(branch)


def snake_case(name: str) -> str:
    """``MigrationInfo`` -> ``migration_info`` (for codec function names)."""
    text = _base(name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return text.lower().lstrip("_")


def is_builtin_name(name: str) -> bool:
    return hasattr(builtins, name)


class NameScope:
    """One Python namespace: maps QAPI names to Python names and back, refusing clashes.

    `what` names the scope in error messages ("struct 'MigrationInfo'").
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._by_python: dict[str, str] = {}
        self._by_qapi: dict[str, str] = {}
        # Python names the generated code itself binds in this namespace.
        self._reserved: dict[str, str] = {}
        # Python names given with `_` appended, the natural one being reserved.
        self._renamed: set[str] = set()

    def reserve(self, python_name: str, why: str) -> None:
        """Keep `python_name` for the generated code (`why` says what uses it): a QAPI
        name that would become it gets it with ``_`` appended."""
        self._reserved[python_name] = why

    def add(self, qapi_name: str, python_name: str, info: SourceInfo | None) -> str:
        """Register `qapi_name` as `python_name` and return the Python name it gets:
        `python_name`, or that with ``_`` appended until it is free when the generated
        code reserves it (or a renamed name holds it). Two QAPI names on the same
        Python name by the naming rules alone are an error located at `info`."""
        name = python_name
        while name in self._reserved or self._renamed_holder(name, qapi_name):
            name += "_"
        owner = self._by_python.get(name)
        if owner is not None and owner != qapi_name:
            raise QAPIError(
                info,
                f"'{qapi_name}' and '{owner}' both become the Python name "
                f"'{name}' in {self.what}",
            )
        if name != python_name:
            self._renamed.add(name)
        self._by_python[name] = qapi_name
        self._by_qapi[qapi_name] = name
        return name

    def add_derived(
        self, qapi_name: str, python_name: str, info: SourceInfo | None
    ) -> str:
        """Register a name the generator derives from a schema name (a decoder
        ``decode_sync_client``, a branch class ``Foo_Bar``): the derivation is lossy
        (``SyncClient`` and ``sync_client`` derive the same decoder), so a taken name
        gets ``_`` appended until it is free instead of being refused. Register the
        schema's own names first: they keep their spelling, derived ones yield."""
        name = python_name
        while name in self._reserved or name in self._by_python:
            if self._by_python.get(name) == qapi_name:
                return name
            name += "_"
        return self.add(qapi_name, name, info)

    def _renamed_holder(self, python_name: str, qapi_name: str) -> bool:
        """Whether another QAPI name holds `python_name` because it was renamed."""
        owner = self._by_python.get(python_name)
        return owner is not None and owner != qapi_name and python_name in self._renamed

    def python(self, qapi_name: str) -> str:
        return self._by_qapi[qapi_name]

    def qapi(self, python_name: str) -> str:
        """The inverse: which QAPI name became `python_name`."""
        return self._by_python[python_name]

    def __contains__(self, python_name: object) -> bool:
        return python_name in self._by_python or python_name in self._reserved
