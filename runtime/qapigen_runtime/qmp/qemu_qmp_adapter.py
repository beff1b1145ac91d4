"""Carry the typed layer over `qemu.qmp`'s QMPClient, for programs that already use it.

`qemu.qmp` is imported only when an adapter is used, so the runtime does not depend
on it. Its ExecuteError becomes this runtime's QMPCommandError (same class and
description), its disconnect errors become QMPDisconnectedError.

What the adapter carries is what qemu.qmp reads: qemu.qmp takes one message per
line, so it cannot talk to a QEMU started with ``-qmp-pretty`` (its connect fails
with "Did not understand Greeting"); this runtime's own clients can.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .errors import QMPDisconnectedError, QMPTimeoutError, command_error
from .events import EventBacklog, QMPEvent
from .transport import EventPredicate


def _qemu_qmp() -> Any:
    try:
        return importlib.import_module("qemu.qmp")
    except ImportError as error:
        raise ImportError(
            "the qemu.qmp adapter needs the 'qemu.qmp' package (pip install qemu.qmp)"
        ) from error


class QemuQmpTransport:
    """An `AsyncTransport` over a connected ``qemu.qmp.QMPClient``.

    Events are read from the client's default listener (``client.events``); the ones
    `wait_for` skips stay queued here for `events()`.
    """

    def __init__(self, client: Any, event_backlog: int = 4096) -> None:
        module = _qemu_qmp()
        self._client = client
        self._execute_error: type[Exception] = module.ExecuteError
        self._interrupted: type[Exception] = module.ExecInterruptedError
        self._state_error: type[Exception] = module.StateError
        self._backlog = EventBacklog(event_backlog)

    @property
    def client(self) -> Any:
        """The wrapped ``qemu.qmp.QMPClient``."""
        return self._client

    async def execute(
        self,
        name: str,
        arguments: Mapping[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
    ) -> object:
        try:
            for fd in fds:
                self._client.send_fd_scm(fd)
            return await self._client.execute(name, arguments, oob=oob)
        except self._execute_error as error:
            raise command_error(
                str(getattr(error, "error_class", "GenericError")), str(error)
            ) from None
        except (self._interrupted, self._state_error, OSError) as error:
            raise QMPDisconnectedError(f"{name}: {error}") from error

    async def _next_event(self) -> QMPEvent:
        message = await self._client.events.get()
        return QMPEvent.from_wire(dict(message))

    async def events(self) -> AsyncIterator[QMPEvent]:
        while True:
            if len(self._backlog):
                yield self._backlog.popleft()
            else:
                yield await self._next_event()

    def clear_events(self) -> list[QMPEvent]:
        """Remove and return the queued events (this adapter's and the listener's)."""
        events = self._backlog.clear()
        for message in self._client.events.clear():
            events.append(QMPEvent.from_wire(dict(message)))
        return events

    async def wait_for(
        self,
        name: str,
        predicate: EventPredicate | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        event = self._backlog.take(name, predicate)
        if event is not None:
            return event
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await self._next_event()
                    if event.name == name and (predicate is None or predicate(event)):
                        return event
                    self._backlog.append(event)
        except TimeoutError:
            raise QMPTimeoutError(f"no {name} event within {timeout} s") from None
