"""The `events` module: a typed class per event and a decoder by event name."""

from __future__ import annotations

from .. import naming
from ..layout import Node
from ..render import header, py_string, render
from ..schema import Event, Schema
from .common import Imports, TypeMapper, TypeNames, is_deprecated, members_of
from .docs import doc_text
from .literals import dict_literal, json_node, keyed
from .view import Module, Struct


def event_view(
    event: Event, mapper: TypeMapper, scope: naming.NameScope
) -> tuple[Struct, object]:
    cls = scope.add(event.name, naming.event_class_name(event.name), event.info)
    members = []
    if event.arg_type is not None:
        where = f"the data of event '{event.name}'"
        members = members_of(mapper, event.arg_type.members, event.doc, where)
    doc = doc_text(
        event.doc,
        members=[(m.attr, m.doc) for m in members],
        deprecated=is_deprecated(event.features),
        condition=event.ifcond.to_json(),
        fallback=f"QMP event {event.name}.",
    )
    struct = Struct(cls, event.name, members, doc, event_name=event.name)
    return struct, event.ifcond.to_json()


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
        "QMPEvent",
    ):
        scope.reserve(taken, "the events module")
    views = [event_view(event, mapper, scope) for event in schema.events()]
    events = [struct for struct, _ in views]
    imports.name("qapigen_runtime", "codec as _c")
    imports.name("typing", "TypeAlias")
    imports.name("typing", "ClassVar")
    imports.module("dataclasses")
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
    )
    return module
