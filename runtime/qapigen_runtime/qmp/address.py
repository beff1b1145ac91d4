"""QMP socket addresses: a unix socket path or a TCP (host, port)."""

from __future__ import annotations

import socket

Address = str | tuple[str, int]
"""A unix socket path, or a TCP (host, port)."""


def describe(address: Address) -> str:
    """The address in QEMU's ``-qmp`` notation, for messages."""
    if isinstance(address, str):
        return f"unix:{address}"
    return f"tcp:{address[0]}:{address[1]}"


def open_socket(address: Address, timeout: float | None) -> socket.socket:
    """A connected blocking socket (TCP_NODELAY for TCP: QMP is request/reply)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
