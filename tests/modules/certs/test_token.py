"""Join tokens: KubeEdge's format, verification failures by name, rotation into the Secret."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

import pytest

from modules.certs import ca as ca_mod
from modules.certs import errors, token
from modules.certs.store import SecretStore

HOUR = datetime.timedelta(hours=12)


def test_token_has_kubeedge_format_ca_hash_then_hs256_jwt_with_only_exp(ca, now) -> None:
    tok = token.new_token(ca, now=now, refresh=HOUR)
    digest, header, claims, _ = tok.split(".")
    assert digest == hashlib.sha256(ca.cert_der).hexdigest()
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(claims + "==")) == {
        "exp": int((now + 2 * HOUR).timestamp())
    }


def test_valid_token_verifies_and_reports_its_expiry(ca, now) -> None:
    tok = token.new_token(ca, now=now, refresh=HOUR)
    expiry = token.verify_token(ca, tok, now=now + HOUR)
    assert expiry == datetime.datetime.fromtimestamp(
        int((now + 2 * HOUR).timestamp()), datetime.UTC
    )


def _tampered_signature(ca, now) -> str:
    digest, signed = token.split_token(token.new_token(ca, now=now, refresh=HOUR))
    head, body, sig = signed.split(".")
    return f"{digest}.{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"


def _signed_by_other_key_with_our_hash(ca, now) -> str:
    other = ca_mod.generate_ca(now)
    _, signed = token.split_token(token.new_token(other, now=now, refresh=HOUR))
    return f"{token.ca_hash(ca.cert_der)}.{signed}"


@pytest.mark.parametrize(
    ("make", "at", "expected"),
    [
        pytest.param(lambda ca, now: "not-a-token", 0, "malformed", id="garbage is malformed"),
        pytest.param(
            lambda ca, now: token.ca_hash(ca.cert_der) + ".abc",
            0,
            "malformed",
            id="hash without a JWT is malformed",
        ),
        pytest.param(
            lambda ca, now: token.new_token(ca, now=now, refresh=HOUR),
            25,
            "expired",
            id="a token past 2 x refresh is expired",
        ),
        pytest.param(
            lambda ca, now: token.new_token(ca_mod.generate_ca(now), now=now, refresh=HOUR),
            0,
            "does not match the CA",
            id="a token of another CA fails the hash check",
        ),
        pytest.param(
            _signed_by_other_key_with_our_hash,
            0,
            "bad signature",
            id="our hash on a JWT signed by another key has a bad signature",
        ),
        pytest.param(
            _tampered_signature, 0, "bad signature", id="a tampered signature is a bad signature"
        ),
    ],
)
def test_bad_tokens_are_refused_naming_the_failed_check_without_the_token(
    ca, now, make, at, expected
) -> None:
    tok = make(ca, now)
    with pytest.raises(errors.TokenError) as info:
        token.verify_token(ca, tok, now=now + datetime.timedelta(hours=at))
    text = str(info.value)
    assert expected in text
    assert tok.partition(".")[2] not in text or tok == "not-a-token"
    assert tok not in text


def test_jwt_with_alg_none_is_refused(ca, now) -> None:
    import jwt as pyjwt

    unsigned = pyjwt.encode({"exp": int(now.timestamp()) + 60}, "", algorithm="none")
    with pytest.raises(errors.TokenError, match="malformed"):
        token.verify_jwt(ca, unsigned, now=now)


def test_rotator_writes_the_token_to_tokensecret_and_replaces_it(store: SecretStore, now) -> None:
    ca = ca_mod.load_or_create_ca(store, now)
    rotator = token.TokenRotator(store, ca, refresh=HOUR)
    first_expiry = rotator.rotate(now)
    first = token.read_token(store)
    assert first is not None and first_expiry == now + 2 * HOUR
    token.verify_token(ca, first, now=now)
    rotator.rotate(now + HOUR)
    second = token.read_token(store)
    assert second is not None and second != first
    assert rotator.expires == now + 3 * HOUR


def test_rotator_thread_writes_a_token_at_start_and_stops(store: SecretStore, now) -> None:
    ca = ca_mod.load_or_create_ca(store, now)
    rotator = token.TokenRotator(store, ca, refresh=HOUR)
    rotator.start()
    try:
        assert token.read_token(store) is not None
    finally:
        rotator.stop()
