"""Join tokens signed with the right key but with hostile claims (an ``exp`` past the
platform's time range, NaN, a string, a list...): the certificate server answers a clean
401 and logs why; the edge stops before enrolling, saying why. Nothing raises further."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import jwt as pyjwt
import pytest

from modules.certs import ca as ca_mod
from modules.certs import enroll, errors, token
from modules.certs.server import UNAUTHORIZED
from tests.modules.certs.helpers import csr, get, running_server

NAN, INF = float("nan"), float("inf")
SOON = 4_000_000_000  # 2096: a valid exp

HOSTILE = [
    pytest.param({"exp": 10**30}, "exp", id="exp far beyond the time range"),
    pytest.param({"exp": 10**400}, "exp", id="exp beyond a float"),
    pytest.param({"exp": -(10**30)}, "exp", id="exp far before the time range"),
    pytest.param({"exp": 1e308}, "exp", id="exp a huge float"),
    pytest.param({"exp": 253_402_300_800}, "exp", id="exp in the year 10000"),
    pytest.param({"exp": NAN}, "exp", id="exp NaN"),
    pytest.param({"exp": INF}, "exp", id="exp infinity"),
    pytest.param({"exp": -INF}, "exp", id="exp minus infinity"),
    pytest.param({"exp": "4000000000"}, "exp", id="exp a string"),
    pytest.param({"exp": [SOON]}, "exp", id="exp a list"),
    pytest.param({"exp": {"t": SOON}}, "exp", id="exp an object"),
    pytest.param({"exp": True}, "exp", id="exp a boolean"),
    pytest.param({"exp": None}, "exp", id="exp null"),
    pytest.param({"exp": SOON, "nbf": 10**30}, "nbf", id="nbf far beyond the time range"),
    pytest.param({"exp": SOON, "nbf": -(10**30)}, "nbf", id="nbf far before the time range"),
    pytest.param({"exp": SOON, "nbf": NAN}, "nbf", id="nbf NaN"),
    pytest.param({"exp": SOON, "nbf": "0"}, "nbf", id="nbf a string"),
    pytest.param({"exp": SOON, "nbf": [0]}, "nbf", id="nbf a list"),
    pytest.param({"exp": SOON, "iat": 10**30}, "iat", id="iat far beyond the time range"),
    pytest.param({"exp": SOON, "iat": -(10**30)}, "iat", id="iat far before the time range"),
    pytest.param({"exp": SOON, "iat": INF}, "iat", id="iat infinity"),
    pytest.param({"exp": SOON, "iat": "0"}, "iat", id="iat a string"),
    pytest.param({"exp": SOON, "iat": [0]}, "iat", id="iat a list"),
]


def signed(ca: ca_mod.KeyPair, claims: dict[str, Any]) -> str:
    """The JWT part of a join token with `claims`, signed with the CA's key as the cloud does."""
    return pyjwt.encode(claims, ca.key_der, algorithm="HS256")


def join_token(ca: ca_mod.KeyPair, claims: dict[str, Any]) -> str:
    return f"{token.ca_hash(ca.cert_der)}.{signed(ca, claims)}"


@pytest.mark.parametrize(("claims", "claim"), HOSTILE)
def test_the_cloud_refuses_a_hostile_claim_naming_it(ca, now, claims, claim) -> None:
    with pytest.raises(errors.TokenError) as info:
        token.verify_token(ca, join_token(ca, claims), now=now)
    assert f"({claim} is" in info.value.reason, info.value.reason


@pytest.mark.parametrize(("claims", "claim"), [p for p in HOSTILE if p.values[1] == "exp"])
def test_the_edge_refuses_a_hostile_exp_naming_it(now, ca, claims, claim) -> None:
    with pytest.raises(errors.TokenError) as info:
        token.check_unexpired(signed(ca, claims), now=now)
    assert f"({claim} is" in info.value.reason, info.value.reason


@pytest.mark.parametrize(("claims", "claim"), HOSTILE)
def test_the_edge_stops_before_enrolling_with_a_clear_error(
    ca, now, tmp_path, claims, claim
) -> None:
    paths = enroll.EdgeCertPaths.in_directory(tmp_path / "certs")
    with pytest.raises(errors.EnrollError) as info:  # port 1: nothing must be dialled
        enroll.enroll("127.0.0.1:1", join_token(ca, claims), "edge-1", paths, now=now)
    assert info.value.step == "check token" and f"({claim} is" in info.value.reason
    assert not paths.cert.exists()


@pytest.mark.parametrize(("claims", "claim"), HOSTILE)
def test_the_certificate_server_answers_401_and_logs_the_reason(ca, claims, claim, caplog) -> None:
    caplog.set_level(logging.INFO, logger="modules.certs")
    headers = {"Authorization": f"Bearer {signed(ca, claims)}", "NodeName": "edge-1"}
    with running_server(ca) as server:
        status, body = get(server.port, "/edge.crt", headers=headers, body=csr(ca_mod.new_key()))
        assert (status, body.decode().strip()) == (401, UNAUTHORIZED)
        assert server.service.refused == 1 and server.service.issued == 0
        # the server still serves after it
        assert get(server.port, "/ca.crt") == (200, ca.cert_der)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and f"({claim} is" in refusals[0], refusals


def test_a_token_with_sane_optional_claims_still_verifies(ca, now) -> None:
    claims = {"exp": SOON, "nbf": int(now.timestamp()) - 60, "iat": int(now.timestamp()) - 60}
    expiry = token.verify_token(ca, join_token(ca, claims), now=now)
    assert expiry == datetime.datetime.fromtimestamp(SOON, datetime.UTC)
    token.check_unexpired(signed(ca, claims), now=now)


def test_a_failing_service_is_answered_500_and_the_server_serves_on(ca, caplog) -> None:
    """Whatever else a hostile request finds, the connection's thread answers it."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    with running_server(ca) as server:
        server.service.head = broken  # type: ignore[method-assign]
        assert get(server.port, "/edge.crt", body=b"")[0] == 500
        del server.service.head
        assert get(server.port, "/ca.crt") == (200, ca.cert_der)
    assert "a bug" in caplog.text
