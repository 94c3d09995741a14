"""Edge enrolment: the full join flow against a live certificate server, and refusals."""

from __future__ import annotations

import datetime
import logging
import random
import stat
from pathlib import Path

import pytest

from modules.certs import ca as ca_mod
from modules.certs import enroll, errors, tls, token
from modules.certs.server import CertService, Response
from modules.certs.store import SecretStore
from tests.modules.certs.helpers import running_server
from tests.modules.certs.tls_peer import tls_peer_node

HOURS = datetime.timedelta(hours=12)


def test_full_join_flow_from_token_to_a_mutual_tls_connection(
    store: SecretStore, now, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    ca = ca_mod.load_or_create_ca(store, now)
    token.TokenRotator(store, ca, refresh=HOURS).rotate(now)
    join_token = token.read_token(store)
    assert join_token is not None
    paths = enroll.EdgeCertPaths.in_directory(tmp_path / "certs")
    with running_server(ca) as server:
        cert = enroll.enroll(server.address, join_token, "edge-1", paths)
    assert tls.node_from_certificate(cert) == "edge-1"
    assert stat.S_IMODE(paths.key.parent.stat().st_mode) == 0o700
    for path in (paths.ca, paths.cert, paths.key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert paths.ca.read_bytes() == ca.cert_pem
    assert b"EC PRIVATE KEY" in paths.key.read_bytes()
    client = tls.client_context(ca_pem=paths.ca.read_bytes(), cert=paths.cert, key=paths.key)
    assert tls_peer_node(ca, client, node_id="edge-1") == ("edge-1", None)
    assert join_token.split(".", 1)[1] not in caplog.text
    assert ca.key_pem.decode() not in caplog.text and paths.key.read_text() not in caplog.text


def test_valid_files_for_the_node_are_kept_without_asking_the_server(ca, now, tmp_path) -> None:
    paths = enroll.EdgeCertPaths.in_directory(tmp_path)
    with running_server(ca) as server:
        first = enroll.ensure_certificate(
            server.address, "edge-1", paths, join_token=token.new_token(ca, now=now, refresh=HOURS)
        )
        again = enroll.ensure_certificate(server.address, "edge-1", paths)
        assert again.serial_number == first.serial_number and server.service.issued == 1
        with pytest.raises(errors.EnrollError, match="no valid certificate for node 'edge-2'"):
            enroll.ensure_certificate(server.address, "edge-2", paths)


def test_rotation_uses_the_current_certificate_and_replaces_the_files(ca, now, tmp_path) -> None:
    paths = enroll.EdgeCertPaths.in_directory(tmp_path)
    with running_server(ca) as server:
        first = enroll.enroll(
            server.address, token.new_token(ca, now=now, refresh=HOURS), "edge-1", paths
        )
        old_key = paths.key.read_bytes()
        second = enroll.rotate(server.address, "edge-1", paths)
    assert second.serial_number != first.serial_number and paths.key.read_bytes() != old_key
    assert enroll.load_valid(paths, "edge-1", now) == second


def test_rotation_falls_between_70_and_90_percent_of_the_lifetime(ca, now) -> None:
    cert = ca_mod.sign_node(ca, ca_mod.new_key().public_key(), "edge-1", days=100, now=now)
    start = cert.not_valid_before_utc
    lifetime = cert.not_valid_after_utc - start
    rng = random.Random(7)
    for _ in range(20):
        fraction = (enroll.next_rotation(cert, rng) - start) / lifetime
        assert 0.7 <= fraction <= 0.9


@pytest.mark.parametrize(
    ("make_token", "step", "text"),
    [
        pytest.param(lambda ca, now: "garbage", "check token", "malformed", id="wrong token"),
        pytest.param(
            lambda ca, now: token.new_token(ca, now=now - 2 * HOURS - HOURS, refresh=HOURS),
            "check token",
            "expired at",
            id="expired token (checked by the edge before asking)",
        ),
        pytest.param(
            lambda ca, now: token.new_token(ca_mod.generate_ca(now), now=now, refresh=HOURS),
            "check CA",
            "does not match",
            id="token from another CA or tampered CA",
        ),
    ],
)
def test_refused_enrolment_names_the_step_and_writes_nothing(
    ca, now, tmp_path, make_token, step, text
) -> None:
    join_token = make_token(ca, now)
    paths = enroll.EdgeCertPaths.in_directory(tmp_path / "certs")
    with running_server(ca) as server, pytest.raises(errors.EnrollError) as info:
        enroll.enroll(server.address, join_token, "edge-1", paths)
    assert info.value.step == step and text in str(info.value)
    assert join_token not in str(info.value)
    assert "." not in join_token or join_token.split(".")[-1] not in str(info.value)
    assert not (tmp_path / "certs").exists()


class HugeCA(CertService):
    def head(self, method, path, headers, *, peer_cert, content_length):
        return Response(200, b"x" * (2 << 20))


def test_oversized_response_is_not_read_past_the_limit(ca, now, tmp_path, monkeypatch) -> None:
    with running_server(ca) as server:
        monkeypatch.setattr(
            server.server._server, "service", HugeCA(ca, validity_days=1, max_body=1)
        )
        with pytest.raises(errors.EnrollError, match="larger than 1048576 bytes"):
            enroll.enroll(
                server.address,
                token.new_token(ca, now=now, refresh=HOURS),
                "edge-1",
                enroll.EdgeCertPaths.in_directory(tmp_path),
            )


def test_bad_address_and_bad_node_name_are_refused_before_any_request(ca, now, tmp_path) -> None:
    paths = enroll.EdgeCertPaths.in_directory(tmp_path)
    tok = token.new_token(ca, now=now, refresh=HOURS)
    with pytest.raises(errors.EnrollError, match="not host:port"):
        enroll.enroll("host:notaport", tok, "edge-1", paths)
    with pytest.raises(errors.EnrollError, match="not a valid node name"):
        enroll.enroll("127.0.0.1:1", tok, "Edge_1", paths)
