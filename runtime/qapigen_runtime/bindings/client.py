"""The base classes of generated clients: a typed method per command over a transport.

Generated `AsyncClient` and `SyncClient` classes derive from these and add one method
per command that builds the wire arguments, calls `execute` and decodes the reply.
"""

from __future__ import annotations

from ..qmp.errors import QMPError
from ..qmp.transport import (
    AsyncCommandTransport,
    AsyncNoReplyTransport,
    SyncCommandTransport,
    SyncNoReplyTransport,
)


def _cannot_skip_reply(name: str, transport: object) -> QMPError:
    return QMPError(
        f"{name} gets no reply when it succeeds, and {type(transport).__name__}"
        " cannot send a command without waiting for one (the guest agent's"
        " clients in qapigen_runtime.qga can)"
    )


class AsyncClientBase:
    """Typed commands over an asynchronous QMP transport (replies are decoded
    leniently: what a newer QEMU adds is kept)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: AsyncCommandTransport) -> None:
        self._transport = transport

    async def _execute_no_reply(
        self, name: str, arguments: dict[str, object] | None
    ) -> None:
        """Send a ``'success-response': false`` command without waiting."""
        transport = self._transport
        if not isinstance(transport, AsyncNoReplyTransport):
            raise _cannot_skip_reply(name, transport)
        await transport.execute_no_reply(name, arguments)


class SyncClientBase:
    """Typed commands over a blocking QMP transport (replies are decoded leniently)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: SyncCommandTransport) -> None:
        self._transport = transport

    def _execute_no_reply(self, name: str, arguments: dict[str, object] | None) -> None:
        """Send a ``'success-response': false`` command without waiting."""
        transport = self._transport
        if not isinstance(transport, SyncNoReplyTransport):
            raise _cannot_skip_reply(name, transport)
        transport.execute_no_reply(name, arguments)
