"""The shell's connection: an asyncio QMP client on a loop of its own thread.

The main thread reads input (readline blocks it); the client's thread keeps reading
the socket meanwhile, so events are shown as they come, not only when the next
command is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import TypeVar

from qapigen_runtime.qga.client import QGAClient
from qapigen_runtime.qmp.address import Address
from qapigen_runtime.qmp.client import QMPClient
from qapigen_runtime.qmp.events import QMPEvent

T = TypeVar("T")

# A command typed in a shell may run long (a migration, a dump): no client timeout.
COMMAND_TIMEOUT = None


class Connection:
    """One QMP connection (or, `guest_agent`, one to qemu-ga, which has no greeting
    and no events) served by a background event loop; `on_event` is called (in that
    loop's thread) with each event as it arrives."""

    def __init__(
        self, on_event: Callable[[QMPEvent], None], guest_agent: bool = False
    ) -> None:
        self._on_event = on_event
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="qapigen-shell-qmp", daemon=True
        )
        self._thread.start()
        self._client: QMPClient | QGAClient = (
            QGAClient(command_timeout=COMMAND_TIMEOUT)
            if guest_agent
            else QMPClient(command_timeout=COMMAND_TIMEOUT)
        )
        self._watch: concurrent.futures.Future[None] | None = None

    def _run(self, coroutine: Coroutine[object, object, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def connect(self, address: Address, timeout: float) -> None:
        """Connect and negotiate (QMPConnectionError on failure); start showing
        events."""
        self._run(self._client.connect(address, timeout=timeout))
        if isinstance(self._client, QMPClient):
            events = self._events(self._client)
            self._watch = asyncio.run_coroutine_threadsafe(events, self._loop)

    async def _events(self, client: QMPClient) -> None:
        async for event in client.events():
            self._on_event(event)

    def execute(self, name: str, arguments: dict[str, object] | None) -> object:
        """Run a command: its return value, or QMPCommandError/QMPConnectionError."""
        return self._run(self._client.execute(name, arguments or None))

    def close(self) -> None:
        try:
            self._run(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
