"""The migration transport's listener, closed by two threads at once.

A destination's loading thread closes its listener when the migration ends, while
the VM's shutdown (or a failover) may close it from another thread. Seen once as an
uncaught AttributeError in the migration-incoming thread: the first closer had checked
that the server socket was there, the second one cleared it, and the first one then
used it. Here the first closer is held inside the socket's shutdown (the window
between the check and the use) while the second one closes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from qapigen_vm.transport import FdTable, Listener, parse_uri

pytestmark = pytest.mark.timeout(30)

FIRST_CLOSER = "first-closer"
SECOND_CLOSER_WINDOW = 0.5
"""Seconds the first closer stays held while the second one closes: an unguarded
close needs a few microseconds, a guarded one waits for the first closer."""


def closing_thread(
    listener: Listener, name: str, errors: list[BaseException]
) -> threading.Thread:
    def close() -> None:
        try:
            listener.close()
        except BaseException as exc:  # reported by the test, not by the thread hook
            errors.append(exc)

    return threading.Thread(target=close, name=name, daemon=True)


def hold_first_closer_in_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """(inside, release): the thread named FIRST_CLOSER sets ``inside`` when it enters
    the listening socket's shutdown, and waits there for ``release``."""
    inside, release = threading.Event(), threading.Event()
    real_shutdown: Callable[[socket.socket, int], None] = socket.socket.shutdown

    def held_shutdown(sock: socket.socket, how: int) -> None:
        if threading.current_thread().name == FIRST_CLOSER:
            inside.set()
            release.wait(10)
        real_shutdown(sock, how)

    monkeypatch.setattr(socket.socket, "shutdown", held_shutdown)
    return inside, release


def refuses_connections(address: str | tuple[str, int], family: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
    return False


@pytest.mark.parametrize("scheme", ["tcp", "unix"])
def test_two_threads_closing_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scheme: str
) -> None:
    path = tmp_path / "incoming.sock"
    uri = "tcp:127.0.0.1:0" if scheme == "tcp" else f"unix:{path}"
    listener = Listener(parse_uri(uri), FdTable())
    if scheme == "tcp":
        port = int(str(listener.socket_address[0]["port"]))
        address: str | tuple[str, int] = ("127.0.0.1", port)
        family = socket.AF_INET
    else:
        address, family = str(path), socket.AF_UNIX
    inside, release = hold_first_closer_in_shutdown(monkeypatch)
    errors: list[BaseException] = []
    first = closing_thread(listener, FIRST_CLOSER, errors)
    second = closing_thread(listener, "second-closer", errors)

    first.start()
    assert inside.wait(10), "the first closer never reached the socket's shutdown"
    second.start()
    second.join(SECOND_CLOSER_WINDOW)
    release.set()
    first.join(10)
    second.join(10)

    assert not first.is_alive() and not second.is_alive()
    assert errors == []
    assert listener.socket_address == []
    assert refuses_connections(address, family)
    assert not path.exists()
    assert listener.accept() is None  # a closed listener waits for nothing


def test_a_second_close_returns_only_once_the_port_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller relies on close() having closed the port when it returns (the
    destination's "no more connections once completed"), whichever thread got there
    first."""
    listener = Listener(parse_uri("tcp:127.0.0.1:0"), FdTable())
    port = int(str(listener.socket_address[0]["port"]))
    inside, release = hold_first_closer_in_shutdown(monkeypatch)
    errors: list[BaseException] = []
    first = closing_thread(listener, FIRST_CLOSER, errors)
    first.start()
    assert inside.wait(10)
    second_done = threading.Event()

    def second_close() -> None:
        listener.close()
        second_done.set()

    threading.Thread(target=second_close, daemon=True).start()
    assert not second_done.wait(SECOND_CLOSER_WINDOW)  # waits for the first closer
    release.set()
    assert second_done.wait(10)
    assert refuses_connections(("127.0.0.1", port), socket.AF_INET)
    first.join(10)
    assert errors == []
