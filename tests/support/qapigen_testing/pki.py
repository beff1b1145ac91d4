"""Test certificates for TLS on the migration channel, made at run time with the
openssl command (no key is ever committed).

A "good" CA that signed a server certificate for localhost/127.0.0.1 and a client
certificate "O=qapigen,CN=client", a "rogue" CA with certificates of the same names,
and a "stranger" that trusts the good CA but presents a certificate the rogue one
signed. Each folder is laid out as QEMU's tls-creds-x509 dir= expects.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> None:
    directory.mkdir(parents=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", "ca-key.pem", "-out", "ca-cert.pem", "-days", "2",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


def _issue(ca: Path, out: Path, who: str, subject: str, extensions: str) -> None:
    """``out``/WHO-cert.pem and WHO-key.pem, signed by the CA in ``ca``."""
    (out / f"{who}.ext").write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{who}-key.pem", "-out", f"{who}.csr", "-subj", subject,
        cwd=out,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{who}.csr", "-CA", str(ca / "ca-cert.pem"),
        "-CAkey", str(ca / "ca-key.pem"), "-CAcreateserial", "-days", "2",
        "-out", f"{who}-cert.pem", "-extfile", f"{who}.ext",
        cwd=out,
    )  # fmt: skip


SERVER_EXT = (
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    "keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"
)
CLIENT_EXT = (
    "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n"
    "basicConstraints=CA:FALSE\n"
)


class Pki:
    """Credential directories laid out as QEMU's tls-creds-x509 dir= expects."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for ca in ("good", "rogue"):
            _make_ca(root / ca, f"{ca} CA")
            _issue(root / ca, root / ca, "server", "/O=qapigen/CN=server", SERVER_EXT)
            _issue(root / ca, root / ca, "client", "/O=qapigen/CN=client", CLIENT_EXT)
        # A client that trusts the good CA but whose own certificate the rogue CA
        # signed: the destination must refuse it.
        stranger = root / "stranger"
        stranger.mkdir()
        shutil.copy(root / "good" / "ca-cert.pem", stranger)
        for name in ("client-cert.pem", "client-key.pem"):
            shutil.copy(root / "rogue" / name, stranger)

    def dir(self, name: str) -> str:
        return str(self.root / name)
