"""TLS on the migration channel: x509 credentials, authz-simple, and a TLS socket.

The objects mirror QEMU's ``-object tls-creds-x509`` (a directory holding ca-cert.pem,
server-cert.pem/server-key.pem or client-cert.pem/client-key.pem) and
``-object authz-simple`` (one allowed distinguished name). Checks and texts follow QEMU
7.2 as observed: a source with a wrong CA fails with "The certificate hasn't got a known
issuer", a wrong name with "Certificate does not match the hostname NAME", a client whose
name the destination's authz refuses is reported there as "TLS x509 authz check for DN is
denied". As in QEMU, the hostname is checked after the handshake (so a destination sees
the handshake succeed and the stream then end), and a distinguished name is written in
the certificate's own RDN order ("O=qapigen,CN=client").

:class:`TlsChannel` runs the TLS session over ``ssl.MemoryBIO`` rather than an
``SSLSocket``: the migration writes on one thread while the return path reads on
another, and one OpenSSL session must not be driven by two threads at once; here every
use of the session is under a lock and only the raw socket I/O happens outside it.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Literal

from .transport import SocketChannel, TransportError

Endpoint = Literal["client", "server"]

CA_CERT = "ca-cert.pem"
HANDSHAKE_TIMEOUT = 10.0  # a peer that connects and says nothing must not hang accept
_RECV_SIZE = 1 << 18
_SEND_CHUNK = 1 << 18  # plaintext encrypted per lock hold; bounds the BIO's growth


class TlsError(TransportError):
    """A TLS set-up or handshake failure; the text is QEMU's error-desc."""


@dataclasses.dataclass(frozen=True)
class TlsCredsX509:
    """``-object tls-creds-x509,id=ID,dir=DIR,endpoint=...,verify-peer=on|off``."""

    id: str
    dir: str
    endpoint: Endpoint = "client"
    verify_peer: bool = True

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def own_files(self) -> tuple[str, str]:
        """This endpoint's certificate and key file names."""
        return (f"{self.endpoint}-cert.pem", f"{self.endpoint}-key.pem")

    def check_files(self) -> None:
        """QEMU loads the files when the object is created: the CA always, the
        server's certificate and key always, a client's only when present."""
        required = [CA_CERT]
        if self.endpoint == "server":
            required.extend(self.own_files())
        for name in required:
            path = self.path(name)
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise TlsError(
                    f"Unable to access credentials {path}: {exc.strerror}"
                ) from None


@dataclasses.dataclass(frozen=True)
class AuthzSimple:
    """``-object authz-simple,id=ID,identity=DN``: the one client name allowed."""

    id: str
    identity: str


# What ``-object`` can create besides memory backends; looked up by id.
UserObject = TlsCredsX509 | AuthzSimple


def resolve_creds(
    objects: Mapping[str, object], creds_id: str, endpoint: Endpoint
) -> TlsCredsX509:
    """The tls-creds parameter's object, checked for this side (QEMU's texts)."""
    found = objects.get(creds_id)
    if found is None:
        raise TlsError(f"No TLS credentials with id '{creds_id}'")
    if not isinstance(found, TlsCredsX509):
        raise TlsError(f"Object with id '{creds_id}' is not TLS credentials")
    if found.endpoint != endpoint:
        raise TlsError(f"Expected TLS credentials for a {endpoint} endpoint")
    return found


def resolve_authz(objects: Mapping[str, object], authz_id: str) -> AuthzSimple:
    found = objects.get(authz_id)
    if not isinstance(found, AuthzSimple):
        raise TlsError(f"No authorization object with id '{authz_id}'")
    return found


# -- certificate checks ---------------------------------------------------------------

# OpenSSL verify codes and the GnuTLS wording QEMU reports for them.
_VERIFY_TEXT = {
    2: "The certificate hasn't got a known issuer",  # unable to get issuer cert
    9: "The certificate is not yet activated",
    10: "The certificate has expired",
    18: "The certificate hasn't got a known issuer",  # self-signed leaf
    19: "The certificate hasn't got a known issuer",  # self-signed CA in chain
    20: "The certificate hasn't got a known issuer",  # issuer not in the CA file
    23: "The certificate has been revoked",
}
_RDN_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "EMAIL",
    "domainComponent": "DC",
}

PeerCert = Mapping[str, object]


def distinguished_name(cert: PeerCert) -> str:
    """The subject as QEMU prints it: RDNs in certificate order, ',' escaped."""
    parts: list[str] = []
    subject = cert.get("subject", ())
    assert isinstance(subject, tuple)
    for rdn in subject:
        for key, value in rdn:
            text = str(value).replace("\\", "\\\\").replace(",", "\\,")
            parts.append(f"{_RDN_SHORT.get(key, key)}={text}")
    return ",".join(parts)


def _host_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return pattern == host


def hostname_matches(cert: PeerCert, hostname: str) -> bool:
    """RFC 6125 in short: an IP against IP SANs, a name against DNS SANs (a leading
    '*.' wildcard covers one label), the CN only when there are no DNS SANs."""
    sans = cert.get("subjectAltName", ())
    assert isinstance(sans, tuple)
    try:
        address = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        for kind, value in sans:
            if kind == "IP Address":
                try:
                    if ipaddress.ip_address(value.strip()) == address:
                        return True
                except ValueError:
                    continue
        return False
    dns = [value for kind, value in sans if kind == "DNS"]
    if dns:
        return any(_host_matches(name, hostname) for name in dns)
    subject = cert.get("subject", ())
    assert isinstance(subject, tuple)
    return any(
        key == "commonName" and _host_matches(value, hostname)
        for rdn in subject
        for key, value in rdn
    )


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's short reason; an EOF or close alert has none."""
    return str(exc.reason) if exc.reason else "the peer closed the TLS session"


def _handshake_error(exc: ssl.SSLError) -> TlsError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = _VERIFY_TEXT.get(exc.verify_code, "The certificate is not trusted")
        return TlsError(text)
    if exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return TlsError("No certificate was found.")
    return TlsError(f"TLS handshake failed: {exc.reason or exc}")


# -- the channel ----------------------------------------------------------------------


class TlsChannel(SocketChannel):
    """A SocketChannel whose bytes go through a TLS session (see the module doc)."""

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        context: ssl.SSLContext,
        server_side: bool,
        check_peer: Callable[[PeerCert], None] = lambda cert: None,
    ) -> None:
        super().__init__(sock, peer)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=server_side)
        self._tls_lock = threading.Lock()  # the session and its two BIOs
        self._wire_lock = threading.Lock()  # order of records on the socket
        self._check_peer = check_peer
        self._handshake_lock = threading.Lock()
        self._ready = False
        self._failure: TlsError | None = None

    def ensure_handshake(self) -> None:
        """Handshake and check the peer once; later calls repeat its failure.

        The source's channels shake hands on first use, not when connected: a multifd
        source connects all its channels before the destination accepts them.
        """
        with self._handshake_lock:
            if self._failure is not None:
                raise self._failure
            if self._ready:
                return
            try:
                self._check_peer(self.handshake())
            except TlsError as exc:
                self._failure = exc
                raise
            self._ready = True

    def handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> PeerCert:
        """The TLS handshake alone (one thread); the peer's certificate."""
        self.sock.settimeout(timeout)
        try:
            while True:
                try:
                    self._tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                pending = self._out.read()
                if pending:
                    self.sock.sendall(pending)
                if done:
                    break
                data = self.sock.recv(_RECV_SIZE)
                if not data:
                    raise TlsError(
                        "TLS handshake failed: the peer closed the connection"
                    )
                self._in.write(data)
        except ssl.SSLError as exc:
            self._send_pending_alert()
            raise _handshake_error(exc) from None
        except TimeoutError:
            raise TlsError("TLS handshake failed: timed out") from None
        except OSError as exc:
            if isinstance(exc, TlsError):
                raise
            raise TlsError(f"TLS handshake failed: {exc.strerror or exc}") from None
        self.sock.settimeout(None)
        cert = self._tls.getpeercert()
        return dict(cert) if cert else {}

    def _send_pending_alert(self) -> None:
        """Tell the peer why (the alert OpenSSL queued), best effort."""
        try:
            pending = self._out.read()
            if pending:
                self.sock.sendall(pending)
        except OSError:
            pass

    def send(self, data: bytes | memoryview) -> None:
        if not self._ready:
            self.ensure_handshake()
        view = memoryview(data).cast("B")
        with self._wire_lock:
            for start in range(0, view.nbytes, _SEND_CHUNK):
                with self._tls_lock:
                    try:
                        self._tls.write(view[start : start + _SEND_CHUNK])
                    except ssl.SSLError as exc:
                        raise TransportError(
                            f"Cannot write to TLS channel: {_reason(exc)}"
                        ) from None
                    records = self._out.read()
                super().send(records)

    def recv_exact(self, into: memoryview) -> None:
        if not self._ready:
            self.ensure_handshake()
        view = into.cast("B") if into.format != "B" else into
        got = 0
        while got < view.nbytes:
            with self._tls_lock:
                try:
                    result = self._tls.read(view.nbytes - got, view[got:])
                    n = result if isinstance(result, int) else len(result)
                except ssl.SSLWantReadError:
                    n = -1
                except ssl.SSLZeroReturnError:
                    raise EOFError("peer closed the TLS session") from None
                except ssl.SSLError as exc:
                    raise TransportError(
                        f"Cannot read from TLS channel: {_reason(exc)}"
                    ) from None
                replies = self._out.pending
            if replies:
                self._flush_replies()
            if n > 0:
                got += n
                continue
            if n == 0:
                raise EOFError("peer closed the TLS session")
            data = self.receive(functools.partial(self.sock.recv, _RECV_SIZE))
            if not data:
                raise EOFError("peer closed the connection")
            with self._tls_lock:
                self._in.write(data)

    def _flush_replies(self) -> None:
        """Records the session produced while reading (alerts, key updates). Skipped
        when a writer holds the wire: it sends everything queued on its next write."""
        if not self._wire_lock.acquire(blocking=False):
            return
        try:
            with self._tls_lock:
                records = self._out.read()
            if records:
                super().send(records)
        finally:
            self._wire_lock.release()


# -- the two ends ---------------------------------------------------------------------


def client_context(creds: TlsCredsX509) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # checked after the handshake, as QEMU does
    if creds.verify_peer:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(creds.path(CA_CERT))
    else:
        context.verify_mode = ssl.CERT_NONE
    cert, key = (creds.path(name) for name in creds.own_files())
    if os.path.exists(cert) and os.path.exists(key):
        context.load_cert_chain(cert, key)
    return context


def server_context(creds: TlsCredsX509) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = (creds.path(name) for name in creds.own_files())
    context.load_cert_chain(cert, key)
    if creds.verify_peer:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(creds.path(CA_CERT))
    else:
        context.verify_mode = ssl.CERT_NONE
    # No session tickets: records after the handshake that a one-way stream never reads.
    context.num_tickets = 0
    return context


def _load(
    make: Callable[[TlsCredsX509], ssl.SSLContext], creds: TlsCredsX509
) -> ssl.SSLContext:
    try:
        return make(creds)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(
            f"Unable to load TLS credentials from {creds.dir}: {exc.strerror or exc}"
        ) from None


class TlsClient:
    """The source's side: wraps each connected socket, checks the server's name."""

    def __init__(self, creds: TlsCredsX509, hostname: str) -> None:
        self.creds = creds
        self.hostname = hostname
        self.context = _load(client_context, creds)

    def wrap(self, sock: socket.socket, peer: str) -> TlsChannel:
        """The channel shakes hands on first use (see TlsChannel.ensure_handshake)."""
        return TlsChannel(
            sock, peer, self.context, server_side=False, check_peer=self._check
        )

    def _check(self, cert: PeerCert) -> None:
        if self.creds.verify_peer and not hostname_matches(cert, self.hostname):
            raise TlsError(f"Certificate does not match the hostname {self.hostname}")


class TlsServer:
    """The destination's side: wraps each accepted socket; checks the client's name
    against authz-simple when tls-authz is set (and the client sent a certificate)."""

    def __init__(self, creds: TlsCredsX509, authz: AuthzSimple | None) -> None:
        self.creds = creds
        self.authz = authz
        self.context = _load(server_context, creds)

    def wrap(self, sock: socket.socket, peer: str) -> TlsChannel:
        """Shakes hands at once, so that a refused client never reaches the loader."""
        channel = TlsChannel(
            sock, peer, self.context, server_side=True, check_peer=self._check
        )
        try:
            channel.ensure_handshake()
        except BaseException:
            channel.close()
            raise
        return channel

    def _check(self, cert: PeerCert) -> None:
        if self.authz is not None and cert:
            name = distinguished_name(cert)
            if name != self.authz.identity:
                raise TlsError(f"TLS x509 authz check for {name} is denied")


class PendingTlsError:
    """A TLS set-up error QEMU reports once the connection exists, not at migrate."""

    def __init__(self, error: TlsError) -> None:
        self.error = error

    def wrap(self, sock: socket.socket, peer: str) -> TlsChannel:
        del peer
        sock.close()
        raise self.error


TlsWrapper = TlsClient | TlsServer | PendingTlsError
