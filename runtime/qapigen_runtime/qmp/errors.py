"""Exceptions of the QMP runtime.

Two families that callers handle differently:

- `QMPCommandError`: the server ran (or refused) a command and answered with an
  ``{"error": {"class": ..., "desc": ...}}`` reply. The connection is fine. One subclass
  per error class QEMU still uses; a class this runtime does not know maps to the base
  class, keeping both the class name and the description.
- `QMPConnectionError`: the conversation itself failed (disconnect, timeout, failed
  negotiation, input that is not QMP or is too large). Pending commands fail with it.
"""

from __future__ import annotations

from typing import ClassVar


class QMPError(Exception):
    """Base class of every error raised by the QMP runtime."""


class QMPCommandError(QMPError):
    """A command failed: the server answered with an error reply.

    `error_class` is QEMU's error class name (``GenericError``, ...), `desc` its
    human-readable description.
    """

    ERROR_CLASS: ClassVar[str] = "GenericError"

    def __init__(self, desc: str, error_class: str | None = None) -> None:
        super().__init__(desc)
        self.desc = desc
        self.error_class = self.ERROR_CLASS if error_class is None else error_class

    def __str__(self) -> str:
        return f"{self.error_class}: {self.desc}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.desc!r}, error_class={self.error_class!r})"

    def to_wire(self) -> dict[str, object]:
        """The ``error`` member of the reply that reports this error."""
        return {"class": self.error_class, "desc": self.desc}


class GenericError(QMPCommandError):
    """The catch-all class: almost every QEMU error is reported with it."""

    ERROR_CLASS = "GenericError"


class CommandNotFound(QMPCommandError):
    """The command does not exist, or may not be run in the current mode."""

    ERROR_CLASS = "CommandNotFound"


class DeviceNotActive(QMPCommandError):
    """The device exists but is not active (e.g. a balloon without a driver)."""

    ERROR_CLASS = "DeviceNotActive"


class DeviceNotFound(QMPCommandError):
    """The named device does not exist."""

    ERROR_CLASS = "DeviceNotFound"


class KVMMissingCap(QMPCommandError):
    """The command needs a KVM capability the host lacks."""

    ERROR_CLASS = "KVMMissingCap"


COMMAND_ERROR_CLASSES: dict[str, type[QMPCommandError]] = {
    cls.ERROR_CLASS: cls
    for cls in (
        GenericError,
        CommandNotFound,
        DeviceNotActive,
        DeviceNotFound,
        KVMMissingCap,
    )
}
"""The error classes of QEMU's QMP, by wire name."""


def command_error(error_class: str, desc: str) -> QMPCommandError:
    """The exception for an error reply; unknown classes give the base class."""
    cls = COMMAND_ERROR_CLASSES.get(error_class)
    if cls is None:
        return QMPCommandError(desc, error_class)
    return cls(desc)


def command_error_from_wire(error: object) -> QMPCommandError:
    """The exception for the ``error`` member of a reply, tolerant of odd shapes.

    A peer that sends a malformed error member still produces a command error (its
    description says what was wrong), so the caller's error handling stays simple.
    """
    if isinstance(error, dict):
        error_class = error.get("class")
        desc = error.get("desc")
        if isinstance(error_class, str) and isinstance(desc, str):
            return command_error(error_class, desc)
    return QMPCommandError(f"malformed error reply: {error!r}", "GenericError")


class QMPConnectionError(QMPError):
    """The QMP conversation failed; the command's outcome is unknown."""


class QMPDisconnectedError(QMPConnectionError):
    """The connection closed (or was never open) while a reply was awaited."""


class QMPTimeoutError(QMPConnectionError, TimeoutError):
    """No reply (or event) arrived in time."""


class QMPNegotiationError(QMPConnectionError):
    """The greeting or the capabilities negotiation failed."""


class QMPProtocolError(QMPConnectionError):
    """The peer sent something that is not QMP."""


class QMPMessageTooLargeError(QMPProtocolError):
    """A message from the peer exceeded the configured input size limit."""
