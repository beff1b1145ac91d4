"""The guest agent's transport: asyncio and blocking clients of ``qemu-ga``.

    from qapigen_qga.commands import SyncClient
    from qapigen_runtime.qga import SyncQGAClient

    with SyncQGAClient.connected("/run/qga.sock") as agent:
        qga = SyncClient(agent)
        qga.guest_ping()

`QGAClient` (asyncio) and `SyncQGAClient` (blocking) carry the generated clients of
any guest-agent schema (5.2, 7.2, 10.0) as QMP's clients carry QMP's: `execute(name,
arguments)` returns the ``return`` value or raises the errors of
`qapigen_runtime.qmp.errors` (QMPCommandError and its subclasses for the agent's
error replies, QMPConnectionError and its subclasses for the stream). `helpers` adds
typed guest-exec, guest files and system information over a generated client.

Every name below is importable from here; the module that defines it is imported on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..bindings import lazy as _lazy

if TYPE_CHECKING:
    from .client import QGAClient as QGAClient
    from .sync_client import SyncQGAClient as SyncQGAClient

_LOCATIONS = {"QGAClient": "client", "SyncQGAClient": "sync_client"}

__all__ = ["QGAClient", "SyncQGAClient"]

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        return _lazy.load(__name__, _LOCATIONS, name, globals())

    def __dir__() -> list[str]:
        return _lazy.names(_LOCATIONS, globals())
