"""The certificate server's logic: which request gets which answer (no sockets here).

Input: a request's method, path, headers, peer certificate and (for ``/edge.crt``)
body, from the HTTPS transport in `modules.certs.https`; output: a `Response`.
Routes, as cloudhub/servers/httpserver/server.go:

- ``GET /ca.crt``: the CA certificate, raw DER. Anonymous, as in KubeEdge: an edge
  needs it before it can trust anything, and checks it against the hash in its
  token. The CA certificate is public; nothing about nodes is revealed.
- ``GET /edge.crt``: body a CSR (DER), headers ``NodeName`` and either
  ``Authorization: Bearer <JWT part of the join token>`` or a client certificate of
  that node (rotation, mutual TLS). Answers a node certificate (DER).

Everything else is 404 for everyone; KubeEdge's ``/node/{name}`` (a node-existence
oracle) and its unauthenticated task endpoints are deliberately absent. Each
certificate issued is also handed to `on_issued` (the module writes the node's
``CertificateIssued`` Event from it). Failed
authentication is 401 with one generic text; the reason is logged, never the token.
Unlike signcerts.go the signed subject, SANs and usages never come from the CSR.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from modules.certs import ca as ca_mod
from modules.certs import errors, identity, token

log = logging.getLogger("modules.certs.server")

CA_PATH, EDGE_PATH = "/ca.crt", "/edge.crt"
DER = "application/octet-stream"
UNAUTHORIZED = "unauthorized: present a valid join token or node certificate"
# Told of each certificate issued: (node, "token" or "certificate", when it expires).
OnIssued = Callable[[str, str, datetime.datetime], None]
_CURVES = (ec.SECP256R1, ec.SECP384R1)


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class Authorized:
    """An authenticated ``/edge.crt`` request whose body may now be read."""

    node: str  # the node the certificate will name
    via: str  # "token" or "certificate"
    length: int  # bytes of CSR to read


def _text(status: int, text: str) -> Response:
    return Response(status, text.encode("utf-8") + b"\n")


class CertService:
    """Answers certificate-server requests for one CA (see the module docstring)."""

    def __init__(
        self, ca: ca_mod.KeyPair, *, validity_days: int, max_body: int,
        clock: token.Clock = token.utc_now, on_issued: OnIssued | None = None,
        refuse_when: Callable[[], str | None] | None = None,
    ) -> None:  # fmt: skip
        self.ca = ca  # signs node certificates; its key checks join tokens
        self.validity_days = validity_days  # lifetime of node certificates
        self.max_body = max_body  # largest CSR accepted (413 above)
        self.clock = clock  # "now" for token expiry and certificate validity
        self.on_issued = on_issued  # told of each certificate issued (must not block)
        self.issued = 0  # node certificates signed
        self.refused = 0  # /edge.crt requests refused (401, 403, 400, 411, 413, 503)
        # Why signing is off now (a replica that fenced itself), or None: then 503.
        self.refuse_when = refuse_when
        self._lock = threading.Lock()  # guards the counters

    def head(
        self, method: str, path: str, headers: Mapping[str, str], *,
        peer_cert: bytes | None, content_length: int | None,
    ) -> Response | Authorized:  # fmt: skip
        """The answer from the request line and headers (keys lower-case), or
        `Authorized`: read `Authorized.length` bytes of body and call `issue`."""
        route = urlsplit(path).path
        if route == CA_PATH:
            return (
                Response(200, self.ca.cert_der, DER) if method == "GET" else _text(405, "GET only")
            )
        if route != EDGE_PATH:
            return _text(404, "not found")
        if method != "GET":
            return _text(405, "GET only")
        why = self.refuse_when() if self.refuse_when is not None else None
        if why is not None:
            log.warning("certserver: /edge.crt refused: %s", why)
            return self._refuse(_text(503, "not signing now; try another replica"))
        result = self._authenticate(headers, peer_cert)
        if isinstance(result, Response):
            return self._refuse(result)
        node, via = result
        if content_length is None:
            return self._refuse(_text(411, "Content-Length required"))
        if content_length > self.max_body:
            return self._refuse(_text(413, f"CSR larger than {self.max_body} bytes"))
        return Authorized(node, via, content_length)

    def issue(self, request: Authorized, body: bytes) -> Response:
        """Sign the CSR in `body` for the authenticated node."""
        try:
            csr = x509.load_der_x509_csr(body)
        except ValueError:
            return self._refuse(_text(400, "body is not a DER certificate signing request"))
        if not csr.is_signature_valid:
            return self._refuse(_text(400, "the CSR's signature does not match its key"))
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, _CURVES):
            return self._refuse(_text(400, "the CSR's key must be ECDSA P-256 or P-384"))
        now = self.clock()
        cert = ca_mod.sign_node(self.ca, key, request.node, days=self.validity_days, now=now)
        with self._lock:
            self.issued += 1
        log.info(
            "certserver: issued a certificate for node %s (%s), serial %x, expires %s",
            request.node, request.via, cert.serial_number, cert.not_valid_after_utc.isoformat(),
        )  # fmt: skip
        if self.on_issued is not None:
            self.on_issued(request.node, request.via, cert.not_valid_after_utc)
        return Response(200, cert.public_bytes(serialization.Encoding.DER), DER)

    def _authenticate(
        self, headers: Mapping[str, str], peer_cert: bytes | None
    ) -> tuple[str, str] | Response:
        node = headers.get("nodename") or ""
        if peer_cert:
            return self._by_certificate(peer_cert, node)
        scheme, _, jwt_part = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not jwt_part.strip():
            log.info("certserver: /edge.crt refused: no bearer token and no client certificate")
            return _text(401, UNAUTHORIZED)
        try:
            token.verify_jwt(self.ca, jwt_part.strip(), now=self.clock())
        except errors.TokenError as exc:
            log.info("certserver: /edge.crt refused: %s", exc)
            return _text(401, UNAUTHORIZED)
        if not identity.is_valid_node_name(node):
            return _text(400, "the NodeName header must be a valid node name")
        return node, "token"

    def _by_certificate(self, der: bytes, node: str) -> tuple[str, str] | Response:
        try:
            cert = x509.load_der_x509_certificate(der)
            cert_node = identity.node_from_certificate(cert)
        except ValueError as exc:
            log.info("certserver: /edge.crt refused: client certificate: %s", exc)
            return _text(401, UNAUTHORIZED)
        if not ca_mod.issued_by(cert, self.ca.cert, self.clock()) or not _client_auth(cert):
            log.info("certserver: /edge.crt refused: client certificate not valid for this CA")
            return _text(401, UNAUTHORIZED)
        if node != cert_node:
            return _text(403, "the client certificate is for another node than NodeName")
        return node, "certificate"

    def _refuse(self, response: Response) -> Response:
        with self._lock:
            self.refused += 1
        return response


def _client_auth(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages
