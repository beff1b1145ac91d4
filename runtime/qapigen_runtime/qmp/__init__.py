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
from .passed_fds import MAX_FDS_PER_MESSAGE, take_passed_fd
from .server import Dispatcher, QMPServer
from .sync_client import SyncQMPClient
from .transport import AsyncTransport, SyncTransport

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
