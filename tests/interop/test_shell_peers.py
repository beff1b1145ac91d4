"""`qapigen shell` against real servers: QEMU 7.2 and qapigen-vm.

Scripted (stdin a pipe): one command per line, each reply one line of JSON, events as
JSON lines on stderr, the first error stops the run with status 1 and a located
message, and nothing after it is sent. Interactive (stdin a pty): Tab completes a
command, the reply is pretty-printed, the line lands in the history file.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qapigen_testing.daemons import GuestAgent
from qapigen_testing.peers import MACHINE_ARGS, Peer, PeerKind, Site, free_port
from qapigen_testing.qemu_fixtures import QemuLauncher

SHELL = [sys.executable, "-m", "qapigen", "shell"]


@pytest.fixture(
    scope="module",
    params=[pytest.param(PeerKind.QEMU, marks=pytest.mark.qemu), PeerKind.VM],
    ids=["qemu", "qapigen-vm"],
)
def server(request: pytest.FixtureRequest) -> Iterator[Peer]:
    kind: PeerKind = request.param
    with tempfile.TemporaryDirectory(prefix="qapigen-shell-") as directory:
        peer = Peer(kind, "shell", Site(Path(directory), free_port()), MACHINE_ARGS)
        try:
            peer.wait_ready()
            yield peer
        finally:
            peer.stop()


def run_shell(
    peer: Peer, script: str, *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHELL, f"unix:{peer.qmp_path}", *options],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_script_prints_each_reply_as_json(server: Peer) -> None:
    ran = run_shell(
        server,
        "query-status\n"
        "# a comment, then a blank line\n\n"
        "migrate-set-parameters downtime-limit=300\n"
        "query-migrate-parameters\n",
    )
    assert ran.returncode == 0, ran.stderr
    replies = [json.loads(line) for line in ran.stdout.splitlines()]
    assert len(replies) == 3
    assert replies[0]["status"] in ("running", "paused", "prelaunch")
    assert replies[1] == {}
    assert replies[2]["downtime-limit"] == 300


def test_script_stops_at_the_first_refused_line(server: Peer) -> None:
    ran = run_shell(
        server,
        "migrate-set-parameters downtime-limit=100\n"
        "migrate-set-parameters downtime-limit=fast\n"
        "migrate-set-parameters downtime-limit=200\n",
    )
    assert ran.returncode == 1
    # QEMU masks integer types as `int`; qapigen-vm's introspection names them
    integer = "int" if server.kind is PeerKind.QEMU else "uint64"
    assert ran.stderr.strip() == (
        "<stdin>:2:24: migrate-set-parameters: downtime-limit: expected"
        f" {integer}, got str"
    )
    assert [json.loads(line) for line in ran.stdout.splitlines()] == [{}]
    after = run_shell(server, "query-migrate-parameters\n")
    assert json.loads(after.stdout)["downtime-limit"] == 100  # line 3 never ran


def test_script_stops_at_an_error_reply(server: Peer) -> None:
    ran = run_shell(server, "migrate uri=bogus:x\nquery-status\n")
    assert ran.returncode == 1
    assert ran.stdout == ""
    # a well-typed uri (a string) that only the server can refuse
    assert ran.stderr.strip() == (
        "<stdin>:1: migrate: GenericError: Parameter 'uri' expects a valid"
        " migration protocol"
    )
    as_json = run_shell(
        server, '{"execute": "migrate", "arguments": {"uri": "bogus:x"}}\n'
    )
    assert as_json.stderr == ran.stderr


def test_events_are_shown(server: Peer) -> None:
    ran = run_shell(server, "stop\ncont\n")
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line)["event"] for line in ran.stderr.splitlines()]
    assert events == ["STOP", "RESUME"]


def test_unreachable_server_is_one_line() -> None:
    ran = subprocess.run(
        [*SHELL, "unix:/nonexistent/qmp.sock"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 1
    assert ran.stderr.startswith("qapigen shell: cannot connect to unix:/nonexistent")
    assert "Traceback" not in ran.stderr


def test_help_comes_from_the_package_doc_comments(server: Peer) -> None:
    if server.kind is not PeerKind.VM:
        pytest.skip("the doc comments are those of qapigen-vm's schema")
    ran = run_shell(
        server, "help migrate-set-parameters\n", "--package", "qapigen_vm_qmp"
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("migrate-set-parameters [announce-initial=")
    assert len(lines) > 3  # the documentation follows the signature


def read_until(fd: int, marker: bytes, timeout: float = 30.0) -> bytes:
    """What the pty shows until `marker` appears (AssertionError after `timeout`)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the pty
                break
            seen += chunk
    return seen


def test_interactive_session_in_a_pty(server: Peer, tmp_path: Path) -> None:
    history = tmp_path / "history"
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*SHELL, f"unix:{server.qmp_path}"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "QAPIGEN_SHELL_HISTORY": str(history), "TERM": "dumb"},
    )
    os.close(terminal)
    try:
        banner = read_until(controller, b"(QMP) ")
        assert b"Tab completes" in banner
        # Tab completes the only command starting so: without it, "query-statu"
        # would be an unknown command.
        os.write(controller, b"query-statu")
        read_until(controller, b"query-statu")
        os.write(controller, b"\t")
        read_until(controller, b"s")
        os.write(controller, b"\r")
        reply = read_until(controller, b"(QMP) ")
        assert b'  "status": ' in reply  # pretty-printed: one member per line
        os.write(controller, b"migrate-set-parameters downtime-limit=x\r")
        refused = read_until(controller, b"(QMP) ")
        assert b"downtime-limit: expected " in refused
        os.write(controller, b"quit\r")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert "query-status" in history.read_text().splitlines()


@pytest.mark.qemu
def test_a_server_that_goes_away_ends_the_script(qemu_launcher: QemuLauncher) -> None:
    qemu = qemu_launcher.start("shell-quit")
    ran = subprocess.run(
        [*SHELL, qemu.qmp_address],
        input='{"execute": "quit"}\nquery-status\n',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 1
    assert ran.stdout.splitlines()[0] == "{}"
    assert ran.stderr.splitlines()[-1].startswith("<stdin>:2: connection lost: ")
    assert "Traceback" not in ran.stderr


@pytest.mark.guest_agent
def test_script_against_the_guest_agent() -> None:
    with GuestAgent() as agent:
        shell = [*SHELL, "--guest-agent", str(agent.socket_path)]
        ran = subprocess.run(
            shell,
            input="guest-ping\nguest-info\nhelp guest-ping\nguest-exec pth=/bin/true\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 1
        lines = ran.stdout.splitlines()
        assert json.loads(lines[0]) == {}
        assert "guest-ping" in {
            c["name"] for c in json.loads(lines[1])["supported_commands"]
        }
        # help from the doc comments of qapigen_qga (QEMU 7.2's guest-agent schema)
        assert lines[2] == "guest-ping" and "Ping the guest agent" in ran.stdout
        assert ran.stderr.strip() == "<stdin>:4: guest-exec: path: missing member"
        refused = subprocess.run(
            shell,
            input="guest-file-open path=/nonexistent/x\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1
        assert refused.stderr.startswith("<stdin>:1: guest-file-open: GenericError: ")
