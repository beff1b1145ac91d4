"""TLS on the migration channel: tls-creds, tls-hostname, tls-authz.

The certificates are made at run time with the openssl command into a temporary
directory (qapigen_testing.pki; no key is ever committed): a "good" CA that signed a server certificate for
localhost/127.0.0.1 and a client certificate "O=qapigen,CN=client", and a "rogue" CA
with certificates of the same names. Engines run in-process (as test_vm_engine) and as
qapigen-vm processes given ``-object tls-creds-x509`` on the command line; the last
tests put two real QEMU 7.2 processes through the same failures to pin the texts.

A relay between source and destination records every byte of every connection, both
ways, to show nothing travels in clear: no stream or multifd magic, no page content.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qapigen_testing.pki import Pki
from qapigen_testing.vm_engine import MIB, Factory, Vm, same_memory
from qapigen_vm import VmCommandError
from qapigen_vm.multifd import HELLO_MAGIC
from qapigen_vm.stream import MAGIC
from qapigen_vm.tls import (
    AuthzSimple,
    Endpoint,
    TlsCredsX509,
    distinguished_name,
    hostname_matches,
)

pytestmark = pytest.mark.timeout(60)

CLIENT_DN = "O=qapigen,CN=client"
ISSUER_UNKNOWN = "The certificate hasn't got a known issuer"


# -- a relay that records everything --------------------------------------------------


class Recorder:
    """A TCP relay to ``port`` keeping every byte of every connection, both ways."""

    def __init__(self, port: str) -> None:
        self.target = ("127.0.0.1", int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.chunks: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                with self._lock:
                    self.chunks.append(data)
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in (a, b):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def recorded(self) -> bytes:
        """Everything seen so far (chunks of several connections, in arrival order:
        enough for looking for a magic or a page, which each fit in one read)."""
        with self._lock:
            return b"".join(self.chunks)

    def close(self) -> None:
        self.server.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            sock.close()


def assert_nothing_in_clear(recorder: Recorder, src: Vm) -> None:
    seen = recorder.recorded()
    assert MAGIC not in seen and HELLO_MAGIC not in seen
    pages = src.ram.pages
    for index in range(200, pages.shape[0], max(1, pages.shape[0] // 64)):
        assert pages[index].tobytes()[:64] not in seen, f"page {index} in clear"


# -- in-process engines -----------------------------------------------------------------


def tls_pair(
    vms: Factory,
    pki: Pki,
    *,
    client_dir: str = "good",
    server_dir: str = "good",
    identity: str | None = None,
    multifd: bool = False,
    uri: str = "tcp:127.0.0.1:0",
) -> tuple[Vm, Vm]:
    """A source and a listening destination with tls-creds (and tls-authz) set."""
    src = vms.source(4 * MIB)
    dst = vms.destination(4 * MIB, uri="defer")
    src.engine.objects["tls0"] = TlsCredsX509("tls0", pki.dir(client_dir), "client")
    dst.engine.objects["tls0"] = TlsCredsX509("tls0", pki.dir(server_dir), "server")
    for vm in (src, dst):
        vm.engine.migrate_set_parameters({"tls-creds": "tls0"})
        if multifd:
            vm.engine.migrate_set_capabilities([("multifd", True)])
    if identity is not None:
        dst.engine.objects["auth0"] = AuthzSimple("auth0", identity)
        dst.engine.migrate_set_parameters({"tls-authz": "auth0"})
    dst.engine.migrate_incoming(uri)
    return src, dst


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def assert_source_failed_running(src: Vm, error_desc: str | None) -> str:
    info = src.wait("failed", "completed")
    assert info.status is not None and info.status.value == "failed"
    assert info.error_desc
    if error_desc is not None:
        assert info.error_desc == error_desc
    assert src.engine.query_status()["status"] == "running"
    return str(info.error_desc)


@pytest.mark.parametrize("mode", ["tcp", "unix", "multifd"])
def test_memory_identical_after_a_tls_migration(
    vms: Factory, pki: Pki, mode: str
) -> None:
    uri = f"unix:{vms.tmp_path}/mig.sock" if mode == "unix" else "tcp:127.0.0.1:0"
    src, dst = tls_pair(
        vms, pki, multifd=mode == "multifd", uri=uri, identity=CLIENT_DN
    )
    if mode == "unix":
        # No host in a unix: URI: the name to check comes from tls-hostname.
        src.engine.migrate_set_parameters({"tls-hostname": "localhost"})
        src.engine.migrate(uri)
        recorder = None
    else:
        recorder = Recorder(dst.port())
        src.engine.migrate(f"tcp:127.0.0.1:{recorder.port}")
    info = src.wait("completed", "failed")
    assert info.status is not None and info.status.value == "completed", info
    dst.wait("completed")
    assert same_memory(src.ram, dst.ram)
    assert dst.engine.tls_rejections == []
    if recorder is not None:
        assert recorder.connections == (3 if mode == "multifd" else 1)  # 2 channels
        assert len(recorder.recorded()) > src.ram.size // 2  # random pages: all sent
        assert_nothing_in_clear(recorder, src)
        recorder.close()


def test_the_recorder_sees_a_plain_migration_in_clear(vms: Factory) -> None:
    """The control for assert_nothing_in_clear: without TLS it does find the magic."""
    src = vms.source(4 * MIB)
    dst = vms.destination(4 * MIB)
    recorder = Recorder(dst.port())
    src.engine.migrate(f"tcp:127.0.0.1:{recorder.port}")
    src.wait("completed")
    with pytest.raises(AssertionError):
        assert_nothing_in_clear(recorder, src)
    recorder.close()


def test_destination_with_an_unknown_ca_fails_the_source(
    vms: Factory, pki: Pki
) -> None:
    src, dst = tls_pair(vms, pki, client_dir="rogue")
    recorder = Recorder(dst.port())
    src.engine.migrate(f"tcp:127.0.0.1:{recorder.port}")
    assert_source_failed_running(src, ISSUER_UNKNOWN)
    # QEMU 7.2's destination reports the failed handshake and keeps listening.
    wait_for(lambda: dst.engine.tls_rejections)
    assert dst.engine.query_migrate().status is None
    assert dst.engine.query_status()["status"] == "inmigrate"
    assert_nothing_in_clear(recorder, src)
    recorder.close()
    # ... so a source with the right credentials can still migrate to it.
    good = vms.source(4 * MIB, seed=5)
    good.engine.objects["c"] = TlsCredsX509("c", pki.dir("good"), "client")
    good.engine.migrate_set_parameters({"tls-creds": "c"})
    good.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    assert good.wait("completed", "failed").status is not None
    dst.wait("completed")
    assert same_memory(good.ram, dst.ram)


def test_wrong_hostname_fails_both_sides(vms: Factory, pki: Pki) -> None:
    src, dst = tls_pair(vms, pki)
    src.engine.migrate_set_parameters({"tls-hostname": "wrong.example"})
    recorder = Recorder(dst.port())
    src.engine.migrate(f"tcp:127.0.0.1:{recorder.port}")
    assert_source_failed_running(
        src, "Certificate does not match the hostname wrong.example"
    )
    # The name is checked after the handshake (as QEMU does): the destination saw a
    # good handshake, then the stream ended; it fails and the process would exit 1.
    dst.wait("failed")
    assert dst.wait_exit()
    assert_nothing_in_clear(recorder, src)
    recorder.close()


def test_the_uri_host_is_the_name_checked(vms: Factory, pki: Pki) -> None:
    """tcp:localhost:PORT checks "localhost" (a DNS name of the certificate)."""
    src, dst = tls_pair(vms, pki)
    src.engine.migrate(f"tcp:localhost:{dst.port()}")
    assert src.wait("completed", "failed").error_desc is None
    dst.wait("completed")


@pytest.mark.parametrize(
    ("identity", "refused"),
    [("O=qapigen,CN=someone", True), ("CN=client,O=qapigen", True), (CLIENT_DN, False)],
)
def test_authz_identity(vms: Factory, pki: Pki, identity: str, refused: bool) -> None:
    src, dst = tls_pair(vms, pki, identity=identity)
    recorder = Recorder(dst.port())
    src.engine.migrate(f"tcp:127.0.0.1:{recorder.port}")
    if not refused:
        src.wait("completed")
        dst.wait("completed")
        recorder.close()
        return
    # QEMU 7.2 writes the DN in certificate order: "O=qapigen,CN=client".
    assert_source_failed_running(src, None)
    wait_for(lambda: dst.engine.tls_rejections)
    assert (
        dst.engine.tls_rejections[0]
        == f"TLS x509 authz check for {CLIENT_DN} is denied"
    )
    assert dst.engine.query_migrate().status is None  # still listening
    assert_nothing_in_clear(recorder, src)
    recorder.close()


def test_client_certificate_from_an_unknown_ca_is_refused(
    vms: Factory, pki: Pki
) -> None:
    src, dst = tls_pair(vms, pki, client_dir="stranger")
    recorder = Recorder(dst.port())
    src.engine.migrate(f"tcp:127.0.0.1:{recorder.port}")
    assert_source_failed_running(src, None)
    wait_for(lambda: dst.engine.tls_rejections)
    assert dst.engine.tls_rejections[0] == ISSUER_UNKNOWN
    assert_nothing_in_clear(recorder, src)
    recorder.close()


def test_verify_peer_off_lets_a_certificate_less_client_in(
    vms: Factory, pki: Pki, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(pki.root / "good" / "ca-cert.pem", bare)  # trusts, presents nothing
    src, dst = tls_pair(vms, pki, client_dir=str(bare))
    dst.engine.objects["tls0"] = TlsCredsX509(
        "tls0", pki.dir("good"), "server", verify_peer=False
    )
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    assert src.wait("completed", "failed").error_desc is None
    dst.wait("completed")
    assert same_memory(src.ram, dst.ram)


def test_certificate_less_client_refused_with_verify_peer(
    vms: Factory, pki: Pki, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(pki.root / "good" / "ca-cert.pem", bare)
    src, dst = tls_pair(vms, pki, client_dir=str(bare))
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    assert_source_failed_running(src, None)
    wait_for(lambda: dst.engine.tls_rejections)
    assert dst.engine.tls_rejections[0] == "No certificate was found."


# -- parameters and object look-up ----------------------------------------------------


def test_tls_parameters_are_str_or_null(vms: Factory) -> None:
    vm = vms.vm()
    for name in ("tls-creds", "tls-hostname", "tls-authz"):
        with pytest.raises(VmCommandError) as error:
            vm.engine.migrate_set_parameters({name: 5})
        assert error.value.desc == (
            f"Invalid parameter type for '{name}', expected: StrOrNull"
        )
    vm.engine.migrate_set_parameters({"tls-creds": "x", "tls-authz": "y"})
    vm.engine.migrate_set_parameters(
        {"tls-creds": None, "tls-hostname": None, "tls-authz": None}
    )
    wire = vm.engine.query_migrate_parameters().to_wire()
    assert (wire["tls-creds"], wire["tls-hostname"], wire["tls-authz"]) == ("", "", "")


@pytest.mark.parametrize(
    ("kind", "creds", "uri", "error_desc"),
    [
        ("client", "nope", "tcp", "No TLS credentials with id 'nope'"),
        ("authz", "obj", "tcp", "Object with id 'obj' is not TLS credentials"),
        ("server", "obj", "tcp", "Expected TLS credentials for a client endpoint"),
        ("client", "obj", "unix", "No hostname available for TLS"),
    ],
)  # fmt: skip
def test_source_credential_errors_fail_the_migration_not_the_command(
    vms: Factory,
    pki: Pki,
    kind: str,
    creds: str,
    uri: str,
    error_desc: str,
) -> None:
    """As QEMU 7.2: migrate returns {}, the migration then fails with the reason."""
    plain_uri = "tcp:127.0.0.1:0" if uri == "tcp" else f"unix:{vms.tmp_path}/m.sock"
    dst = vms.destination(4 * MIB, uri=plain_uri)
    src = vms.source(4 * MIB)
    if kind == "authz":
        src.engine.objects["obj"] = AuthzSimple("obj", CLIENT_DN)
    else:
        endpoint: Endpoint = "server" if kind == "server" else "client"
        src.engine.objects["obj"] = TlsCredsX509("obj", pki.dir("good"), endpoint)
    src.engine.migrate_set_parameters({"tls-creds": creds})
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}" if uri == "tcp" else plain_uri)
    assert_source_failed_running(src, error_desc)


def test_destination_credential_errors_are_reported_and_it_keeps_listening(
    vms: Factory, pki: Pki
) -> None:
    src, dst = tls_pair(vms, pki)
    dst.engine.objects["tls0"] = TlsCredsX509("tls0", pki.dir("good"), "client")
    dst.engine.objects["auth0"] = AuthzSimple("auth0", CLIENT_DN)
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    assert_source_failed_running(src, None)
    wait_for(lambda: dst.engine.tls_rejections)
    assert dst.engine.tls_rejections[0] == (
        "Expected TLS credentials for a server endpoint"
    )
    assert dst.engine.query_migrate().socket_address  # still listening


def test_exec_uri_cannot_carry_tls(vms: Factory, pki: Pki) -> None:
    src = vms.source(4 * MIB)
    src.engine.objects["c"] = TlsCredsX509("c", pki.dir("good"), "client")
    src.engine.migrate_set_parameters({"tls-creds": "c", "tls-hostname": "localhost"})
    src.engine.migrate("exec:cat > /dev/null")
    error = assert_source_failed_running(src, None)
    assert "TLS needs a socket" in error


def test_name_helpers(pki: Pki) -> None:
    """The DN and hostname rules on a parsed certificate (ssl's decoder)."""
    import ssl

    cert = ssl._ssl._test_decode_cert(  # type: ignore[attr-defined]
        str(pki.root / "good" / "server-cert.pem")
    )
    assert distinguished_name(cert) == "O=qapigen,CN=server"
    assert hostname_matches(cert, "localhost")
    assert hostname_matches(cert, "LOCALHOST.")
    assert hostname_matches(cert, "127.0.0.1")
    assert not hostname_matches(cert, "server")  # the CN is ignored when SANs exist
    assert not hostname_matches(cert, "127.0.0.2")
    wildcard = {"subjectAltName": (("DNS", "*.example.com"),)}
    assert hostname_matches(wildcard, "a.example.com")
    assert not hostname_matches(wildcard, "a.b.example.com")
    assert not hostname_matches(wildcard, "example.com")
    cn_only = {"subject": ((("commonName", "host.example"),),)}
    assert hostname_matches(cn_only, "host.example")


# -- qapigen-vm processes ---------------------------------------------------------------


class Process:
    """A qapigen-vm process with a QMP unix socket, driven with raw JSON."""

    def __init__(self, directory: Path, name: str, *args: str) -> None:
        self.path = str(directory / f"{name}.qmp")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qapigen_vm.main",
                "-qmp",
                f"unix:{self.path},server=on,wait=off",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.sock: socket.socket | None = None
        self.reader: object = None

    def connect(self) -> None:
        deadline = time.monotonic() + 15
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(self.path)
                break
            except OSError:
                sock.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"qapigen-vm did not start: {self.stderr()}"
                    ) from None
                time.sleep(0.05)
        self.sock = sock
        self.file = sock.makefile("rw")
        json.loads(self.file.readline())  # greeting
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments: object) -> dict[str, object]:
        self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            reply: dict[str, object] = json.loads(self.file.readline())
            if "event" not in reply:
                return reply

    def wait_status(self, *wanted: str, timeout: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.execute("query-migrate")["return"]
            assert isinstance(info, dict)
            if info.get("status") in wanted:
                return info
            assert time.monotonic() < deadline, f"still {info.get('status')}"
            time.sleep(0.05)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def _start(started: list[Process], directory: Path, name: str, *args: str) -> Process:
    process = Process(directory, name, *args)
    started.append(process)
    process.connect()
    return process


def test_two_processes_migrate_over_tls(
    processes: list[Process], pki: Pki, tmp_path: Path
) -> None:
    rams = {name: tmp_path / f"{name}.ram" for name in ("src", "dst")}
    rams["src"].write_bytes(os.urandom(16 * MIB))
    rams["dst"].write_bytes(b"")

    def machine(name: str, endpoint: str) -> list[str]:
        return [
            "-object",
            f"memory-backend-file,id=mem,size=16M,mem-path={rams[name]},share=on",
            "-machine",
            "memory-backend=mem",
            "-object",
            f"tls-creds-x509,id=tls0,dir={pki.dir('good')},endpoint={endpoint}",
        ]

    dst = _start(
        processes,
        tmp_path,
        "dst",
        *machine("dst", "server"),
        "-object",
        "authz-simple,id=auth0,identity=O=qapigen,,CN=client",
        "-incoming",
        "defer",
    )
    src = _start(processes, tmp_path, "src", *machine("src", "client"))
    assert dst.execute(
        "migrate-set-parameters", **{"tls-creds": "tls0", "tls-authz": "auth0"}
    ) == {"return": {}}
    dst.execute("migrate-incoming", uri="tcp:127.0.0.1:0")
    port = dst.execute("query-migrate")["return"]["socket-address"][0]["port"]  # type: ignore[index]
    src.execute("migrate-set-parameters", **{"tls-creds": "tls0"})
    recorder = Recorder(str(port))
    assert src.execute("migrate", uri=f"tcp:127.0.0.1:{recorder.port}") == {
        "return": {}
    }
    assert src.wait_status("completed", "failed")["status"] == "completed"
    dst.wait_status("completed")
    assert rams["src"].read_bytes() == rams["dst"].read_bytes()
    seen = recorder.recorded()
    assert len(seen) > 8 * MIB and MAGIC not in seen
    assert rams["src"].read_bytes()[4096 * 7 : 4096 * 7 + 64] not in seen
    recorder.close()


def test_processes_with_a_wrong_ca(
    processes: list[Process], pki: Pki, tmp_path: Path
) -> None:
    creds = "tls-creds-x509,id=tls0,dir={},endpoint={}"
    dst = _start(
        processes, tmp_path, "dst", "-m", "16", "-incoming", "defer",
        "-object", creds.format(pki.dir("good"), "server"),
    )  # fmt: skip
    src = _start(
        processes, tmp_path, "src", "-m", "16",
        "-object", creds.format(pki.dir("rogue"), "client"),
    )  # fmt: skip
    dst.execute("migrate-set-parameters", **{"tls-creds": "tls0"})
    dst.execute("migrate-incoming", uri="tcp:127.0.0.1:0")
    port = dst.execute("query-migrate")["return"]["socket-address"][0]["port"]  # type: ignore[index]
    src.execute("migrate-set-parameters", **{"tls-creds": "tls0"})
    src.execute("migrate", uri=f"tcp:127.0.0.1:{port}")
    info = src.wait_status("failed", "completed")
    assert info == {"status": "failed", "error-desc": ISSUER_UNKNOWN}
    assert src.execute("query-status")["return"]["status"] == "running"  # type: ignore[index]
    time.sleep(0.3)
    assert dst.proc.poll() is None  # still waiting for a source, as QEMU 7.2
    assert "socket-address" in dst.execute("query-migrate")["return"]  # type: ignore[operator]
    assert "qapigen-vm: " in dst.stderr()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tls-creds-x509,dir={good},endpoint=server",
         "qapigen-vm: -object tls-creds-x509,dir={good},endpoint=server: "
         "Parameter 'id' is missing"),
        ("tls-creds-x509,id=t0,endpoint=server", "qapigen-vm: Missing 'dir' property value"),
        ("tls-creds-x509,id=t0,dir={good},endpoint=bogus",
         "qapigen-vm: -object tls-creds-x509,id=t0,dir={good},endpoint=bogus: "
         "Parameter 'endpoint' does not accept value 'bogus'"),
        ("tls-creds-x509,id=t0,dir={good},verify-peer=maybe",
         "qapigen-vm: -object tls-creds-x509,id=t0,dir={good},verify-peer=maybe: "
         "Parameter 'verify-peer' expects 'on' or 'off'"),
        ("tls-creds-x509,id=t0,dir={good},foo=1",
         "qapigen-vm: -object tls-creds-x509,id=t0,dir={good},foo=1: "
         "Invalid parameter 'foo'"),
        ("tls-creds-x509,id=t0,dir={missing},endpoint=server",
         "qapigen-vm: Unable to access credentials {missing}/ca-cert.pem: "
         "No such file or directory"),
        ("authz-simple,id=a0", "qapigen-vm: -object authz-simple,id=a0: "
         "Parameter 'identity' is missing"),
        ("authz-simple,identity=x", "qapigen-vm: -object authz-simple,identity=x: "
         "Parameter 'id' is missing"),
        ("bogus-type,id=x", "qapigen-vm: -object bogus-type,id=x: "
         "Parameter 'qom-type' does not accept value 'bogus-type'"),
    ],
)  # fmt: skip
def test_object_errors_on_the_command_line(pki: Pki, value: str, message: str) -> None:
    """The texts qemu-system-x86_64 7.2 prints for the same -object (observed)."""
    names = {"good": pki.dir("good"), "missing": str(pki.root / "missing")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qapigen_vm.main",
            "-object",
            value.format(**names),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == message.format(**names)


def test_duplicate_object_id(pki: Pki) -> None:
    creds = f"tls-creds-x509,id=x,dir={pki.dir('good')}"
    result = subprocess.run(
        [sys.executable, "-m", "qapigen_vm.main", "-object", creds,
         "-object", "authz-simple,id=x,identity=CN=a"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "attempt to add duplicate property 'x' to object" in result.stderr


# -- real QEMU 7.2: the texts above come from it -----------------------------------------


class Qemu(Process):
    def __init__(self, directory: Path, name: str, *args: str) -> None:
        self.path = str(directory / f"{name}.qmp")
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-M", "none", "-display", "none", "-qmp",
             f"unix:{self.path},server=on,wait=off", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.sock = None


def _qemu_pair(
    started: list[Process], directory: Path, pki: Pki, client_dir: str, authz: str
) -> tuple[Process, Process]:
    creds = "tls-creds-x509,id=tls0,dir={},endpoint={}"
    tag = len(started)  # each pair its own QMP sockets
    dst = Qemu(directory, f"dst{tag}", "-incoming", "defer",
               "-object", creds.format(pki.dir("good"), "server"),
               "-object", "authz-simple,id=auth0,identity=" + authz.replace(",", ",,"))  # fmt: skip
    src = Qemu(
        directory, f"src{tag}", "-object", creds.format(pki.dir(client_dir), "client")
    )
    started += [dst, src]
    dst.connect()
    src.connect()
    dst.execute("migrate-set-parameters", **{"tls-creds": "tls0", "tls-authz": "auth0"})
    with socket.socket() as probe:  # a free port for QEMU's listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dst.execute("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
    src.execute("migrate-set-parameters", **{"tls-creds": "tls0"})
    src.port = port  # type: ignore[attr-defined]
    return src, dst


@pytest.mark.qemu
def test_qemu_texts(processes: list[Process], pki: Pki, tmp_path: Path) -> None:
    src, dst = _qemu_pair(processes, tmp_path, pki, "rogue", CLIENT_DN)
    src.execute("migrate", uri=f"tcp:127.0.0.1:{src.port}")  # type: ignore[attr-defined]
    assert src.wait_status("failed") == {
        "status": "failed",
        "error-desc": ISSUER_UNKNOWN,
    }

    src, dst = _qemu_pair(processes, tmp_path, pki, "good", CLIENT_DN)
    src.execute("migrate-set-parameters", **{"tls-hostname": "wrong.example"})
    src.execute("migrate", uri=f"tcp:127.0.0.1:{src.port}")  # type: ignore[attr-defined]
    assert src.wait_status("failed")["error-desc"] == (
        "Certificate does not match the hostname wrong.example"
    )
    assert dst.proc.wait(10) == 1  # handshake fine, then the stream ended

    src, dst = _qemu_pair(processes, tmp_path, pki, "good", "O=qapigen,CN=nobody")
    src.execute("migrate", uri=f"tcp:127.0.0.1:{src.port}")  # type: ignore[attr-defined]
    src.wait_status("failed", "completed")
    time.sleep(0.5)
    assert f"TLS x509 authz check for {CLIENT_DN} is denied" in dst.stderr()

    src = Qemu(tmp_path, "lone", "-object",
               f"tls-creds-x509,id=tls0,dir={pki.dir('good')},endpoint=server")  # fmt: skip
    processes.append(src)
    src.connect()
    src.execute("migrate-set-parameters", **{"tls-creds": "tls0"})
    with socket.create_server(("127.0.0.1", 0)) as listener:
        src.execute("migrate", uri=f"tcp:127.0.0.1:{listener.getsockname()[1]}")
        assert src.wait_status("failed")["error-desc"] == (
            "Expected TLS credentials for a client endpoint"
        )
