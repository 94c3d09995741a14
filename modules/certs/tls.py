"""TLS contexts for cloudhub's websocket and the edge, and node identity of a TLS peer.

Inputs: PEM bytes (the cloud keeps its CA and server certificate in Secrets, see
`modules.certs.ca`) or files (the edge's, see `modules.certs.enroll`). Outputs:
`ssl.SSLContext`s with KubeEdge's settings (cloudhub/servers/server.go: TLS 1.2
minimum, TLS 1.2 suites ECDHE-ECDSA AES-GCM and ChaCha20 only, client certificate
required and verified against the CA) and, for cloudhub, `check_peer`: whether the
certificate a websocket peer presented names the node its ``node_id`` header claims.
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509

from modules.certs import ca as ca_mod
from modules.certs import identity

# TLS 1.2 suites of cloudhub (TLS 1.3 suites are not configurable and all acceptable).
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ]
)

PemOrPath = bytes | Path


def server_context(
    *, ca_pem: bytes, cert: PemOrPath, key: PemOrPath, require_client_cert: bool = True
) -> ssl.SSLContext:
    """The server side: cloudhub's websocket (client certificate required, the default)
    or the certificate server (``require_client_cert=False``: asked for, verified if sent).

    Raises:
        ssl.SSLError: the certificate, key or CA is unusable.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    # No TLS 1.3 session tickets (OpenSSL sends two after each handshake): edgecore's
    # client keeps no session cache and so never resumes, and making them cost a third of
    # the server's handshake time. A resumed session would also skip the certificate checks.
    context.num_tickets = 0
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    load_chain(context, cert, key)
    return context


def client_context(
    *, ca_pem: bytes, cert: PemOrPath | None = None, key: PemOrPath | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:  # fmt: skip
    """The edge side: trusts only the cloud CA, checks the server's name by default, and
    presents the node certificate when given.

    Raises:
        ssl.SSLError: the certificate, key or CA is unusable.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context)
    context.check_hostname = check_hostname
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    if cert is not None and key is not None:
        load_chain(context, cert, key)
    return context


def unverified_context() -> ssl.SSLContext:
    """For ``GET /ca.crt`` only: the edge trusts nothing yet and checks the CA it gets
    against the token's hash instead (edgehub/certificate/certmanager.go)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)


def load_chain(context: ssl.SSLContext, cert: PemOrPath, key: PemOrPath) -> None:
    """Load a certificate and key; in-memory PEM goes through owner-only temporary
    files that are removed at once (ssl loads chains only from files)."""
    if isinstance(cert, Path) and isinstance(key, Path):
        context.load_cert_chain(cert, key)
        return
    with tempfile.TemporaryDirectory(prefix="beehive-tls-") as tmp:  # mode 0700
        paths = []
        for name, value in (("cert.pem", cert), ("key.pem", key)):
            data = value.read_bytes() if isinstance(value, Path) else value
            path = os.path.join(tmp, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])


def node_from_certificate(cert: x509.Certificate | bytes) -> str:
    """The node a certificate (object or DER) was issued to.

    Raises:
        ValueError: not a node certificate (CN ``system:node:<node>``, O ``system:nodes``).
    """
    if isinstance(cert, bytes):
        cert = x509.load_der_x509_certificate(cert)
    return identity.node_from_certificate(cert)


def _node_from_peer_dict(peer: Mapping[str, Any]) -> str:
    """The node of `ssl.SSLSocket.getpeercert()`'s dict form (already verified by TLS)."""
    attributes = [pair for rdn in peer.get("subject", ()) for pair in rdn]
    cns = [value for key, value in attributes if key == "commonName"]
    orgs = [value for key, value in attributes if key == "organizationName"]
    name = x509.Name(
        [x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, o) for o in orgs]
        + [x509.NameAttribute(x509.NameOID.COMMON_NAME, c) for c in cns]
    )
    return identity.node_from_name(name)


def check_peer(
    peer: bytes | Mapping[str, Any] | None, node_id: str, *,
    ca: x509.Certificate | None = None, now: datetime.datetime | None = None,
) -> str | None:  # fmt: skip
    """Why the TLS peer may not act as `node_id`, or None when it may.

    `peer` is ``getpeercert(binary_form=True)`` (DER) or ``getpeercert()`` (dict).
    With DER and `ca`, the signature and validity are checked again here (the server
    context has done so already when it required the certificate).
    """
    if not peer:
        return "no client certificate was presented"
    try:
        if isinstance(peer, bytes):
            cert = x509.load_der_x509_certificate(peer)
            if ca is not None and not ca_mod.issued_by(cert, ca, now or _utc_now()):
                return "the client certificate is not signed by this cloud's CA or has expired"
            cert_node = identity.node_from_certificate(cert)
        else:
            cert_node = _node_from_peer_dict(peer)
    except ValueError as exc:
        return f"the client certificate is not a node certificate: {exc}"
    if cert_node != node_id:
        return (
            f"the client certificate is for node {cert_node!r}"
            f" but the connection claims node_id {node_id[:64]!r}"
        )
    return None


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
