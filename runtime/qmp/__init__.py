"""QMP transport: asyncio and blocking clients, an asyncio server, QEMU's errors."""

from .address import Address
from .client import QMPClient
from .errors import (
    CommandNotFound,
    DeviceNotActive,
    DeviceNotFound,
    GenericError,
    KVMMissingCap,
    QMPCommandError,
    QMPConnectionError,
    QMPDisconnectedError,
    QMPError,
    QMPMessageTooLargeError,
    QMPNegotiationError,
    QMPProtocolError,
    QMPTimeoutError,
)
from .events import QMPEvent
from .server import Dispatcher, QMPServer
from .sync_client import SyncQMPClient
from .transport import AsyncTransport, SyncTransport

__all__ = [
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
]
