"""The `events` module: a typed class per event (its data members plus the time the
server stamped it), decoders by event name, and typed waiting on a transport."""

from __future__ import annotations

from .. import naming
from ..layout import Node
from ..render import header, py_string, render
from ..schema import Event, Schema
from .common import Imports, TypeMapper, TypeNames, is_deprecated, members_of
from .docs import doc_text
from .literals import dict_literal, frozenset_literal, json_node, keyed
from .view import Module, Struct


def event_view(
    event: Event, mapper: TypeMapper, scope: naming.NameScope
) -> tuple[Struct, object]:
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
    struct = Struct(
        cls,
        event.name,
        members,
        doc,
        event_name=event.name,
        deprecated=is_deprecated(event.features),
    )
    return struct, event.ifcond.to_json()


_TIMESTAMP_DOC = "the server's stamp (NO_TIMESTAMP: built here, not received)"


def generate_events(schema: Schema, names: TypeNames, schema_name: str) -> Module:
    imports = Imports()
    mapper = TypeMapper(names, imports, in_types=False, decodes_members=True)
    # Event classes live beside the type names they import: keep them apart.
    scope = naming.NameScope("the generated events module")
    for qapi_name, taken in names.classes.items():
        scope.reserve(taken, f"the class of type '{qapi_name}'")
    for taken in (
        "Event",
        "EVENT_DECODERS",
        "EVENT_CONDITIONS",
        "decode_event",
        "wait_for",
        "wait_for_sync",
        "typed_events",
        "typed_events_sync",
        "from_qmp_event",
        "to_qmp_event",
        "DEPRECATED_EVENTS",
        "QMPEvent",
        "Timestamp",
        "NO_TIMESTAMP",
        "warnings",
    ):
        scope.reserve(taken, "the events module")
    views = [event_view(event, mapper, scope) for event in schema.events()]
    events = [struct for struct, _ in views]
    imports.name("qapigen_runtime", "codec as _c")
    imports.name("typing", "TypeAlias")
    imports.name("typing", "ClassVar")
    imports.module("dataclasses")
    imports.name("qapigen_runtime.qmp.events", "Timestamp")
    imports.name("qapigen_runtime.qmp.events", "NO_TIMESTAMP")
    if events:
        imports.name("typing", "TypeVar")
        imports.name("collections.abc", "AsyncIterator")
        imports.name("collections.abc", "Iterator")
        imports.name("collections.abc", "Callable")
        imports.name("qapigen_runtime.qmp.events", "QMPEvent")
        imports.name("qapigen_runtime.qmp.transport", "AsyncTransport")
        imports.name("qapigen_runtime.qmp.transport", "SyncTransport")
    decoders: list[Node] = [
        f"{py_string(e.qapi_name)}: {e.name}.from_wire" for e in events
    ]
    conditions = [
        keyed(struct.qapi_name, json_node(cond)) for struct, cond in views if cond
    ]
    deprecated: list[Node] = [py_string(e.qapi_name) for e in events if e.deprecated]
    if deprecated:
        imports.module("warnings")
    module = Module(
        "events.py",
        f"QMP events of the QAPI schema {schema_name}.\n\n{header(schema_name)}",
        imports.lines(),
    )
    module.body = render(
        "events.py.j2",
        module=module,
        events=events,
        alias=[e.name for e in events] or ["None"],
        decoders=dict_literal("EVENT_DECODERS: dict[str, _c.Decoder[Event]]", decoders),
        conditions=dict_literal("EVENT_CONDITIONS: dict[str, object]", conditions),
        deprecated=frozenset_literal("DEPRECATED_EVENTS: frozenset[str]", deprecated),
        deprecated_events=bool(deprecated),
    )
    return module
