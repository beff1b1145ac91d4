"""QMP events as values, and the bounded backlog a client keeps them in."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


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
        stamp = time.time_ns() // 1000
        return cls(
            name, {} if data is None else data, stamp // 1_000_000, stamp % 1_000_000
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


def event_matches(
    event: QMPEvent, name: str, predicate: Callable[[QMPEvent], bool] | None
) -> bool:
    """Whether `event` is what a `wait_for(name, predicate)` is waiting for."""
    return event.name == name and (predicate is None or predicate(event))


class EventBacklog:
    """Events received but not consumed yet, oldest first.

    Bounded so that a program that never reads its events cannot grow without limit:
    when full, the oldest event is dropped and counted in `dropped`.
    """

    def __init__(self, limit: int) -> None:
        self._events: deque[QMPEvent] = deque()
        self._limit = limit
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event: QMPEvent) -> None:
        if len(self._events) >= self._limit:
            self._events.popleft()
            self.dropped += 1
        self._events.append(event)

    def popleft(self) -> QMPEvent:
        return self._events.popleft()

    def take(
        self, name: str, predicate: Callable[[QMPEvent], bool] | None
    ) -> QMPEvent | None:
        """Remove and return the oldest matching event; others stay queued."""
        for index, event in enumerate(self._events):
            if event_matches(event, name, predicate):
                del self._events[index]
                return event
        return None

    def clear(self) -> list[QMPEvent]:
        events = list(self._events)
        self._events.clear()
        return events
