"""What both QMP clients share: their defaults and how a request is written and a
reply's id read.

Kept apart from the asyncio client so that the blocking client (and a program that
only uses it) does not import asyncio.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Final, Literal

from .errors import QMPProtocolError

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""Largest message accepted from the server (a query-qmp-schema reply is ~200 KiB)."""

DEFAULT_EVENT_BACKLOG = 4096
"""Unconsumed events kept per client before the oldest are dropped."""

DEFAULT_EVENT_BACKLOG_BYTES = 16 * 1024 * 1024
"""Bytes (on the wire) of unconsumed events kept before the oldest are dropped."""

DEFAULT_COMMAND_TIMEOUT = 60.0
"""Seconds `execute` waits for a reply unless told otherwise (None: for ever)."""


class ClientDefault(enum.Enum):
    TIMEOUT = "the client's command_timeout"


CLIENT_TIMEOUT: Final = ClientDefault.TIMEOUT
"""`execute`'s default timeout: the client's `command_timeout`."""

Timeout = float | None | Literal[ClientDefault.TIMEOUT]
"""A timeout in seconds, None for none, or CLIENT_TIMEOUT."""

_encode = json.JSONEncoder(separators=(",", ":")).encode


def bare_request(name: str) -> bytes:
    """The request for command `name` without arguments, as sent in band."""
    return _encode({"execute": name}).encode() + b"\n"


def encode_request(
    name: str, arguments: Mapping[str, object] | None, oob: bool, request_id: int | None
) -> bytes:
    """A request as the clients send it: compact, ``arguments`` only when given."""
    message: dict[str, object] = {"exec-oob" if oob else "execute": name}
    if arguments is not None:
        message["arguments"] = arguments
    if request_id is not None:
        message["id"] = request_id
    return _encode(message).encode() + b"\n"


def check_reply_id(message: dict[str, object]) -> int:
    """The id of a reply that carries one; QMPProtocolError unless it is one of ours
    (the clients only ever send small integers)."""
    request_id = message["id"]
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return request_id
    raise QMPProtocolError(f"a reply with an id this client never sent: {message!r}")
