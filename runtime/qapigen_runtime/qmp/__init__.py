"""QMP transport: asyncio and blocking clients, an asyncio server, QEMU's errors.

Every name below is importable from here; the module that defines it is imported on
first use, so a program that only needs the blocking client or the error classes does
not load asyncio and the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..bindings import lazy as _lazy

if TYPE_CHECKING:
    from .address import Address as Address
    from .client import QMPClient as QMPClient
    from .errors import (
        CommandNotFound as CommandNotFound,
    )
    from .errors import (
        DeviceNotActive as DeviceNotActive,
    )
    from .errors import (
        DeviceNotFound as DeviceNotFound,
    )
    from .errors import (
        GenericError as GenericError,
    )
    from .errors import (
        KVMMissingCap as KVMMissingCap,
    )
    from .errors import (
        QMPCommandError as QMPCommandError,
    )
    from .errors import (
        QMPConnectionError as QMPConnectionError,
    )
    from .errors import (
        QMPDisconnectedError as QMPDisconnectedError,
    )
    from .errors import (
        QMPError as QMPError,
    )
    from .errors import (
        QMPMessageTooLargeError as QMPMessageTooLargeError,
    )
    from .errors import (
        QMPNegotiationError as QMPNegotiationError,
    )
    from .errors import (
        QMPProtocolError as QMPProtocolError,
    )
    from .errors import (
        QMPTimeoutError as QMPTimeoutError,
    )
    from .events import QMPEvent as QMPEvent
    from .passed_fds import (
        MAX_FDS_PER_MESSAGE as MAX_FDS_PER_MESSAGE,
    )
    from .passed_fds import (
        take_passed_fd as take_passed_fd,
    )
    from .server import Dispatcher as Dispatcher
    from .server import QMPServer as QMPServer
    from .sync_client import SyncQMPClient as SyncQMPClient
    from .transport import (
        AsyncTransport as AsyncTransport,
    )
    from .transport import (
        SyncTransport as SyncTransport,
    )

_LOCATIONS = {
    "Address": "address",
    "AsyncTransport": "transport",
    "CommandNotFound": "errors",
    "DeviceNotActive": "errors",
    "DeviceNotFound": "errors",
    "Dispatcher": "server",
    "GenericError": "errors",
    "KVMMissingCap": "errors",
    "MAX_FDS_PER_MESSAGE": "passed_fds",
    "QMPClient": "client",
    "QMPCommandError": "errors",
    "QMPConnectionError": "errors",
    "QMPDisconnectedError": "errors",
    "QMPError": "errors",
    "QMPEvent": "events",
    "QMPMessageTooLargeError": "errors",
    "QMPNegotiationError": "errors",
    "QMPProtocolError": "errors",
    "QMPServer": "server",
    "QMPTimeoutError": "errors",
    "SyncQMPClient": "sync_client",
    "SyncTransport": "transport",
    "take_passed_fd": "passed_fds",
}

__all__ = [
    "MAX_FDS_PER_MESSAGE",
    "Address",
    "AsyncTransport",
    "CommandNotFound",
    "DeviceNotActive",
    "DeviceNotFound",
    "Dispatcher",
    "GenericError",
    "KVMMissingCap",
    "QMPClient",
    "QMPCommandError",
    "QMPConnectionError",
    "QMPDisconnectedError",
    "QMPError",
    "QMPEvent",
    "QMPMessageTooLargeError",
    "QMPNegotiationError",
    "QMPProtocolError",
    "QMPServer",
    "QMPTimeoutError",
    "SyncQMPClient",
    "SyncTransport",
    "take_passed_fd",
]

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        return _lazy.load(__name__, _LOCATIONS, name, globals())

    def __dir__() -> list[str]:
        return _lazy.names(_LOCATIONS, globals())
