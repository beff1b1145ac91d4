"""The base classes of generated clients: a typed method per command over a transport.

Generated `AsyncClient` and `SyncClient` classes derive from these and add one method
per command that builds the wire arguments, calls `execute` and decodes the reply.
"""

from __future__ import annotations

from ..qmp.transport import AsyncTransport, SyncTransport


class AsyncClientBase:
    """Typed commands over an asynchronous QMP transport (replies are decoded
    leniently: what a newer QEMU adds is kept)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport


class SyncClientBase:
    """Typed commands over a blocking QMP transport (replies are decoded leniently)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport
