"""Edge enrolment: from a join token to a node certificate on disk, and its rotation.

Input: the cloud's certificate-server address (``host:port``), the join token (from
``keadm gettoken`` or `modules.certs.token.read_token`), the node name; output: the
CA, the node certificate and its key as PEM files (0600, directory 0700), written
atomically, for edgehub's `modules.certs.tls.client_context`. As
edge/pkg/edgehub/certificate/certmanager.go:

1. ``GET /ca.crt`` without verification (nothing is trusted yet), then check its
   sha256 against the token's first part: a mismatch stops here, writing nothing;
2. make an ECDSA P-256 key and a CSR, ``GET /edge.crt`` with the CSR as body,
   ``Authorization: Bearer <JWT>`` and ``NodeName``, verifying the server against
   the CA;
3. check the certificate chains to the CA, names the node and holds our key; write.

Rotation (`rotate`) repeats 2-3 with mutual TLS (the current certificate) instead of
the token, at a jittered 70-90 % of the lifetime (`next_rotation`). Every response
read is bounded (1 MiB) and every socket operation has a timeout.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.client
import os
import random
import ssl
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from modules.certs import ca as ca_mod
from modules.certs import errors, identity, tls, token

MAX_RESPONSE = 1024 * 1024  # bytes, as KubeEdge's edge reads of /ca.crt and /edge.crt
TIMEOUT = 10.0  # seconds per socket operation


@dataclasses.dataclass(frozen=True)
class EdgeCertPaths:
    """Where the edge keeps the CA, its certificate and its key (PEM)."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_directory(cls, directory: Path | str) -> EdgeCertPaths:
        base = Path(directory)
        return cls(base / "ca.crt", base / "node.crt", base / "node.key")


def enroll(
    server: str, join_token: str, node: str, paths: EdgeCertPaths, *,
    now: datetime.datetime | None = None, timeout: float = TIMEOUT,
) -> x509.Certificate:  # fmt: skip
    """Get a first certificate for `node` with a join token (see the module docstring).

    Raises:
        EnrollError: naming the step that failed; no file was written.
    """
    if not identity.is_valid_node_name(node):
        raise errors.EnrollError("check node name", f"{node[:64]!r} is not a valid node name")
    try:
        digest, jwt_part = token.split_token(join_token)
        token.check_unexpired(jwt_part, now=now or token.utc_now())
    except errors.TokenError as exc:
        raise errors.EnrollError("check token", exc.reason) from None
    ca_der = _fetch(server, "/ca.crt", tls.unverified_context(), {}, None, timeout)
    try:
        token.check_ca_hash(digest, ca_der)
        ca_cert = x509.load_der_x509_certificate(ca_der)
    except (errors.TokenError, ValueError) as exc:
        raise errors.EnrollError("check CA", f"the CA served by {server}: {exc}") from None
    headers = {"Authorization": f"Bearer {jwt_part}"}
    return _request_and_write(server, node, paths, ca_cert, headers, None, now, timeout)


def rotate(
    server: str, node: str, paths: EdgeCertPaths, *,
    now: datetime.datetime | None = None, timeout: float = TIMEOUT,
) -> x509.Certificate:  # fmt: skip
    """Replace the current certificate, authenticating with it (mutual TLS).

    Raises:
        EnrollError: naming the step that failed; the current files are left as they were.
    """
    try:
        ca_cert = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    except (OSError, ValueError) as exc:
        raise errors.EnrollError("load current files", f"{paths.ca}: {exc}") from None
    client = (paths.cert, paths.key)
    return _request_and_write(server, node, paths, ca_cert, {}, client, now, timeout)


def ensure_certificate(
    server: str, node: str, paths: EdgeCertPaths, *, join_token: str = "",
    now: datetime.datetime | None = None, timeout: float = TIMEOUT,
) -> x509.Certificate:  # fmt: skip
    """The valid certificate on disk for `node`, enrolling with `join_token` if there is none.

    Raises:
        EnrollError: no valid certificate and enrolment failed (or no token was given).
    """
    now = now or token.utc_now()
    current = load_valid(paths, node, now)
    if current is not None:
        return current
    if not join_token:
        raise errors.EnrollError(
            "check token", f"no valid certificate for node {node!r} and no join token given"
        )
    return enroll(server, join_token, node, paths, now=now, timeout=timeout)


def load_valid(paths: EdgeCertPaths, node: str, now: datetime.datetime) -> x509.Certificate | None:
    """The certificate on disk if it is for `node`, signed by the CA on disk, valid at
    `now` and matching the key on disk; otherwise None."""
    try:
        ca_cert = x509.load_pem_x509_certificate(paths.ca.read_bytes())
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
        same_node = identity.node_from_certificate(cert) == node
    except (OSError, ValueError):
        return None
    if not same_node or key.public_key() != cert.public_key():
        return None
    return cert if ca_mod.issued_by(cert, ca_cert, now) else None


def next_rotation(cert: x509.Certificate, rng: random.Random | None = None) -> datetime.datetime:
    """When to rotate: at a random 70-90 % of the certificate's lifetime (certmanager.go)."""
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_before_utc + lifetime * (rng or random.Random()).uniform(0.7, 0.9)


def _request_and_write(
    server: str, node: str, paths: EdgeCertPaths, ca_cert: x509.Certificate,
    headers: dict[str, str], client: tuple[Path, Path] | None,
    now: datetime.datetime | None, timeout: float,
) -> x509.Certificate:  # fmt: skip
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    key = ca_mod.new_key()  # a fresh key for every certificate, rotation included
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(identity.node_subject(node))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    context = tls.client_context(
        ca_pem=ca_pem, cert=client[0] if client else None, key=client[1] if client else None
    )
    der = _fetch(server, "/edge.crt", context, {**headers, "NodeName": node}, csr, timeout)
    cert = _check_issued(der, ca_cert, node, key.public_key(), now or token.utc_now())
    pair = ca_mod.KeyPair(cert, key)
    _write_private(paths.key, pair.key_pem)
    _write_private(paths.cert, pair.cert_pem)
    _write_private(paths.ca, ca_pem)
    return cert


def _check_issued(
    der: bytes, ca_cert: x509.Certificate, node: str, public_key: object, now: datetime.datetime
) -> x509.Certificate:
    step = "verify certificate"
    try:
        cert = x509.load_der_x509_certificate(der)
        cert_node = identity.node_from_certificate(cert)
    except ValueError as exc:
        raise errors.EnrollError(step, f"the server sent no node certificate: {exc}") from None
    if not ca_mod.issued_by(cert, ca_cert, now):
        raise errors.EnrollError(step, "the certificate is not signed by the CA or not valid now")
    if cert_node != node or cert.public_key() != public_key:
        raise errors.EnrollError(step, "the certificate is for another node or another key")
    return cert


def _fetch(
    server: str, path: str, context: ssl.SSLContext, headers: dict[str, str],
    body: bytes | None, timeout: float,
) -> bytes:  # fmt: skip
    """GET `path` (with `body`, as KubeEdge does) and return the 200 body, read bounded."""
    step = "fetch CA" if path == "/ca.crt" else "request certificate"
    host, port = _split_address(server)
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        conn.request("GET", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise errors.EnrollError(step, f"{server}{path}: {exc}") from None
    finally:
        conn.close()
    if len(data) > MAX_RESPONSE:
        raise errors.EnrollError(step, f"{server}{path}: response larger than {MAX_RESPONSE} bytes")
    if response.status != 200:
        text = data[:256].decode("utf-8", "replace").strip()
        raise errors.EnrollError(step, f"{server}{path}: HTTP {response.status}: {text}")
    return data


def _split_address(server: str) -> tuple[str, int]:
    parts = urlsplit(server if "//" in server else f"//{server}")
    try:
        port = parts.port or 10002
    except ValueError:
        port = 0
    if not parts.hostname or not port:
        raise errors.EnrollError("parse address", f"{server[:64]!r} is not host:port")
    return parts.hostname, port


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, the file 0600 and its directory 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
