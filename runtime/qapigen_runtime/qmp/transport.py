"""What the typed layer needs from a QMP connection.

Generated clients call `execute` with wire names and JSON-ready arguments and get the
wire ``return`` value back (or a `QMPCommandError`); they read events as `QMPEvent`.
Any connection that offers these methods can carry them: this runtime's own clients,
the `qemu.qmp` adapter, the guest agent's clients (`qapigen_runtime.qga`: commands
only, the agent sends no events), or a test double.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .events import QMPEvent

EventPredicate = Callable[["QMPEvent"], bool]
"""Selects the event `wait_for` waits for (besides its name)."""


class AsyncCommandTransport(Protocol):
    """What a generated `AsyncClient` needs: commands (events are `AsyncTransport`'s)."""

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


class AsyncTransport(AsyncCommandTransport, Protocol):
    """An asynchronous QMP connection, already negotiated."""

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


class SyncCommandTransport(Protocol):
    """What a generated `SyncClient` needs: commands (events are `SyncTransport`'s)."""

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


class SyncTransport(SyncCommandTransport, Protocol):
    """A blocking QMP connection, already negotiated."""

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


@runtime_checkable
class AsyncNoReplyTransport(Protocol):
    """A connection that can send a command without waiting for a reply: what a
    generated client needs for a ``'success-response': false`` command (the guest
    agent's ``guest-shutdown``, which answers only when it fails)."""

    async def execute_no_reply(
        self, name: str, arguments: dict[str, object] | None = None
    ) -> None:
        """Send command `name` and return once it is sent."""
        ...


@runtime_checkable
class SyncNoReplyTransport(Protocol):
    """The blocking `AsyncNoReplyTransport`."""

    def execute_no_reply(
        self, name: str, arguments: dict[str, object] | None = None
    ) -> None:
        """Send command `name` and return once it is sent."""
        ...
