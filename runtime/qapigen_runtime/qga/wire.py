"""The guest agent's wire protocol, shared by its async and blocking clients.

qemu-ga speaks QMP's request and reply syntax over a byte stream (the host end of a
virtio-serial channel, or any socket) with none of QMP's session: no greeting, no
``qmp_capabilities``, no events, no ``id`` on replies. A reply is one line of JSON.

What replaces the session is resynchronisation, as the schema's documentation of
``guest-sync-delimited`` describes: the stream outlives clients (a channel keeps
what an earlier client half-sent or never read), so a client

1. sends the byte 0xFF, which is never valid in JSON text: the agent's parser drops
   whatever partial request it holds (and answers with a parse error);
2. sends ``guest-sync-delimited`` with a fresh random id; the agent writes the
   byte 0xFF, then the reply ``{"return": ID}``;
3. discards everything before a 0xFF byte (0xFF never occurs in UTF-8 text, so it
   cannot be part of a stale reply), and then every reply that is not its own id's
   (a sync of an earlier, timed-out attempt), going back to step 3 after each.

A client does this on connecting, and again before the next command after anything
that leaves the stream in an unknown state: a timeout, a reply it could not read, a
command sent without waiting for its reply.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from ..qmp.errors import QMPError, QMPProtocolError, command_error_from_wire
from ..qmp.received_json import decode_line
from ..qmp.requests import encode_request

SENTINEL = 0xFF
"""The byte that resets the agent's parser, and that precedes the sync reply."""

RESET = bytes([SENTINEL])

SYNC_COMMAND = "guest-sync-delimited"

DEFAULT_COMMAND_TIMEOUT = 60.0
"""Seconds a command waits for its reply unless told otherwise (None: for ever)."""

DEFAULT_SYNC_TIMEOUT = 10.0
"""Seconds a resynchronisation waits for the agent (connecting included)."""

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""Largest reply accepted (guest-file-read returns up to 48 MiB of base64)."""

_ids = random.SystemRandom()


def new_sync_id() -> int:
    """An id no earlier client of the channel is likely to have used."""
    return _ids.randrange(1, 2**31)


def sync_request(sync_id: int) -> bytes:
    """The reset byte and the ``guest-sync-delimited`` request for `sync_id`."""
    return RESET + encode_request(SYNC_COMMAND, {"id": sync_id}, False, None)


def is_sync_reply(line: bytes | bytearray | memoryview, sync_id: int) -> bool:
    """Whether `line` (after a sentinel) is the reply to the sync with `sync_id`."""
    try:
        message = decode_line(line)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("return") == sync_id


def check_request(name: str, oob: bool, fds: Sequence[int]) -> None:
    """Refuse what QMP offers and the agent does not (the transport protocols
    share QMP's `execute` signature)."""
    if oob:
        raise QMPError(f"{name}: the guest agent runs no out-of-band commands")
    if fds:
        raise QMPError(f"{name}: the guest agent takes no file descriptors")


def request(name: str, arguments: Mapping[str, object] | None) -> bytes:
    """A request line, ``arguments`` only when given."""
    return encode_request(name, arguments, False, None)


def reply_value(name: str, line: bytes | bytearray | memoryview) -> object:
    """The ``return`` value of a reply line; QMPCommandError for an error reply,
    QMPProtocolError for anything else (the caller resynchronises after it).

    The sentinel in front of the reply to a ``guest-sync-delimited`` sent as an
    ordinary command is dropped."""
    if line[:1] == RESET:
        line = line[1:]
    try:
        message = decode_line(line)
    except ValueError as error:
        raise QMPProtocolError(
            f"the reply to {name} is not JSON: {error}: {bytes(line[:80])!r}"
        ) from None
    if isinstance(message, dict):
        if "return" in message:
            return message["return"]
        if "error" in message:
            raise command_error_from_wire(message["error"])
    raise QMPProtocolError(f"the reply to {name} is not a reply: {message!r}")
