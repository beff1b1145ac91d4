"""QMP message shapes: greeting, requests, replies, and the checks QEMU applies.

The texts of the refusals are the ones QEMU 7.2 answers with (observed on a real
QEMU 7.2, see tests/interop/test_qmp_qemu.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import (
    CommandNotFound,
    GenericError,
    QMPCommandError,
    QMPNegotiationError,
    QMPProtocolError,
)
from .json_text import format_double

OOB = "oob"
"""The only capability QMP defines: out-of-band command execution."""

NEGOTIATION_REFUSAL = "Expecting capabilities negotiation with 'qmp_capabilities'"
ALREADY_NEGOTIATED = "Capabilities negotiation is already complete, command ignored"


_encode = json.JSONEncoder().encode

# A float as Python's encoder writes it (a digit then '.' or an exponent, or an
# infinity or NaN); checked first so that replies without one are left alone.
_FLOAT_HINT = re.compile(r"[0-9][.eE]|Infinity|NaN")
_STRING_OR_NUMBER = re.compile(
    r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN|-?[0-9][0-9]*(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)'
)


def _qemu_number(match: re.Match[str]) -> str:
    number = match.group(1)
    if number is None or number.isdigit() or number[1:].isdigit():
        return match.group()  # a string, or an integer
    return format_double(float(number))


def encode(message: dict[str, object]) -> bytes:
    """One message as QEMU writes it: ``json`` with spaces after separators, doubles
    with 17 significant digits (so 1.0 goes out as ``1``, -0.0 as ``-0``), CRLF."""
    text = _encode(message)
    if _FLOAT_HINT.search(text):
        text = _STRING_OR_NUMBER.sub(_qemu_number, text)
    return text.encode() + b"\r\n"


@dataclass(frozen=True, slots=True)
class Greeting:
    """What the server announces on connect."""

    version: dict[str, object]
    capabilities: tuple[str, ...]

    def to_wire(self) -> dict[str, object]:
        return {
            "QMP": {"version": self.version, "capabilities": list(self.capabilities)}
        }

    @classmethod
    def from_wire(cls, message: object) -> Greeting:
        """Decode a greeting; anything else raises QMPNegotiationError."""
        body = message.get("QMP") if isinstance(message, dict) else None
        if not isinstance(body, dict):
            raise QMPNegotiationError(f"expected a QMP greeting, got {message!r}")
        version = body.get("version")
        capabilities = body.get("capabilities")
        if not isinstance(version, dict) or not isinstance(capabilities, list):
            raise QMPNegotiationError(f"malformed QMP greeting: {message!r}")
        return cls(version, tuple(str(c) for c in capabilities))


def qemu_version(
    major: int, minor: int, micro: int, package: str = ""
) -> dict[str, object]:
    """The ``version`` member of a greeting (and of ``query-version``)."""
    return {
        "qemu": {"micro": micro, "minor": minor, "major": major},
        "package": package,
    }


GREETING, REPLY, EVENT = "greeting", "reply", "event"


def message_kind(message: object) -> str:
    """What a message from a server is: `GREETING`, `REPLY` (success or error) or
    `EVENT`. Anything else is not QMP: QMPProtocolError."""
    if isinstance(message, dict):
        if "return" in message or "error" in message:
            return REPLY
        if "event" in message:
            return EVENT
        if "QMP" in message:
            return GREETING
    raise QMPProtocolError(
        f"the server sent a message that is no reply, event or greeting: "
        f"{_shorten(message)}"
    )


def refusal(message: dict[str, object]) -> QMPNegotiationError:
    """The error for a first message that is not the greeting."""
    error = message.get("error")
    if isinstance(error, dict) and isinstance(error.get("desc"), str):
        return QMPNegotiationError(
            f"the server refused the connection: {error['desc']}"
        )
    return QMPNegotiationError(f"expected a QMP greeting, got {_shorten(message)}")


def _shorten(message: object, limit: int = 200) -> str:
    text = repr(message)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True, slots=True)
class Request:
    """A well-formed command request."""

    name: str
    arguments: dict[str, object]
    oob: bool
    has_id: bool
    id: object


class RequestRefused(Exception):
    """The input was JSON but not an acceptable request; answered with `error`."""

    def __init__(self, error: QMPCommandError, has_id: bool = False, id: object = None):
        super().__init__(error.desc)
        self.error = error
        self.has_id = has_id
        self.id = id


_REQUEST_MEMBERS = frozenset(("execute", "exec-oob", "arguments", "id"))


def parse_request(message: object, oob_enabled: bool) -> Request:
    """Check a decoded input value the way QEMU's monitor does, in its order.

    Raises RequestRefused (echoing the ``id`` when there is one) for input that is
    not a request: type checks first, then unexpected members, then the missing
    ``execute``.
    """
    if not isinstance(message, dict):
        raise RequestRefused(GenericError("QMP input must be a JSON object"))
    has_id = "id" in message
    request_id = message.get("id")

    def refuse(desc: str) -> RequestRefused:
        return RequestRefused(GenericError(desc), has_id, request_id)

    name = message.get("execute")
    oob_name = message.get("exec-oob")
    arguments = message.get("arguments", {})
    for member in ("execute", "exec-oob"):
        if member in message and not isinstance(message[member], str):
            raise refuse(f"QMP input member '{member}' must be a string")
    if not isinstance(arguments, dict):
        raise refuse("QMP input member 'arguments' must be an object")
    oob = oob_name is not None
    if oob and not oob_enabled:
        raise refuse("QMP input member 'exec-oob' is unexpected")
    if oob and name is not None:
        raise refuse("QMP input member 'execute' clashes with 'exec-oob'")
    for member in message:
        if member not in _REQUEST_MEMBERS:
            raise refuse(f"QMP input member '{member}' is unexpected")
    command = oob_name if oob else name
    if not isinstance(command, str):
        raise refuse("QMP input lacks member 'execute'")
    return Request(command, arguments, oob, has_id, request_id)


class _NoReply:
    """The type of `NO_REPLY`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY = _NoReply()
"""What a dispatcher returns for a command that succeeded and gets no reply: a
``'success-response': false`` command (the guest agent's ``guest-shutdown``), whose
success the client learns from what happens, not from a message. Its errors are
replied to as any command's."""


def reply(result: object, has_id: bool, request_id: object) -> dict[str, object]:
    """A success reply (``return`` first, then ``id``, as QEMU orders them)."""
    message: dict[str, object] = {"return": result}
    if has_id:
        message["id"] = request_id
    return message


def error_reply(
    error: QMPCommandError, has_id: bool, request_id: object
) -> dict[str, object]:
    """An error reply (``id`` first, then ``error``, as QEMU orders them)."""
    message: dict[str, object] = {}
    if has_id:
        message["id"] = request_id
    message["error"] = error.to_wire()
    return message


def capabilities_arguments(
    arguments: dict[str, object], offered: tuple[str, ...]
) -> bool:
    """Check ``qmp_capabilities`` arguments; True when ``oob`` is to be enabled."""
    for key in arguments:
        if key != "enable":
            raise GenericError(f"Parameter '{key}' is unexpected")
    enable = arguments.get("enable", [])
    if not isinstance(enable, list):
        raise GenericError("Invalid parameter type for 'enable', expected: array")
    for index, capability in enumerate(enable):
        if not isinstance(capability, str):
            raise GenericError(
                f"Invalid parameter type for 'enable[{index}]', expected: string"
            )
        if capability != OOB:
            # QEMU 7.2 names the parameter 'null' here (observed).
            raise GenericError(f"Parameter 'null' does not accept value '{capability}'")
        if capability not in offered:
            raise GenericError(f"Capability '{capability}' not available")
    return OOB in enable


def not_negotiated() -> CommandNotFound:
    return CommandNotFound(NEGOTIATION_REFUSAL)
