"""Test helpers: a running certificate server, CSRs, and small HTTPS clients."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import http.client
import socket
import ssl
from collections.abc import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modules.certs import ca as ca_mod
from modules.certs import tls
from modules.certs.https import CertHTTPSServer
from modules.certs.server import CertService
from modules.certs.settings import CertSettings


@dataclasses.dataclass
class RunningServer:
    ca: ca_mod.KeyPair
    service: CertService
    server: CertHTTPSServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def running_server(ca: ca_mod.KeyPair, **limits: object) -> Iterator[RunningServer]:
    """A certificate server for `ca` on 127.0.0.1, any free port."""
    now = datetime.datetime.now(datetime.UTC)
    settings = CertSettings(address="127.0.0.1", port=0, **limits)  # type: ignore[arg-type]
    server_pair = ca_mod.generate_server_cert(ca, ips=["127.0.0.1"], dns_names=[], now=now)
    context = tls.server_context(
        ca_pem=ca.cert_pem,
        cert=server_pair.cert_pem,
        key=server_pair.key_pem,
        require_client_cert=False,
    )
    service = CertService(ca, validity_days=settings.validity_days, max_body=settings.max_body)
    server = CertHTTPSServer(service, context, settings)
    server.start()
    try:
        yield RunningServer(ca, service, server)
    finally:
        server.stop()


def csr(
    key: ec.EllipticCurvePrivateKey,
    *,
    cn: str = "system:node:edge-1",
    org: str = "system:nodes",
    sans: list[str] | None = None,
    server_auth: bool = False,
) -> bytes:
    """A DER CSR with whatever subject, SANs and usages a (hostile) client wants."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    if server_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def get(
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One HTTPS request; (status, body)."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context or tls.unverified_context(), timeout=2
    )
    try:
        conn.request("GET", path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(1 << 20)
    finally:
        conn.close()


def raw_tls(port: int, timeout: float = 2.0) -> ssl.SSLSocket:
    """A TLS connection on which the test writes bytes by hand."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return tls.unverified_context().wrap_socket(sock)


def read_all(sock: socket.socket, limit: int = 1 << 16) -> bytes:
    chunks: list[bytes] = []
    while sum(map(len, chunks)) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
