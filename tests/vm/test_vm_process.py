"""qapigen-vm as a process: started with QEMU's command line, driven over QMP sockets.

Every test starts real `python -m qapigen_vm.main` processes on unix sockets
in a private directory and ends them (quit, then SIGKILL if they linger). RAM stays
at 32 MiB so the whole file runs in a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qapigen_runtime.qmp import (
    CommandNotFound,
    GenericError,
    QMPConnectionError,
    QMPError,
    SyncQMPClient,
)
from qapigen_testing.qemu_fixtures import accepts_connections
from qapigen_vm_qmp import introspection
from qapigen_vm_qmp.commands import SyncClient
from qapigen_vm_qmp.events import MigrationEvent, wait_for_sync
from qapigen_vm_qmp.types import (
    MigrationCapability,
    MigrationCapabilityStatus,
    MigrationStatus,
    RunState,
)

pytestmark = pytest.mark.timeout(60)

RAM_MIB = 32
RAM_BYTES = RAM_MIB << 20
START_TIMEOUT = 10.0


class Vm:
    """One qapigen-vm process with a QMP socket in `directory`."""

    def __init__(self, directory: Path, name: str, *args: str) -> None:
        self.qmp_path = str(directory / f"{name}.qmp")
        self.argv = [
            sys.executable,
            "-m",
            "qapigen_vm.main",
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
            *args,
        ]
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.clients: list[SyncQMPClient] = []

    def connect(self) -> SyncQMPClient:
        """A negotiated raw client, once the VM listens."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            client = SyncQMPClient()
            try:
                client.connect(self.qmp_path, timeout=5.0)
            except QMPConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"qapigen-vm did not start: {self.proc.poll()}"
                        f" {self.proc.stderr.read() if self.proc.stderr else ''}"
                    ) from None
                time.sleep(0.05)
                continue
            self.clients.append(client)
            return client

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class VmLauncher:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.vms: list[Vm] = []

    def start(self, name: str, *args: str) -> Vm:
        vm = Vm(self.directory, name, *args)
        self.vms.append(vm)
        return vm

    def close(self) -> None:
        for vm in self.vms:
            vm.stop()


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="qvm-") as name:
        yield Path(name)


@pytest.fixture
def vms(workdir: Path) -> Iterator[VmLauncher]:
    launcher = VmLauncher(workdir)
    try:
        yield launcher
    finally:
        launcher.close()


def memory_backend(path: Path) -> list[str]:
    return [
        "-object",
        f"memory-backend-file,id=mem,size={RAM_MIB}M,mem-path={path},share=on",
        "-machine",
        "memory-backend=mem",
    ]


def enable_events(client: SyncQMPClient) -> None:
    SyncClient(client).migrate_set_capabilities(
        capabilities=[
            MigrationCapabilityStatus(capability=MigrationCapability.EVENTS, state=True)
        ]
    )


def wait_migration_end(client: SyncQMPClient, timeout: float = 30.0) -> str:
    event = wait_for_sync(
        client,
        MigrationEvent,
        lambda e: e.status
        in (
            MigrationStatus.COMPLETED,
            MigrationStatus.FAILED,
            MigrationStatus.CANCELLED,
        ),
        timeout,
    )
    return event.status.value


def event_trace(client: SyncQMPClient) -> list[str]:
    """The events received so far as compact strings: 'MIGRATION active', 'STOP'."""
    trace = []
    for event in client.clear_events():
        values = " ".join(str(value) for value in event.data.values())
        trace.append(f"{event.name} {values}".strip())
    return trace


# -- QMP basics -----------------------------------------------------------------------


def test_greeting_and_negotiation(vms: VmLauncher) -> None:
    vm = vms.start("vm", "-m", "16")
    vm.connect().close()  # waits until it listens
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(vm.qmp_path)
        reader = sock.makefile("rb")
        greeting = json.loads(reader.readline())
        assert greeting == {
            "QMP": {
                "version": {
                    "qemu": {"micro": 0, "minor": 2, "major": 7},
                    "package": "qapigen-vm",
                },
                "capabilities": ["oob"],
            }
        }
        sock.sendall(b'{"execute": "query-status", "id": 1}\n')
        assert json.loads(reader.readline()) == {
            "id": 1,
            "error": {
                "class": "CommandNotFound",
                "desc": "Expecting capabilities negotiation with 'qmp_capabilities'",
            },
        }
        sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        assert json.loads(reader.readline()) == {"return": {}}
        sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        assert json.loads(reader.readline())["error"] == {
            "class": "CommandNotFound",
            "desc": "Capabilities negotiation is already complete, command ignored",
        }


def test_query_version_commands_and_schema(vms: VmLauncher) -> None:
    client = vms.start("vm", "-m", "16").connect()
    typed = SyncClient(client)
    version = typed.query_version()
    assert (version.qemu.major, version.qemu.minor, version.qemu.micro) == (7, 2, 0)
    assert version.package == "qapigen-vm"
    schema = introspection.schema_info()
    schema_commands = {e["name"] for e in schema if e["meta-type"] == "command"}
    listed = [info.name for info in typed.query_commands()]
    assert len(listed) == len(set(listed))
    assert set(listed) == schema_commands
    assert {"migrate", "query-status", "getfd", "query-qmp-schema"} <= set(listed)
    assert client.execute("query-qmp-schema") == schema


def test_status_stop_cont_and_events(vms: VmLauncher) -> None:
    client = vms.start("vm", "-m", "16").connect()
    typed = SyncClient(client)
    status = client.execute("query-status")
    assert status == {"running": True, "singlestep": False, "status": "running"}
    typed.stop()
    assert typed.query_status().status is RunState.PAUSED
    typed.stop()  # already stopped: no second STOP
    typed.cont()
    assert client.execute("query-status") == {
        "running": True,
        "singlestep": False,
        "status": "running",
    }
    assert event_trace(client) == ["STOP", "RESUME"]


def test_prelaunch_with_S_then_cont(vms: VmLauncher) -> None:
    client = vms.start("vm", "-m", "16", "-S").connect()
    assert client.execute("query-status") == {
        "running": False,
        "singlestep": False,
        "status": "prelaunch",
    }
    client.execute("cont")
    assert SyncClient(client).query_status().status is RunState.RUNNING
    assert event_trace(client) == ["RESUME"]


def test_qemu_errors(vms: VmLauncher) -> None:
    client = vms.start("vm", "-m", "16").connect()
    cases: list[tuple[str, dict[str, object], str]] = [
        ("migrate", {"uri": 5}, "Invalid parameter type for 'uri', expected: string"),
        ("migrate", {"uri": "tcp:1:2", "bogus": 1}, "Parameter 'bogus' is unexpected"),
        (
            "migrate-set-parameters",
            {"compress-level": 99},
            "Parameter 'compress_level' expects a value between 0 and 9",
        ),
        (
            "migrate-incoming",
            {"uri": "tcp:127.0.0.1:0"},
            "'-incoming' was not specified on the command line",
        ),
        (
            "migrate-continue",
            {"state": "pre-switchover"},
            "Migration not in expected state: none",
        ),
        (
            "migrate-start-postcopy",
            {},
            "Enable postcopy with migrate_set_capability before the start of "
            "migration",
        ),
        ("x-colo-lost-heartbeat", {}, "The feature 'colo' is not enabled"),
    ]
    for name, arguments, desc in cases:
        with pytest.raises(GenericError) as error:
            client.execute(name, arguments)
        assert error.value.desc == desc, name
    with pytest.raises(CommandNotFound) as missing:
        client.execute("nonexistent")
    assert missing.value.desc == "The command nonexistent has not been found"


def test_unknown_capability_is_named_as_qemu_names_it(vms: VmLauncher) -> None:
    client = vms.start("vm", "-m", "16").connect()
    with pytest.raises(GenericError) as error:
        client.execute(
            "migrate-set-capabilities",
            {"capabilities": [{"capability": "no-such-capability", "state": True}]},
        )
    assert error.value.desc == (
        "Parameter 'capability' does not accept value 'no-such-capability'"
    )


def test_parameters_and_deprecated_commands(vms: VmLauncher) -> None:
    client = vms.start("vm", "-m", "16").connect()
    parameters = client.execute("query-migrate-parameters")
    assert isinstance(parameters, dict)
    assert parameters["max-bandwidth"] == 134217728
    assert parameters["downtime-limit"] == 300
    assert parameters["xbzrle-cache-size"] == 67108864
    assert parameters["multifd-channels"] == 2
    # QEMU 5.2's wrappers around the parameters.
    client.execute("migrate_set_downtime", {"value": 0.12345})
    client.execute("migrate_set_speed", {"value": 12345})
    client.execute("migrate-set-cache-size", {"value": 4096})
    parameters = client.execute("query-migrate-parameters")
    assert isinstance(parameters, dict)
    assert parameters["downtime-limit"] == 123
    assert parameters["max-bandwidth"] == 12345
    assert client.execute("query-migrate-cache-size") == 4096


def test_compat_policies_as_qemu(vms: VmLauncher) -> None:
    """-compat as QEMU 7.2 takes it (texts observed on QEMU 7.2, see
    tests/interop/test_qemu_compat_policies.py)."""
    reject = vms.start("reject", "-m", "16", "-compat", "deprecated-input=reject")
    client = reject.connect()
    with pytest.raises(CommandNotFound) as refused:
        client.execute("migrate_set_downtime", {"value": 1})
    assert refused.value.desc == (
        "Deprecated command migrate_set_downtime disabled by policy"
    )
    assert isinstance(client.execute("query-migrate-parameters"), dict)
    # query-commands still lists it, as QEMU 7.2's does under any policy
    listed = client.execute("query-commands")
    assert isinstance(listed, list)
    assert "migrate_set_downtime" in {entry["name"] for entry in listed}

    hide = vms.start("hide", "-m", "16", "-compat", "deprecated-output=hide")
    client = hide.connect()
    schema = client.execute("query-qmp-schema")
    assert isinstance(schema, list)
    names = {entry["name"] for entry in schema}
    assert "migrate_set_downtime" not in names and "query-migrate" in names
    enums = [entry for entry in schema if entry["meta-type"] == "enum"]
    assert enums and all("values" not in entry for entry in enums)
    client.execute("migrate_set_downtime", {"value": 1})  # hidden, still accepted

    crash = vms.start("crash", "-m", "16", "-compat", "deprecated-input=crash")
    client = crash.connect()
    with contextlib.suppress(QMPError):
        client.execute("migrate_set_downtime", {"value": 1})
    assert crash.wait() == -signal.SIGABRT


# -- process life ---------------------------------------------------------------------


def test_bad_command_line_prints_qemu_style_error(workdir: Path) -> None:
    for args, message in [
        (["-bogus"], "qapigen-vm: -bogus: invalid option\n"),
        (["-m", "12Q"], "qapigen-vm: -m 12Q: Parameter 'size' expects"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "qapigen_vm.main", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1
        assert done.stderr.startswith(message)
        assert "Traceback" not in done.stderr


def test_unusable_qmp_socket_is_reported(workdir: Path) -> None:
    path = workdir / "missing" / "vm.qmp"
    qmp = f"unix:{path},server=on,wait=off"
    done = subprocess.run(
        [sys.executable, "-m", "qapigen_vm.main", "-m", "16", "-qmp", qmp],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"qapigen-vm: -qmp {qmp}: Failed to bind socket to {path}:"
        " No such file or directory\n"
    )


def test_quit_exits_0_and_removes_socket(vms: VmLauncher) -> None:
    vm = vms.start("vm", "-m", "16")
    client = vm.connect()
    assert client.execute("quit") == {}
    # As QEMU 7.2 does, the SHUTDOWN event comes before the reply to quit.
    assert event_trace(client) == ["SHUTDOWN False host-qmp-quit"]
    assert vm.wait() == 0
    assert not os.path.exists(vm.qmp_path)


def test_sigterm_exits_0(vms: VmLauncher) -> None:
    vm = vms.start("vm", "-m", "16")
    client = vm.connect()
    vm.proc.send_signal(signal.SIGTERM)
    event = client.wait_for("SHUTDOWN", timeout=10)
    assert event.data == {"guest": False, "reason": "host-signal"}
    assert vm.wait() == 0
    assert "qapigen-vm: terminating on signal 15" in vm.stderr()
    assert not os.path.exists(vm.qmp_path)


def test_daemonize_with_pidfile(workdir: Path) -> None:
    qmp = workdir / "d.qmp"
    pidfile = workdir / "d.pid"
    argv = [
        sys.executable,
        "-m",
        "qapigen_vm.main",
        "-m",
        "16",
        "-daemonize",
        "-pidfile",
        str(pidfile),
        "-qmp",
        f"unix:{qmp},server=on,wait=off",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        assert done.returncode == 0, done.stderr
        assert pid is not None and pid != os.getpid()
        # Ready when the command returns: the socket accepts at once.
        client = SyncQMPClient()
        client.connect(str(qmp), timeout=5.0)
        with client:
            assert SyncClient(client).query_status().status is RunState.RUNNING
            # The pid file is locked: a second VM with it refuses to start.
            second = subprocess.run(
                argv[:-2] + ["-qmp", f"unix:{workdir / 'e.qmp'},server=on,wait=off"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert second.returncode == 1
            assert "cannot create PID file: Cannot lock pid file" in second.stderr
            client.execute("quit")
        deadline = time.monotonic() + 10
        while pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pidfile.exists()
        assert not qmp.exists()
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_getfd_and_closefd_over_scm_rights(vms: VmLauncher) -> None:
    client = vms.start("vm", "-m", "16").connect()
    with pytest.raises(GenericError) as error:
        client.execute("getfd", {"fdname": "nofd"})
    assert error.value.desc == "No file descriptor supplied via SCM_RIGHTS"
    read_end, write_end = os.pipe()
    try:
        assert client.execute("getfd", {"fdname": "fd-mig"}, fds=[read_end]) == {}
        with pytest.raises(GenericError) as error:
            client.execute("getfd", {"fdname": "1st"}, fds=[read_end])
        assert error.value.desc == (
            "Parameter 'fdname' expects a name not starting with a digit"
        )
        assert client.execute("closefd", {"fdname": "fd-mig"}) == {}
        with pytest.raises(GenericError) as error:
            client.execute("closefd", {"fdname": "fd-mig"})
        assert error.value.desc == "File descriptor named 'fd-mig' not found"
    finally:
        os.close(read_end)
        os.close(write_end)


# -- migration between processes -------------------------------------------------------


def _random_ram_file(path: Path, seed: int) -> None:
    import random

    path.write_bytes(random.Random(seed).randbytes(RAM_BYTES))


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_migration_with_shared_memory_files(
    vms: VmLauncher, workdir: Path, transport: str
) -> None:
    src_ram, dst_ram = workdir / "src.ram", workdir / "dst.ram"
    _random_ram_file(src_ram, seed=7)
    dst_ram.write_bytes(b"")
    if transport == "tcp":
        incoming = "tcp:127.0.0.1:0"
    else:
        incoming = f"unix:{workdir / 'mig.sock'}"
    source = vms.start(
        "src",
        *memory_backend(src_ram),
        # A busy guest: pages keep changing until the source stops for completion.
        "-workload",
        "rate=2000,working-set=8M,seed=3",
    )
    destination = vms.start(
        "dst", *memory_backend(dst_ram), "-S", "-incoming", incoming
    )
    src, dst = source.connect(), destination.connect()
    enable_events(src)
    enable_events(dst)
    assert SyncClient(dst).query_status().status is RunState.INMIGRATE
    listening = SyncClient(dst).query_migrate()
    assert listening.socket_address
    if transport == "tcp":
        port = listening.socket_address[0].to_wire()["port"]
        uri = f"tcp:127.0.0.1:{port}"
    else:
        uri = incoming
    SyncClient(src).migrate(uri=uri)
    assert wait_migration_end(src) == "completed"
    assert wait_migration_end(dst) == "completed"
    # wait_migration_end took the final events (completed) from the backlogs.
    source_events = event_trace(src)
    destination_events = event_trace(dst)

    info = SyncClient(src).query_migrate()
    assert info.status is MigrationStatus.COMPLETED
    assert info.ram is not None and info.ram.total == RAM_BYTES
    assert info.ram.remaining == 0 and info.downtime is not None
    assert SyncClient(src).query_status().status is RunState.POSTMIGRATE
    assert SyncClient(dst).query_status().status is RunState.PAUSED  # -S

    expected = ["MIGRATION setup", "MIGRATION_PASS 1", "MIGRATION active", "STOP"]
    assert [e for e in source_events if e in expected] == expected
    assert "RESUME" not in source_events
    # The final pass runs with the guest stopped.
    assert source_events[-1].startswith("MIGRATION_PASS ")
    # -S: the destination loads but does not start (no RESUME).
    assert destination_events == ["MIGRATION active"]

    # The source is stopped and both files are MAP_SHARED guest memory.
    assert src_ram.read_bytes() == dst_ram.read_bytes()

    SyncClient(dst).cont()
    assert event_trace(dst) == ["RESUME"]
    with pytest.raises(GenericError) as error:
        SyncClient(src).migrate(uri=uri)
    assert error.value.desc == (
        "Can't migrate the vm that was paused due to previous migration"
    )


def test_incoming_defer_then_migrate_incoming(vms: VmLauncher, workdir: Path) -> None:
    source = vms.start("src", "-m", str(RAM_MIB))
    destination = vms.start("dst", "-m", str(RAM_MIB), "-incoming", "defer")
    src, dst = source.connect(), destination.connect()
    assert dst.execute("query-migrate") == {}
    assert SyncClient(dst).query_status().status is RunState.INMIGRATE
    dst.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
    with pytest.raises(GenericError) as error:
        dst.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
    assert error.value.desc == "The incoming migration has already been started"
    # migrate-incoming announces the listener whatever the events capability says.
    assert event_trace(dst) == ["MIGRATION setup"]
    address = SyncClient(dst).query_migrate().socket_address
    assert address
    port = address[0].to_wire()["port"]
    enable_events(src)
    src.execute("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
    assert wait_migration_end(src) == "completed"
    deadline = time.monotonic() + 10
    while SyncClient(dst).query_status().status is not RunState.RUNNING:
        assert time.monotonic() < deadline, "destination never started"
        time.sleep(0.05)
    assert "RESUME" in event_trace(dst)  # no -S: the guest starts on arrival


def test_destination_exits_1_when_the_stream_is_bad(vms: VmLauncher) -> None:
    destination = vms.start("dst", "-m", "16", "-incoming", "tcp:127.0.0.1:0")
    dst = destination.connect()
    address = SyncClient(dst).query_migrate().socket_address
    assert address
    port = int(str(address[0].to_wire()["port"]))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"this is not a migration stream" * 10)
        assert destination.wait() == 1
    assert "load of migration failed" in destination.stderr()


def test_validate_uuid_mismatch_fails_both_sides(vms: VmLauncher) -> None:
    source = vms.start("src", "-m", "16", "-uuid", str(uuid.uuid4()))
    destination = vms.start(
        "dst", "-m", "16", "-uuid", str(uuid.uuid4()), "-incoming", "tcp:127.0.0.1:0"
    )
    src, dst = source.connect(), destination.connect()
    address = SyncClient(dst).query_migrate().socket_address
    assert address
    port = address[0].to_wire()["port"]
    src.execute(
        "migrate-set-capabilities",
        {
            "capabilities": [
                {"capability": "validate-uuid", "state": True},
                {"capability": "events", "state": True},
            ]
        },
    )
    src.execute("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
    assert wait_migration_end(src) == "failed"
    assert destination.wait() == 1
    assert SyncClient(src).query_status().status is RunState.RUNNING


def test_migration_over_fds_passed_with_getfd(vms: VmLauncher) -> None:
    source = vms.start("src", "-m", "16")
    destination = vms.start("dst", "-m", "16", "-incoming", "defer")
    src, dst = source.connect(), destination.connect()
    left, right = socket.socketpair()
    with left, right:
        src.execute("getfd", {"fdname": "fd-mig"}, fds=[left.fileno()])
        dst.execute("getfd", {"fdname": "fd-mig"}, fds=[right.fileno()])
    dst.execute("migrate-incoming", {"uri": "fd:fd-mig"})
    enable_events(src)
    src.execute("migrate", {"uri": "fd:fd-mig"})
    assert wait_migration_end(src) == "completed"
    assert SyncClient(src).query_status().status is RunState.POSTMIGRATE


def test_cancel_leaves_source_running_and_ends_destination(
    vms: VmLauncher, workdir: Path
) -> None:
    src_ram = workdir / "src.ram"
    _random_ram_file(src_ram, seed=11)  # nothing is a zero page: every page costs
    source = vms.start("src", *memory_backend(src_ram))
    destination = vms.start("dst", "-m", str(RAM_MIB), "-incoming", "tcp:127.0.0.1:0")
    src, dst = source.connect(), destination.connect()
    address = SyncClient(dst).query_migrate().socket_address
    assert address
    port = address[0].to_wire()["port"]
    enable_events(src)
    src.execute("migrate-set-parameters", {"max-bandwidth": 1 << 20})  # ~30 s
    src.execute("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
    wait_for_sync(
        src, MigrationEvent, lambda e: e.status is MigrationStatus.ACTIVE, 10.0
    )
    src.execute("migrate_cancel")
    assert wait_migration_end(src) == "cancelled"
    assert "MIGRATION cancelling" in event_trace(src)
    assert SyncClient(src).query_status().status is RunState.RUNNING
    assert destination.wait() == 1
    assert "load of migration failed" in destination.stderr()


def test_qmp_over_tcp(vms: VmLauncher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    vm = vms.start("vm", "-m", "16", "-qmp", f"tcp:127.0.0.1:{port},server=on,wait=off")
    vm.connect()  # the unix listener answers: the VM is up
    client = SyncQMPClient()
    client.connect(("127.0.0.1", port), timeout=5.0)
    with client:
        assert SyncClient(client).query_status().status is RunState.RUNNING
        # No descriptors can travel over TCP.
        with pytest.raises(GenericError) as error:
            client.execute("getfd", {"fdname": "x"})
        assert error.value.desc == "No file descriptor supplied via SCM_RIGHTS"


def test_xen_save_devices_state_pauses_around_the_write(
    vms: VmLauncher, workdir: Path
) -> None:
    client = vms.start("vm", "-m", "16").connect()
    target = workdir / "devices.state"
    client.execute("xen-save-devices-state", {"filename": str(target)})
    assert target.read_bytes().startswith(b"QEVM")
    assert event_trace(client) == ["STOP", "RESUME"]
    with pytest.raises(GenericError) as error:
        client.execute("xen-save-devices-state", {"filename": str(workdir / "no/x")})
    assert error.value.desc == (
        f"Unable to open {workdir / 'no/x'}: No such file or directory"
    )
    assert SyncClient(client).query_status().status is RunState.RUNNING


# -- side by side with a real QEMU 7.2 ---------------------------------------------------

# Requests whose answers (reply or error, and the events they cause) must be the same
# from qapigen-vm and from qemu-system-x86_64 7.2 on an idle machine without SPICE,
# COLO or Xen. The commands QEMU 7.2 dropped are left out: qapigen-vm keeps them.
SIDE_BY_SIDE: list[tuple[str, dict[str, object] | None]] = [
    ("query-status", None),
    ("stop", None),
    ("stop", None),
    ("query-status", None),
    ("cont", None),
    ("query-migrate", None),
    ("query-migrate-capabilities", None),
    ("query-migrate-parameters", None),
    ("migrate-set-parameters", {"compress-level": 99}),
    ("migrate-set-parameters", {"cpu-throttle-initial": 0}),
    ("migrate-set-parameters", {"downtime-limit": 3000000}),
    ("migrate-set-parameters", {"xbzrle-cache-size": 1000}),
    ("migrate-set-parameters", {"multifd-channels": 0}),
    ("migrate-set-parameters", {"max-cpu-throttle": 100}),
    ("migrate-set-parameters", {"downtime-limit": 250, "max-bandwidth": 1 << 30}),
    ("query-migrate-parameters", None),
    (
        "migrate-set-capabilities",
        {"capabilities": [{"capability": "x", "state": True}]},
    ),
    ("migrate-set-capabilities", {"capabilities": [{"capability": "events"}]}),
    (
        "migrate-set-capabilities",
        {"capabilities": [{"capability": "events", "state": True}]},
    ),
    ("query-migrate-capabilities", None),
    ("migrate-continue", {"state": "pre-switchover"}),
    ("migrate-continue", {"state": "bogus"}),
    ("migrate-pause", None),
    ("migrate-recover", {"uri": "tcp:127.0.0.1:0"}),
    ("migrate-start-postcopy", None),
    ("migrate-incoming", {"uri": "tcp:127.0.0.1:0"}),
    ("migrate_cancel", None),
    ("migrate", {"uri": 5}),
    ("migrate", {"uri": "tcp:127.0.0.1:1", "bogus": True}),
    ("migrate", {"uri": "foo:bar"}),
    ("query-migrate", None),
    ("getfd", {"fdname": "x"}),
    ("closefd", {"fdname": "x"}),
    ("query-colo-status", None),
    ("x-colo-lost-heartbeat", None),
    ("xen-colo-do-checkpoint", None),
    ("query-xen-replication-status", None),
    ("xen-set-replication", {"enable": True, "primary": True, "failover": True}),
    ("nonexistent", None),
]


SCHEMA_CAPABILITIES = {capability.value for capability in MigrationCapability}


def _in_schema(name: str, reply: object) -> object:
    """QEMU 7.2 has capabilities the bundled (5.0-era) schema does not name."""
    if name == "query-migrate-capabilities" and isinstance(reply, list):
        return [e for e in reply if e["capability"] in SCHEMA_CAPABILITIES]
    return reply


def _answers(client: SyncQMPClient) -> list[object]:
    answers: list[object] = []
    for name, arguments in SIDE_BY_SIDE:
        try:
            answer: object = {
                "return": _in_schema(name, client.execute(name, arguments))
            }
        except (GenericError, CommandNotFound) as error:
            answer = {"error": error.to_wire()}
        # QEMU sends a command's events before its reply; a migrate's may follow.
        wait = 0.2 if name == "migrate" else 0.0
        events = [event.name + json.dumps(event.data) for event in client.events(wait)]
        answers.append((name, arguments, answer, events))
    return answers


@pytest.mark.qemu
def test_same_answers_as_qemu(vms: VmLauncher, workdir: Path) -> None:
    qmp = workdir / "qemu.qmp"
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none"]
        + ["-qmp", f"unix:{qmp},server=on,wait=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts_connections(qmp):
            assert time.monotonic() < deadline, "QEMU did not start"
            time.sleep(0.05)
        reference = SyncQMPClient()
        reference.connect(str(qmp), timeout=5.0)
        with reference:
            expected = _answers(reference)
            reference.execute("quit")
        qemu.wait(10)
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
    ours = _answers(vms.start("vm", "-m", "16").connect())
    differences = [
        (mine, theirs)
        for mine, theirs in zip(ours, expected, strict=False)
        if mine != theirs
    ]
    for mine, theirs in differences:
        print("OURS ", mine)
        print("QEMU ", theirs)
    assert not differences
