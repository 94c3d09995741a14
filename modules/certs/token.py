"""Join tokens in KubeEdge's format, and their rotation into Secret ``tokensecret``.

As pkg/security/token/token.go: ``<hex sha256 of the CA DER>.<JWT>``, the JWT HS256
with the CA private key's DER bytes as HMAC secret and one claim, ``exp = now + 2 x
refresh``. The cloud writes the current token to Secret ``tokensecret`` key
``tokendata`` (where ``keadm gettoken`` reads it) and replaces it every `refresh`;
the certificate server verifies the JWT part of ``Authorization: Bearer``; the edge
checks the hash part against the CA it fetched. Errors say which check failed and
never contain the token.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import jwt

from modules.certs import errors
from modules.certs.ca import KeyPair
from modules.certs.store import SecretStore

log = logging.getLogger("modules.certs.token")

TOKEN_SECRET, TOKEN_KEY = "tokensecret", "tokendata"
Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def ca_hash(ca_der: bytes) -> str:
    """Hex sha256 of the CA certificate's DER bytes: the token's first part."""
    return hashlib.sha256(ca_der).hexdigest()


def new_token(ca: KeyPair, *, now: datetime.datetime, refresh: datetime.timedelta) -> str:
    """A token for `ca` expiring at ``now + 2 * refresh``."""
    claims = {"exp": int((now + 2 * refresh).timestamp())}
    signed = jwt.encode(claims, ca.key_der, algorithm="HS256")
    return f"{ca_hash(ca.cert_der)}.{signed}"


def split_token(token: str) -> tuple[str, str]:
    """(CA hash, JWT) of a token.

    Raises:
        TokenError: not ``<64 hex digits>.<header>.<claims>.<signature>``.
    """
    digest, _, signed = token.strip().partition(".")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise errors.TokenError("malformed: expected <sha256 of the CA>.<JWT>")
    if signed.count(".") != 2:
        raise errors.TokenError("malformed: the part after the CA hash is not a JWT")
    return digest.lower(), signed


def check_ca_hash(digest: str, ca_der: bytes) -> None:
    """Raise unless `digest` is the sha256 of `ca_der`.

    Raises:
        TokenError: the token was made for another CA (or the CA was tampered with).
    """
    if not hmac.compare_digest(digest, ca_hash(ca_der)):
        raise errors.TokenError(
            "the token's CA hash does not match the CA"
            " (a token from another cloud, or a tampered CA)"
        )


def verify_jwt(ca: KeyPair, signed: str, *, now: datetime.datetime) -> datetime.datetime:
    """Check the JWT's HS256 signature with `ca`'s key, its time claims and its expiry;
    returns the expiry.

    Raises:
        TokenError: malformed (a time claim that is not a date: see `_dates`), bad
            signature (signed by another CA's key), not yet valid, or expired.
    """
    try:
        claims = jwt.decode(
            signed,
            ca.key_der,
            algorithms=["HS256"],
            # times are checked by _dates and against `now`, not PyJWT's clock
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidSignatureError:
        raise errors.TokenError("bad signature (not signed by this cloud's CA key)") from None
    except jwt.InvalidTokenError as exc:
        raise errors.TokenError(f"malformed JWT ({type(exc).__name__})") from None
    dates = _dates(claims)
    for claim in ("nbf", "iat"):
        if claim in dates and dates[claim] > now:
            raise errors.TokenError(f"not valid before {dates[claim].isoformat()} ({claim})")
    expiry = dates["exp"]
    if now >= expiry:
        raise errors.TokenError(
            f"expired at {expiry.isoformat()}; get a fresh token from the cloud"
        )
    return expiry


def check_unexpired(signed: str, *, now: datetime.datetime) -> None:
    """The edge's own check, before enrolling: the JWT's ``exp`` (read without the key,
    which only the cloud has) is still ahead, so an old token fails with that reason
    instead of the certificate server's bare 401.

    Raises:
        TokenError: unreadable, a time claim that is not a date, or expired.
    """
    try:
        claims = jwt.decode(signed, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise errors.TokenError(f"malformed JWT ({type(exc).__name__})") from None
    expiry = _dates(claims)["exp"]
    if now >= expiry:
        raise errors.TokenError(
            f"expired at {expiry.isoformat()}; get a fresh one with `beehive token`"
        )


def _dates(claims: dict[str, Any]) -> dict[str, datetime.datetime]:
    """The time claims as dates: ``exp`` (required), ``nbf`` and ``iat`` if present.

    Each must be a JSON number (not a boolean) of seconds that is a date this platform
    can hold; a signed token may still carry anything (1e30, NaN, a list), and none of
    it may escape as an OverflowError or a TypeError.

    Raises:
        TokenError: naming the claim and what is wrong with it.
    """
    dates: dict[str, datetime.datetime] = {}
    for claim in ("exp", "nbf", "iat"):
        value = claims.get(claim)
        if value is None:
            if claim == "exp":
                raise errors.TokenError("malformed JWT (exp is missing)")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise errors.TokenError(f"malformed JWT ({claim} is not a number)")
        try:
            if not math.isfinite(value):
                raise ValueError(value)
            dates[claim] = datetime.datetime.fromtimestamp(value, datetime.UTC)
        except (OverflowError, ValueError, OSError):
            raise errors.TokenError(f"malformed JWT ({claim} is out of range)") from None
    return dates


def verify_token(ca: KeyPair, token: str, *, now: datetime.datetime) -> datetime.datetime:
    """Check a whole token against `ca` (hash, signature, expiry); returns its expiry.

    Raises:
        TokenError: naming the check that failed.
    """
    digest, signed = split_token(token)
    check_ca_hash(digest, ca.cert_der)
    return verify_jwt(ca, signed, now=now)


class TokenRotator:
    """Keeps a fresh token in Secret ``tokensecret``, replacing it every `refresh`."""

    def __init__(
        self, store: SecretStore, ca: KeyPair, *, refresh: datetime.timedelta,
        clock: Clock = utc_now, leader: Callable[[], bool] | None = None, poll: float = 1.0,
    ) -> None:  # fmt: skip
        self.store = store  # where the token is written
        self.ca = ca  # signs the tokens
        self.refresh = refresh  # interval between tokens (KubeEdge tokenRefreshDuration)
        self.clock = clock  # source of "now" for each rotation
        self.expires: datetime.datetime | None = None  # expiry of the token last written
        # With several replicas: True while this one is the leader, the only one that
        # writes tokens; the others read the leader's. None: a single replica.
        self.leader = leader
        self.poll = poll  # seconds between checks of leadership and the token's age
        self.rotations = 0  # tokens written by this process
        self._stop = threading.Event()  # set by stop()
        self._thread: threading.Thread | None = None  # the rotation loop

    def rotate(self, now: datetime.datetime) -> datetime.datetime:
        """Write a new token made at `now` to the Secret; returns its expiry."""
        token = new_token(self.ca, now=now, refresh=self.refresh)
        self.store.write(TOKEN_SECRET, {TOKEN_KEY: token.encode("ascii")})
        self.expires = now + 2 * self.refresh
        self.rotations += 1
        log.info("certserver: new join token, expires %s", self.expires.isoformat())
        return self.expires

    def start(self) -> None:
        """Rotate now (with several replicas: if leader and due), then every `refresh`
        (or check every `poll`) in a thread until `stop`."""
        if self.leader is None:
            self.rotate(self.clock())
        else:
            self.step()
        self._thread = threading.Thread(
            target=self._loop, name="beehive-certserver-token", daemon=True
        )
        self._thread.start()

    def step(self) -> None:
        """With several replicas: read the current token's expiry; if this replica is
        the leader and the token is missing, not this CA's, or older than `refresh`,
        write a new one. A new leader thus continues the old one's schedule."""
        now = self.clock()
        current = read_token(self.store)
        try:
            self.expires = verify_token(self.ca, current, now=now) if current else None
        except errors.TokenError:
            self.expires = None
        due = self.expires is None or self.expires - self.refresh <= now
        if due and self.leader is not None and self.leader():
            self.rotate(now)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        wait = self.refresh.total_seconds() if self.leader is None else self.poll
        while not self._stop.wait(wait):
            try:
                if self.leader is None:
                    self.rotate(self.clock())
                else:
                    self.step()
            except Exception:  # the old token stays valid; try again next round
                log.exception("certserver: token rotation failed")


def read_token(store: SecretStore) -> str | None:
    """The current token from Secret ``tokensecret`` (``keadm gettoken``), or None."""
    data = store.read(TOKEN_SECRET)
    return data[TOKEN_KEY].decode("ascii") if data and TOKEN_KEY in data else None
