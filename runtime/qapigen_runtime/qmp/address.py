"""QMP socket addresses: one syntax for every tool, and the socket behind one.

Every command of this project that takes a QMP address (qapigen-migrate and
qapigen-compare) reads it with `parse_address`, so they accept the same
spellings and refuse bad ones with the same words:

=================  ===============================================================
``unix:PATH``      a unix socket
``PATH``           a unix socket too: any text that is not ``HOST:PORT``
``tcp:HOST:PORT``  TCP; HOST is a name, an IPv4 address or an IPv6 one in brackets
``HOST:PORT``      the same without the prefix (``localhost:4444``, ``[::1]:4444``)
=================  ===============================================================

The messages of a connection that fails before QMP starts are made here too, so that
both clients name the address and what they waited for in the same way.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator

from .errors import QMPDisconnectedError, QMPTimeoutError

Address = str | tuple[str, int]
"""A unix socket path, or a TCP (host, port)."""

# HOST:PORT with HOST a name or IPv4 address (no colon, no slash) or [IPv6]
_HOST_PORT = re.compile(r"(\[[^\]/]*\]|[^:/\[\]]+):(\d+)")
_PORTS = range(1, 65536)
_SHOWN_BYTES = 40  # of a peer that is not QMP, quoted in the message


SYNTAX = "unix:PATH, a socket path, tcp:HOST:PORT or HOST:PORT (IPv6 as [HOST])"
"""The accepted spellings, for command-line help."""


class AddressError(ValueError):
    """A QMP address that cannot be read; the text quotes it and says why."""


def parse_address(text: str) -> Address:
    """`text` in the syntax above; AddressError when it cannot be one."""
    if not text:
        raise AddressError("the QMP address is empty")
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path:
            raise AddressError(f"QMP address {text!r}: no socket path after 'unix:'")
        return path
    tcp = text.startswith("tcp:")
    spec = text.removeprefix("tcp:")
    match = _HOST_PORT.fullmatch(spec)
    if match is None:
        if tcp:
            raise AddressError(
                f"QMP address {text!r}: expected tcp:HOST:PORT (an IPv6 host in "
                "brackets: tcp:[::1]:4444)"
            )
        return text  # a socket path
    host, port = match.group(1), int(match.group(2))
    if host == "[]":
        raise AddressError(f"QMP address {text!r}: no host inside the brackets")
    if port not in _PORTS:
        raise AddressError(
            f"QMP address {text!r}: port {port} is out of range (1 to 65535)"
        )
    return (host.removeprefix("[").removesuffix("]"), port)


def describe(address: Address) -> str:
    """The address as `parse_address` reads it back (QEMU's ``-qmp`` notation)."""
    if isinstance(address, str):
        return f"unix:{address}"
    host, port = address
    return f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"


def timed_out(address: Address, waiting_for: str, timeout: float | None) -> str:
    """A connect that ran out of time, naming the stage it was in: ``waiting_for``
    is "the connection", "the QMP greeting" or "the reply to qmp_capabilities"."""
    after = "" if timeout is None else f" after {timeout:.3g} s"
    return f"timed out{after} waiting for {waiting_for} from {describe(address)}"


@contextlib.contextmanager
def connecting(address: Address, timeout: float | None) -> Iterator[None]:
    """Around opening a connection (no protocol yet): running out of `timeout`
    becomes QMPTimeoutError naming the address, any other OS error
    QMPDisconnectedError naming it too."""
    try:
        yield
    except TimeoutError:
        raise QMPTimeoutError(timed_out(address, "the connection", timeout)) from None
    except OSError as error:
        raise QMPDisconnectedError(
            f"cannot connect to {describe(address)}: {error}"
        ) from error


def not_qmp(address: Address, received: bytes | str) -> str:
    """A peer whose first message is not a QMP greeting: what it sent, in short."""
    data = (
        received.encode("utf-8", "replace") if isinstance(received, str) else received
    )
    shown = bytes(data[:_SHOWN_BYTES])
    more = "..." if len(data) > _SHOWN_BYTES else ""
    return (
        f"{describe(address)} is not a QMP server: it sent {shown!r}{more} where a "
        "QMP greeting belongs"
    )


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
