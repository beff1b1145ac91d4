"""QMP events as values, when QEMU stamped them, and the backlog a client keeps them in."""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """When the server stamped an event, exactly as QMP sends it: whole seconds and
    microseconds since the Unix epoch (UTC wall clock).

    Kept as two integers rather than a float so that an event passed on (by a proxy,
    or a server re-emitting it) carries the very stamp QEMU wrote. Timestamps order
    chronologically; `float()` gives POSIX seconds, `datetime` an aware UTC datetime,
    and subtracting two gives the exact `datetime.timedelta` between them.

    `NO_TIMESTAMP` (both fields -1, what QMPEvent holds when a server sent no stamp)
    marks an event that was never stamped, such as one a program builds itself.
    """

    seconds: int
    microseconds: int

    @classmethod
    def now(cls) -> Timestamp:
        """The current wall-clock time, as a server stamps an event it sends."""
        seconds, microseconds = divmod(time.time_ns() // 1000, 1_000_000)
        return cls(seconds, microseconds)

    @property
    def known(self) -> bool:
        """False for `NO_TIMESTAMP` (no stamp was sent or set)."""
        return self.seconds >= 0 and self.microseconds >= 0

    @property
    def datetime(self) -> dt.datetime:
        """The stamp as an aware datetime in UTC."""
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return epoch + dt.timedelta(
            seconds=self.seconds, microseconds=self.microseconds
        )

    def __float__(self) -> float:
        return self.seconds + self.microseconds / 1e6

    def __sub__(self, other: Timestamp) -> dt.timedelta:
        return dt.timedelta(
            seconds=self.seconds - other.seconds,
            microseconds=self.microseconds - other.microseconds,
        )

    def to_wire(self) -> dict[str, object]:
        """The ``timestamp`` member of a QMP event message."""
        return {"seconds": self.seconds, "microseconds": self.microseconds}


NO_TIMESTAMP = Timestamp(-1, -1)
"""The stamp of an event that has none (QMPEvent's -1 convention)."""


@dataclass(frozen=True, slots=True)
class QMPEvent:
    """One asynchronous event: its name, its ``data`` member and its timestamp."""

    name: str
    data: dict[str, object] = field(default_factory=dict)
    seconds: int = -1
    microseconds: int = -1

    @classmethod
    def now(cls, name: str, data: dict[str, object] | None = None) -> QMPEvent:
        """An event stamped with the current wall-clock time, as a server sends it."""
        stamp = Timestamp.now()
        return cls(
            name, {} if data is None else data, stamp.seconds, stamp.microseconds
        )

    @classmethod
    def from_wire(cls, message: dict[str, object]) -> QMPEvent:
        """Decode an event message; odd timestamps or data are tolerated, not fatal."""
        name = message["event"]
        data = message.get("data")
        stamp = message.get("timestamp")
        seconds = microseconds = -1
        if isinstance(stamp, dict):
            s, us = stamp.get("seconds"), stamp.get("microseconds")
            if isinstance(s, int) and isinstance(us, int):
                seconds, microseconds = s, us
        return cls(
            str(name), data if isinstance(data, dict) else {}, seconds, microseconds
        )

    def to_wire(self) -> dict[str, object]:
        """The message for this event, members in the order QEMU writes them."""
        message: dict[str, object] = {
            "timestamp": {"seconds": self.seconds, "microseconds": self.microseconds},
            "event": self.name,
        }
        if self.data:
            message["data"] = self.data
        return message

    @property
    def timestamp(self) -> float:
        """Seconds since the epoch (negative when the server sent no timestamp)."""
        return self.seconds + self.microseconds / 1e6

    @property
    def stamp(self) -> Timestamp:
        """The timestamp as a `Timestamp` (`NO_TIMESTAMP` when the server sent none)."""
        if self.seconds < 0 or self.microseconds < 0:
            return NO_TIMESTAMP
        return Timestamp(self.seconds, self.microseconds)

    @classmethod
    def stamped(cls, name: str, data: dict[str, object], stamp: Timestamp) -> QMPEvent:
        """An event carrying `stamp`, or stamped now when `stamp` is not `known`."""
        if not stamp.known:
            stamp = Timestamp.now()
        return cls(name, data, stamp.seconds, stamp.microseconds)


def event_matches(
    event: QMPEvent, name: str, predicate: Callable[[QMPEvent], bool] | None
) -> bool:
    """Whether `event` is what a `wait_for(name, predicate)` is waiting for."""
    return event.name == name and (predicate is None or predicate(event))


class EventBacklog:
    """Events received but not consumed yet, oldest first.

    Bounded so that a program that never reads its events cannot grow without limit:
    by count (`limit`) and by the bytes the events took on the wire (`limit_bytes`,
    the newest event is kept even when it alone is larger); the oldest events are
    dropped and counted in `dropped`.
    """

    def __init__(self, limit: int, limit_bytes: int | None = None) -> None:
        self._events: deque[tuple[QMPEvent, int]] = deque()
        self._limit = limit
        self._limit_bytes = limit_bytes
        self._bytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._events)

    @property
    def size(self) -> int:
        """The bytes the events kept took on the wire."""
        return self._bytes

    def append(self, event: QMPEvent, size: int = 0) -> None:
        """Keep `event`, which took `size` bytes on the wire."""
        self._events.append((event, size))
        self._bytes += size
        limit_bytes = self._limit_bytes
        while len(self._events) > self._limit or (
            limit_bytes is not None
            and self._bytes > limit_bytes
            and len(self._events) > 1
        ):
            _dropped, dropped_size = self._events.popleft()
            self._bytes -= dropped_size
            self.dropped += 1

    def popleft(self) -> QMPEvent:
        event, size = self._events.popleft()
        self._bytes -= size
        return event

    def take(
        self, name: str, predicate: Callable[[QMPEvent], bool] | None
    ) -> QMPEvent | None:
        """Remove and return the oldest matching event; others stay queued."""
        for index, (event, size) in enumerate(self._events):
            if event_matches(event, name, predicate):
                del self._events[index]
                self._bytes -= size
                return event
        return None

    def clear(self) -> list[QMPEvent]:
        events = [event for event, _size in self._events]
        self._events.clear()
        self._bytes = 0
        return events
