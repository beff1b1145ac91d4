"""The events package: a typed class per event (its data members plus the time the
server stamped it) in a module per schema module, and the facade `events/__init__.py`:
every event class, decoding by event name and typed waiting on a transport."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import naming
from ..layout import Group, Node
from ..render import header, py_string, render
from ..schema import Event, Schema
from .common import (
    RUNTIME,
    Imports,
    Reference,
    TypeMapper,
    TypeNames,
    is_deprecated,
    members_of,
    special_features,
)
from .docs import doc_text
from .literals import (
    dict_literal,
    frozenset_literal,
    json_node,
    keyed,
    nested_dict_literal,
)
from .modules import ModulePlan
from .view import FacadeExports, Module, Struct

# What the events facade binds besides the event classes it lists.
FACADE_NAMES = (
    "Event",
    "EVENT_CONDITIONS",
    "DEPRECATED_EVENTS",
    "EVENT_FEATURES",
    "EVENT_DATA_FEATURES",
    "event_output",
    "decode_event",
    "from_qmp_event",
    "to_qmp_event",
    "wait_for",
    "wait_for_sync",
    "typed_events",
    "typed_events_sync",
    "Timestamp",
    "NO_TIMESTAMP",
)

_TIMESTAMP_DOC = "the server's stamp (NO_TIMESTAMP: built here, not received)"


def event_view(event: Event, mapper: TypeMapper, scope: naming.NameScope) -> Struct:
    cls = scope.add(event.name, naming.event_class_name(event.name), event.info)
    members = []
    if event.arg_type is not None:
        where = f"the data of event '{event.name}'"
        members = members_of(
            mapper,
            event.arg_type.members,
            event.doc,
            where,
            attribute=naming.event_member_name,
        )
    doc = doc_text(
        event.doc,
        members=[(m.attr, m.doc) for m in members] + [("timestamp", _TIMESTAMP_DOC)],
        deprecated=is_deprecated(event.features),
        deprecated_use="waiting for it",
        condition=event.ifcond.to_json(),
        fallback=f"QMP event {event.name}.",
    )
    return Struct(
        cls,
        event.name,
        members,
        doc,
        event_name=event.name,
        deprecated=is_deprecated(event.features),
        unstable="unstable" in special_features(event.features),
    )


@dataclass
class _EventsFile:
    name: str
    imports: Imports
    events: list[Struct] = field(default_factory=list)


def generate_events(
    schema: Schema, names: TypeNames, plan: ModulePlan, schema_name: str
) -> list[Module]:
    scope = naming.NameScope("the generated events package")
    for taken in FACADE_NAMES:
        scope.reserve(taken, "the events facade")
    files: dict[str, _EventsFile] = {}
    conditions: list[Node] = []
    deprecated: list[Node] = []
    features: list[Node] = []
    data_features: list[tuple[str, list[Node]]] = []
    locations: dict[str, str] = {}
    catalog: list[Node] = []
    for event in schema.events():
        module = plan.module_of(event.name)
        target = files.get(module)
        if target is None:
            target = files[module] = _EventsFile(module, Imports())
        reference = Reference(plan, target.imports, parent="..")
        view = event_view(
            event, TypeMapper(names, reference, decodes_members=True), scope
        )
        target.events.append(view)
        locations[view.name] = module
        location = Group(
            "(", [py_string(module), py_string(view.name)], ")", literal=True
        )
        catalog.append(keyed(event.name, location))
        if event.ifcond.to_json() is not None:
            conditions.append(keyed(event.name, json_node(event.ifcond.to_json())))
        if view.deprecated:
            deprecated.append(py_string(event.name))
        special = special_features(event.features)
        if special:
            features.append(keyed(event.name, json_node(special)))
        data_features.append(
            (
                event.name,
                [
                    keyed(m.wire, json_node(m.special))
                    for m in view.members
                    if m.special
                ],
            )
        )
    modules = [_render_module(content, schema_name) for content in files.values()]
    facade = Module(
        "events/__init__.py",
        f"QMP events of the QAPI schema {schema_name}: a class per event,\n"
        "decoding by name, and typed waiting on a transport.\n\n"
        "Every event class is importable from here; its code lives in the module\n"
        "named after the schema file that defines the event, imported when the class\n"
        "is first used.\n\n" + header(schema_name),
        [
            "import functools as _functools",
            "import typing as _typing",
            "from collections.abc import AsyncIterator as _AsyncIterator",
            "from collections.abc import Iterator as _Iterator",
            "",
            f"from {RUNTIME}.bindings import events as _events",
            f"from {RUNTIME}.bindings import lazy as _lazy",
            f"from {RUNTIME}.bindings.events import wait_for, wait_for_sync",
            f"from {RUNTIME}.bindings.policy import CompatPolicy as _CompatPolicy",
            f"from {RUNTIME}.qmp.events import NO_TIMESTAMP, Timestamp",
            f"from {RUNTIME}.qmp.events import QMPEvent as _QMPEvent",
            f"from {RUNTIME}.qmp.transport import AsyncTransport as _AsyncTransport",
            f"from {RUNTIME}.qmp.transport import SyncTransport as _SyncTransport",
            "",
            "from ..types import MEMBER_FEATURES as _MEMBER_FEATURES",
        ],
    )
    exports = FacadeExports(locations, list(files), also=FACADE_NAMES)
    facade.body = render(
        "events_facade.py.j2",
        module=facade,
        exports=exports,
        event_classes=[e.name for f in files.values() for e in f.events],
        catalog=_catalog_literal(catalog),
        conditions=dict_literal("EVENT_CONDITIONS: dict[str, object]", conditions),
        deprecated=frozenset_literal("DEPRECATED_EVENTS: frozenset[str]", deprecated),
        features=dict_literal("EVENT_FEATURES: dict[str, list[str]]", features),
        data_features=nested_dict_literal(
            "EVENT_DATA_FEATURES: dict[str, dict[str, list[str]]]", data_features
        ),
    )
    return [facade, *modules]


def _catalog_literal(items: list[Node]) -> Node:
    if not items:
        return "_CATALOG = _events.EventCatalog(__name__, {})"
    table = Group("{", items, "}", literal=True, explode=True)
    return Group("_CATALOG = _events.EventCatalog(", ["__name__", table], ")")


def _render_module(content: _EventsFile, schema_name: str) -> Module:
    imports = content.imports
    imports.module("typing as _typing")
    imports.name(RUNTIME, "codec as _c")
    imports.name(f"{RUNTIME}.bindings.events", "Event as _Event")
    imports.name(f"{RUNTIME}.qmp.events", "NO_TIMESTAMP as _NO_TIMESTAMP")
    imports.name(f"{RUNTIME}.qmp.events", "Timestamp as _Timestamp")
    module = Module(
        f"events/{content.name}.py",
        f"Events of {schema_name}'s module {content.name}.\n\n{header(schema_name)}",
        imports.lines(),
    )
    module.body = render("events_module.py.j2", module=module, events=content.events)
    return module
