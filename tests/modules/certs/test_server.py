"""The certificate server: what it signs, whom it refuses, and what it withstands."""

from __future__ import annotations

import datetime
import logging
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from modules.certs import ca as ca_mod
from modules.certs import identity, tls, token
from modules.certs.server import UNAUTHORIZED
from tests.modules.certs.helpers import csr, get, raw_tls, read_all, running_server

HOURS = datetime.timedelta(hours=12)


@pytest.fixture
def server(ca):
    with running_server(ca, handshake_timeout=0.3, request_timeout=0.5) as running:
        yield running


def bearer(ca, now, node: str = "edge-1") -> dict[str, str]:
    _, jwt = token.split_token(token.new_token(ca, now=now, refresh=HOURS))
    return {"Authorization": f"Bearer {jwt}", "NodeName": node}


def test_ca_crt_is_served_anonymously_as_raw_der(server) -> None:
    assert get(server.port, "/ca.crt") == (200, server.ca.cert_der)


def test_certificate_names_the_authenticated_node_whatever_the_csr_asks(server, now) -> None:
    key = ca_mod.new_key()
    body = csr(
        key, cn="system:node:other", org="system:masters", sans=["evil.example"], server_auth=True
    )
    status, der = get(server.port, "/edge.crt", headers=bearer(server.ca, now), body=body)
    assert status == 200
    cert = x509.load_der_x509_certificate(der)
    assert cert.subject == identity.node_subject("edge-1")
    assert tls.node_from_certificate(cert) == "edge-1"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.public_key() == key.public_key()
    assert ca_mod.issued_by(cert, server.ca.cert, now)
    assert cert.not_valid_after_utc - now == pytest.approx(
        datetime.timedelta(days=365), abs=datetime.timedelta(minutes=1)
    )
    assert server.service.issued == 1


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        pytest.param("/node/edge-1", {}, 404, id="no node oracle: /node/name is 404"),
        pytest.param("/nodeupgrade", {}, 404, id="no task endpoints"),
        pytest.param("/anything", {}, 404, id="unknown route is 404"),
        pytest.param("/edge.crt", {"NodeName": "edge-1"}, 401, id="anonymous edge.crt is 401"),
        pytest.param(
            "/edge.crt",
            {"Authorization": "Bearer x.y.z", "NodeName": "edge-1"},
            401,
            id="garbage token is 401",
        ),
        pytest.param(
            "/edge.crt",
            {"Authorization": "Basic abc", "NodeName": "edge-1"},
            401,
            id="not a bearer token is 401",
        ),
    ],
)
def test_refusals_reveal_nothing(server, path, headers, status) -> None:
    code, body = get(server.port, path, headers=headers, body=b"")
    assert code == status
    if status == 401:
        assert body.decode().strip() == UNAUTHORIZED


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda ca, now: bearer(ca, now - datetime.timedelta(hours=25)), id="expired token"
        ),
        pytest.param(
            lambda ca, now: bearer(ca_mod.generate_ca(now), now), id="token of another CA"
        ),
    ],
)
def test_bad_tokens_get_the_same_generic_401_without_the_token(server, now, make, caplog) -> None:
    headers = make(server.ca, now)
    caplog.set_level(logging.DEBUG)
    status, body = get(server.port, "/edge.crt", headers=headers, body=csr(ca_mod.new_key()))
    assert (status, body.decode().strip()) == (401, UNAUTHORIZED)
    jwt = headers["Authorization"].split()[1]
    assert jwt not in caplog.text and jwt.split(".")[2] not in caplog.text
    assert "expired" in caplog.text or "bad signature" in caplog.text
    assert server.service.refused == 1 and server.service.issued == 0


def test_bad_node_name_and_bad_csr_are_400_after_authentication(server, now) -> None:
    headers = bearer(server.ca, now, node="Not_A/Node")
    assert get(server.port, "/edge.crt", headers=headers, body=csr(ca_mod.new_key()))[0] == 400
    assert (
        get(server.port, "/edge.crt", headers=bearer(server.ca, now), body=b"not a csr")[0] == 400
    )


def test_oversized_body_is_413_without_being_read(server, now) -> None:
    headers = bearer(server.ca, now)
    with raw_tls(server.port) as sock:
        sock.sendall(
            b"GET /edge.crt HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {headers['Authorization']}\r\nNodeName: edge-1\r\n".encode()
            + b"Content-Length: 1048577\r\n\r\n"
        )
        assert read_all(sock).startswith(b"HTTP/1.1 413 ")


def _node_cert_files(tmp_path, ca, node, now):
    key = ca_mod.new_key()
    pair = ca_mod.KeyPair(ca_mod.sign_node(ca, key.public_key(), node, days=1, now=now), key)
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    (tmp_path / "k.pem").write_bytes(pair.key_pem)
    return tmp_path / "c.pem", tmp_path / "k.pem"


def test_rotation_with_the_nodes_own_certificate_needs_no_token(server, now, tmp_path) -> None:
    cert, key = _node_cert_files(tmp_path, server.ca, "edge-1", now)
    context = tls.client_context(ca_pem=server.ca.cert_pem, cert=cert, key=key)
    status, der = get(
        server.port,
        "/edge.crt",
        headers={"NodeName": "edge-1"},
        body=csr(ca_mod.new_key()),
        context=context,
    )
    assert status == 200 and tls.node_from_certificate(der) == "edge-1"
    status, _ = get(
        server.port,
        "/edge.crt",
        headers={"NodeName": "edge-2"},
        body=csr(ca_mod.new_key()),
        context=context,
    )
    assert status == 403


def test_certificate_from_another_ca_is_refused_at_the_handshake(server, now, tmp_path) -> None:
    cert, key = _node_cert_files(tmp_path, ca_mod.generate_ca(now), "edge-1", now)
    context = tls.client_context(ca_pem=server.ca.cert_pem, cert=cert, key=key)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(
            server.port,
            "/edge.crt",
            headers={"NodeName": "edge-1"},
            body=csr(ca_mod.new_key()),
            context=context,
        )
    assert server.service.issued == 0


def test_silent_client_is_cut_after_the_handshake_timeout_and_blocks_nobody(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as idle:
        assert get(server.port, "/ca.crt")[0] == 200
        assert idle.recv(1) == b""  # closed by the server, within the bounded wait
    assert server.server.stats["handshake_failures"] >= 1


def test_slow_request_after_the_handshake_is_cut_at_the_request_timeout(server) -> None:
    with raw_tls(server.port, timeout=3) as sock:
        sock.sendall(b"GET /ca.crt HTTP/1.1\r\n")  # and never the rest
        assert read_all(sock) == b""  # cut by the server (a hang would raise TimeoutError)


def test_connections_beyond_the_cap_are_closed_at_accept(ca) -> None:
    with (
        running_server(ca, max_connections=1, handshake_timeout=1.0) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=3),
        socket.create_connection(("127.0.0.1", server.port), timeout=3) as extra,
    ):
        assert extra.recv(1) == b""
        assert server.server.stats["over_capacity"] == 1
