"""TLS contexts and peer checks: who may connect to cloudhub as which node."""

from __future__ import annotations

import contextlib
import ssl

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from modules.certs import ca as ca_mod
from modules.certs import tls
from tests.modules.certs.tls_peer import tls_peer_node


def _node_files(tmp_path, ca, node, now):
    key = ca_mod.new_key()
    pair = ca_mod.KeyPair(ca_mod.sign_node(ca, key.public_key(), node, days=1, now=now), key)
    (tmp_path / f"{node}.crt").write_bytes(pair.cert_pem)
    (tmp_path / f"{node}.key").write_bytes(pair.key_pem)
    return pair, tmp_path / f"{node}.crt", tmp_path / f"{node}.key"


def test_contexts_require_tls12_and_ecdsa_suites(ca, now) -> None:
    server = ca_mod.generate_server_cert(ca, ips=["127.0.0.1"], dns_names=[], now=now)
    context = tls.server_context(ca_pem=ca.cert_pem, cert=server.cert_pem, key=server.key_pem)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == set(tls.TLS12_CIPHERS.split(":"))


def test_node_certificate_connects_and_names_its_node(ca, now, tmp_path) -> None:
    _, cert, key = _node_files(tmp_path, ca, "edge-a", now)
    client = tls.client_context(ca_pem=ca.cert_pem, cert=cert, key=key)
    assert tls_peer_node(ca, client, node_id="edge-a") == ("edge-a", None)


def test_certificate_for_node_a_presented_as_node_b_is_refused_with_a_reason(
    ca, now, tmp_path
) -> None:
    _, cert, key = _node_files(tmp_path, ca, "edge-a", now)
    client = tls.client_context(ca_pem=ca.cert_pem, cert=cert, key=key)
    node, reason = tls_peer_node(ca, client, node_id="edge-b")
    assert node == "edge-a"
    assert (
        reason
        == "the client certificate is for node 'edge-a' but the connection claims node_id 'edge-b'"
    )


def test_certificate_from_another_ca_fails_the_handshake(ca, now, tmp_path) -> None:
    _, cert, key = _node_files(tmp_path, ca_mod.generate_ca(now), "edge-a", now)
    client = tls.client_context(ca_pem=ca.cert_pem, cert=cert, key=key)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_peer_node(ca, client, node_id="edge-a")


def _handshake_in_memory(
    server: ssl.SSLContext, client: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> ssl.SSLObject:
    """A TLS connection over memory BIOs, the server's first bytes of data read by the
    client (TLS 1.3 tickets come after the handshake); the client's SSL object."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1", session=session)
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (tls_client, tls_server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    tls_server.write(b"x")
    c_in.write(s_out.read())
    assert tls_client.read() == b"x"
    return tls_client


def test_the_server_issues_no_session_tickets_and_resumes_nothing(ca, now, tmp_path) -> None:
    # edgecore keeps no session cache; tickets cost the server a third of its handshake,
    # and a resumed session would skip the certificate checks.
    server_pair = ca_mod.generate_server_cert(ca, ips=["127.0.0.1"], dns_names=[], now=now)
    server = tls.server_context(
        ca_pem=ca.cert_pem, cert=server_pair.cert_pem, key=server_pair.key_pem
    )
    _, cert, key = _node_files(tmp_path, ca, "edge-a", now)
    client = tls.client_context(ca_pem=ca.cert_pem, cert=cert, key=key)
    first = _handshake_in_memory(server, client)
    assert first.version() == "TLSv1.3"
    assert first.session is not None and not first.session.has_ticket
    again = _handshake_in_memory(server, client, session=first.session)
    assert not again.session_reused


def test_client_without_certificate_fails_the_handshake(ca) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_peer_node(ca, tls.client_context(ca_pem=ca.cert_pem), node_id="edge-a")


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        pytest.param(None, "no client certificate was presented", id="no certificate"),
        pytest.param(
            {"subject": ((("commonName", "system:node:edge-a"),),)},
            "organization",
            id="dict without O system:nodes",
        ),
        pytest.param(
            {
                "subject": (
                    (("organizationName", "system:nodes"),),
                    (("commonName", "kubeedge.io"),),
                )
            },
            "common name",
            id="legacy kubeedge.io subject",
        ),
        pytest.param(
            {
                "subject": (
                    (("organizationName", "system:nodes"),),
                    (("commonName", "system:node:edge-b"),),
                )
            },
            "for node 'edge-b'",
            id="dict for another node",
        ),
    ],
)
def test_check_peer_reasons(peer, reason) -> None:
    result = tls.check_peer(peer, "edge-a")
    assert result is not None and reason in result


def test_check_peer_accepts_the_right_node_and_rechecks_the_ca_for_der(ca, now) -> None:
    cert = ca_mod.sign_node(ca, ca_mod.new_key().public_key(), "edge-a", days=1, now=now)
    der = cert.public_bytes(Encoding.DER)
    ok = {
        "subject": (
            (("organizationName", "system:nodes"),),
            (("commonName", "system:node:edge-a"),),
        )
    }
    assert tls.check_peer(ok, "edge-a") is None
    assert tls.check_peer(der, "edge-a", ca=ca.cert) is None
    other = ca_mod.generate_ca(now)
    reason = tls.check_peer(der, "edge-a", ca=other.cert)
    assert reason is not None and "not signed by this cloud's CA" in reason
