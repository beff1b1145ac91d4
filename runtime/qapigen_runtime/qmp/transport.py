"""What the typed layer needs from a QMP connection.

Generated clients call `execute` with wire names and JSON-ready arguments and get the
wire ``return`` value back (or a `QMPCommandError`); they read events as `QMPEvent`.
Any connection that offers these methods can carry them: this runtime's own clients,
the `qemu.qmp` adapter, or a test double.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .events import QMPEvent

EventPredicate = Callable[["QMPEvent"], bool]
"""Selects the event `wait_for` waits for (besides its name)."""


class AsyncTransport(Protocol):
    """An asynchronous QMP connection, already negotiated."""

    async def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
    ) -> object:
        """Run command `name`; return its ``return`` value or raise QMPCommandError.

        `oob` sends it with ``exec-oob``; `fds` are passed along with SCM_RIGHTS
        (unix sockets only), for commands such as ``getfd``.
        """
        ...

    def events(self) -> AsyncIterator[QMPEvent]:
        """Iterate over the events received (and not yet consumed), in order."""
        ...

    async def wait_for(
        self,
        name: str,
        predicate: EventPredicate | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        """Consume and return the first event `name` that `predicate` accepts."""
        ...

    def clear_events(self) -> list[QMPEvent]:
        """Remove and return the events received and not consumed yet."""
        ...


class SyncTransport(Protocol):
    """A blocking QMP connection, already negotiated."""

    def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
    ) -> object:
        """Run command `name`; return its ``return`` value or raise QMPCommandError."""
        ...

    def events(self, timeout: float | None = 0.0) -> Iterator[QMPEvent]:
        """Iterate over events; waits up to `timeout` seconds for each new one."""
        ...

    def wait_for(
        self,
        name: str,
        predicate: EventPredicate | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        """Consume and return the first event `name` that `predicate` accepts."""
        ...

    def clear_events(self) -> list[QMPEvent]:
        """Remove and return the events received and not consumed yet."""
        ...
