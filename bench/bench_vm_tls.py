"""What TLS costs a migration: the same random RAM over loopback TCP, plain and TLS.

Both engines run in this process (one interpreter, so the figures are a lower bound of
what two processes reach); certificates are made with the openssl command in a
temporary directory.

    python bench/bench_vm_tls.py [--size-mib 256] [--multifd 4]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from qapigen_vm import GuestRam, MigrationEngine
from qapigen_vm.tls import TlsCredsX509

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_credentials(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""

    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], cwd=directory, check=True, capture_output=True
        )

    openssl("req", "-x509", *KEY, "-keyout", "ca-key.pem", "-out", "ca-cert.pem",
            "-days", "1", "-subj", "/CN=bench CA")  # fmt: skip
    for who, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (directory / f"{who}.ext").write_text(ext)
        openssl("req", *KEY, "-keyout", f"{who}-key.pem", "-out", f"{who}.csr",
                "-subj", f"/CN={who}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca-cert.pem",
                "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "1",
                "-out", f"{who}-cert.pem", "-extfile", f"{who}.ext")  # fmt: skip


def migrate_once(size: int, creds_dir: str | None, multifd: int) -> float:
    """Seconds from migrate to completed; checks the memory arrived intact."""
    src_ram = GuestRam(size)
    src_ram.fill_random(1)
    src = MigrationEngine(src_ram)
    dst = MigrationEngine(GuestRam(size), incoming="defer", start_paused=True)
    try:
        for engine, endpoint in ((src, "client"), (dst, "server")):
            if creds_dir is not None:
                engine.objects["tls0"] = TlsCredsX509(
                    "tls0", creds_dir, "server" if endpoint == "server" else "client"
                )
                engine.migrate_set_parameters({"tls-creds": "tls0"})
            if multifd:
                engine.migrate_set_capabilities([("multifd", True)])
                engine.migrate_set_parameters({"multifd-channels": multifd})
        dst.migrate_incoming("tcp:127.0.0.1:0")
        port = dst.listening_port()
        assert port
        start = time.perf_counter()
        src.migrate(f"tcp:127.0.0.1:{port}")
        while True:
            status = src.query_migrate().status
            if status is not None and status.value in ("completed", "failed"):
                break
            time.sleep(0.002)
        elapsed = time.perf_counter() - start
        assert status.value == "completed", src.query_migrate().error_desc
        assert bytes(src_ram.pages[-1]) == bytes(dst.ram.pages[-1])
        return elapsed
    finally:
        src.close()
        dst.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--multifd", type=int, default=0, help="channels (0: off)")
    args = parser.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(prefix="qvm-tls-") as name:
        make_credentials(Path(name))
        plain = migrate_once(size, None, args.multifd)
        tls = migrate_once(size, name, args.multifd)
    mode = f"multifd x{args.multifd}" if args.multifd else "one channel"
    for label, seconds in (("plain", plain), ("tls", tls)):
        mbps = size * 8 / seconds / 1e6
        print(
            f"{label:5} {args.size_mib} MiB, {mode}: {seconds:.2f} s, {mbps:,.0f} mbps"
        )
    print(f"tls/plain time ratio: {tls / plain:.2f}")


if __name__ == "__main__":
    main()
