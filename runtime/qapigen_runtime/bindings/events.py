"""Typed events: the base class of generated event classes, a package's catalog of
them (event name -> class, loaded on first use), what a server sends of them under
QEMU's `-compat` output policies, and typed waiting on a transport."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from .. import codec as _c
from ..codec import Decoder
from ..qmp.events import NO_TIMESTAMP, QMPEvent, Timestamp
from ..qmp.transport import AsyncTransport, SyncTransport
from .policy import CompatPolicy
from .struct import Struct


class Event(Struct):
    """A QMP event of a schema: its data members as attributes, the event's `NAME`,
    and the `timestamp` its server stamped it with (`NO_TIMESTAMP` for one a program
    built itself), which is left out of equality."""

    __slots__ = ("timestamp",)
    NAME: ClassVar[str] = ""
    DEPRECATED: ClassVar[bool] = False
    UNSTABLE: ClassVar[bool] = False
    _UNCOMPARED: ClassVar[tuple[str, ...]] = ("timestamp",)
    timestamp: Timestamp

    if TYPE_CHECKING:  # every generated event class defines them

        @classmethod
        def from_wire(
            cls, value: object, path: str = "", strict: bool = False
        ) -> Event: ...


E = TypeVar("E", bound=Event)


class EventCatalog:
    """The events of one generated package: event name -> (module, class name) in the
    package's `events` facade, imported when an event of that module is first met."""

    def __init__(self, package: str, locations: Mapping[str, tuple[str, str]]) -> None:
        self._package = package
        self._locations = locations
        self._decoders: dict[str, Decoder[Event]] = {}

    def names(self) -> list[str]:
        """Every event name of the schema."""
        return list(self._locations)

    def event_class(self, name: str) -> type[Event] | None:
        """The class of QMP event `name`, or None for an event the schema lacks."""
        location = self._locations.get(name)
        if location is None:
            return None
        module, class_name = location
        cls: type[Event] = getattr(
            importlib.import_module(f"{self._package}.{module}"), class_name
        )
        return cls

    def decode(
        self,
        name: str,
        data: object = None,
        strict: bool = False,
        *,
        timestamp: Timestamp = NO_TIMESTAMP,
    ) -> Event | None:
        """The typed event for QMP event `name` with its `data` member (None when the
        event has none) and the `timestamp` of its message, or None for an event the
        schema does not define (a newer QEMU's)."""
        decode = self._decoders.get(name)
        if decode is None:
            cls = self.event_class(name)
            if cls is None:
                return None
            decode = self._decoders[name] = cls.from_wire
        event = decode({} if data is None else data, "", strict)
        event.timestamp = timestamp
        return event

    def from_qmp_event(self, raw: QMPEvent, strict: bool = False) -> Event | None:
        """The typed form of a received event, stamped as the server stamped it."""
        return self.decode(raw.name, raw.data, strict, timestamp=raw.stamp)

    def union(self) -> object:
        """The union of every event class (imports them all): the run-time value of
        a facade's `Event` alias."""
        classes = [self.event_class(name) for name in self._locations]
        union: object = None
        for cls in classes:
            union = cls if union is None else union | cls  # type: ignore[operator]
        return union

    async def events(self, transport: AsyncTransport) -> AsyncIterator[Event]:
        """The events the transport receives, decoded; events the schema does not
        define (a newer QEMU's) are skipped."""
        async for raw in transport.events():
            event = self.from_qmp_event(raw)
            if event is not None:
                yield event

    def events_sync(
        self, transport: SyncTransport, timeout: float | None = 0.0
    ) -> Iterator[Event]:
        """`events` over a blocking transport: the events received so far, then new
        ones until none comes for `timeout` seconds (None: wait for ever)."""
        for raw in transport.events(timeout):
            event = self.from_qmp_event(raw)
            if event is not None:
                yield event


def to_qmp_event(event: Event) -> QMPEvent:
    """The QMP message of `event`, for a server to send: its data in QEMU's envelope,
    stamped with its `timestamp`, or now when it has none (an event built here).
    Everything is sent: `EventOutput.message` applies a `-compat` output policy."""
    return QMPEvent.stamped(event.NAME, event.to_wire(), event.timestamp)


@dataclass(frozen=True)
class EventTables:
    """What a generated package says about the special features ('deprecated',
    'unstable') of its events and of what their data holds."""

    event_features: Mapping[str, Sequence[str]]
    """The special features of each event that has any, by event name."""
    data_member_features: Mapping[str, Mapping[str, Sequence[str]]]
    """The special features of the data members of events, by event name."""
    member_features: Mapping[str, Mapping[str, Sequence[str]]]
    """The special features of the members of the package's types, by class: the
    table its command dispatcher hides reply members with."""


class EventOutput:
    """What a server sends of a package's events under a `-compat` policy, as QEMU's
    generated event senders do: an event with a feature the output policy hides is
    not sent at all, and members with such a feature are left out of event data at
    any depth (as from replies), even required ones."""

    def __init__(self, tables: EventTables, policy: CompatPolicy | None = None) -> None:
        self.policy = policy or CompatPolicy()
        self.hidden_events = self.policy.hidden(tables.event_features)
        self._hidden_data = self.policy.hidden_members(tables.data_member_features)
        self._hidden_types = self.policy.hidden_members(tables.member_features) or None

    def hides(self, name: str) -> bool:
        """Whether event `name` is not sent at all."""
        return name in self.hidden_events

    def data(self, event: Event) -> dict[str, object] | None:
        """The wire form of `event`'s data as the policy lets it out, or None when
        the policy hides the whole event."""
        if event.NAME in self.hidden_events:
            return None
        hiding = _c.HIDDEN.set(self._hidden_types)
        try:
            wire = event.to_wire()
        finally:
            _c.HIDDEN.reset(hiding)
        for member in self._hidden_data.get(event.NAME, ()):
            wire.pop(member, None)
        return wire

    def message(self, event: Event) -> QMPEvent | None:
        """`to_qmp_event` under the policy: None when it hides the event."""
        wire = self.data(event)
        if wire is None:
            return None
        return QMPEvent.stamped(event.NAME, wire, event.timestamp)


def _typed(event_type: type[E], raw: QMPEvent) -> E:
    event = event_type.from_wire(raw.data)
    if not isinstance(event, event_type):
        raise TypeError(f"{event_type.__name__}.from_wire returned {event!r}")
    event.timestamp = raw.stamp
    return event


def _warn_if_deprecated(event_type: type[Event]) -> None:
    if event_type.DEPRECATED:
        warnings.warn(
            f"QMP event '{event_type.NAME}' is deprecated",
            DeprecationWarning,
            stacklevel=3,  # the line that waits for it
        )


async def wait_for(
    transport: AsyncTransport,
    event_type: type[E],
    predicate: Callable[[E], bool] | None = None,
    timeout: float | None = None,
) -> E:
    """Wait for (and consume) the next `event_type` event that `predicate` accepts."""
    _warn_if_deprecated(event_type)
    accepts = _raw_predicate(event_type, predicate)
    return _typed(
        event_type, await transport.wait_for(event_type.NAME, accepts, timeout)
    )


def wait_for_sync(
    transport: SyncTransport,
    event_type: type[E],
    predicate: Callable[[E], bool] | None = None,
    timeout: float | None = None,
) -> E:
    """`wait_for` over a blocking transport."""
    _warn_if_deprecated(event_type)
    accepts = _raw_predicate(event_type, predicate)
    return _typed(event_type, transport.wait_for(event_type.NAME, accepts, timeout))


def _raw_predicate(
    event_type: type[E], predicate: Callable[[E], bool] | None
) -> Callable[[QMPEvent], bool]:
    """`predicate` over the typed event, as the transports take it: over raw events."""

    def accepts(raw: QMPEvent) -> bool:
        return predicate is None or predicate(_typed(event_type, raw))

    return accepts
