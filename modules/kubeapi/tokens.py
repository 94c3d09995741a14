"""Service account tokens: the TokenRequest subresource and the key that signs its JWTs.

Input: `POST .../namespaces/{ns}/serviceaccounts/{name}/token` with an
authentication.k8s.io/v1 TokenRequest, handed over by `api.py` under the store's lock;
output: the TokenRequest with `status.token`, a JWT signed RS256 with the server's
key, and `status.expirationTimestamp`. Checks and errors, in order, as
pkg/registry/core/serviceaccount/storage/token.go (TokenREST.Create); claims as
pkg/serviceaccount/claims.go; the key id as keyIDFromPublicKey (pkg/serviceaccount/jwt.go).

The key is made on first use and kept with the server's state (`KeyStore`, the sqlite
file) so tokens stay valid across restarts; `jwks()` publishes it as
/openid/v1/jwks does, for anyone who verifies the tokens.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from modules.kubeapi import errors
from modules.kubeapi import fielderrors as fe
from modules.kubeapi.store import Store

JsonObj = dict[str, Any]

ISSUER = "https://kubernetes.default.svc.cluster.local"  # --service-account-issuer
API_AUDIENCES = (ISSUER,)  # --api-audiences defaults to the issuer
API_VERSION = "authentication.k8s.io/v1"
KEY_NAME = "service-account-signing-key"
DEFAULT_EXPIRATION = 3600  # SetDefaults_TokenRequestSpec
MIN_EXPIRATION = 600  # ValidateTokenRequest: 10 minutes
MAX_EXPIRATION = 1 << 32
WARN_ONLY_EXPIRATION = 3607  # what kubelets ask for: the token lives a year but warns after
EXTENDED_EXPIRATION = 365 * 24 * 3600  # --service-account-extend-token-expiration (default on)


class KeyStore(Protocol):
    """Where the signing key is kept (`SqlitePersistence` is one)."""

    def load_key(self, name: str) -> bytes | None: ...

    def save_key(self, name: str, pem: bytes) -> None: ...


class TokenIssuer:
    """Signs service account tokens with one RSA key, made (or loaded) on first use."""

    def __init__(self, keys: KeyStore | None = None) -> None:
        self._keys = keys  # keeps the key across restarts, or None (in memory only)
        self._private: rsa.RSAPrivateKey | None = None  # loaded or generated lazily
        self._kid = ""  # key id of the public key, the JWT header's "kid"
        self._lock = threading.Lock()  # one key, however many first callers race

    def _key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._private is None:
                self._private = self._load_or_make()
            return self._private

    def _load_or_make(self) -> rsa.RSAPrivateKey:
        pem = self._keys.load_key(KEY_NAME) if self._keys is not None else None
        if pem is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            if self._keys is not None:
                self._keys.save_key(KEY_NAME, pem)
        loaded = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise TypeError(f"{KEY_NAME} is not an RSA key")
        der = loaded.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._kid = _b64url(hashlib.sha256(der).digest())
        return loaded

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key().public_key()

    def sign(self, claims: JsonObj) -> str:
        """A compact JWS (RS256) of `claims`, headed with the key id and no "typ", as go-jose."""
        key = self._key()
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self._kid, "typ": None})

    def jwks(self) -> JsonObj:
        """The JSON Web Key Set of GET /openid/v1/jwks."""
        numbers = self.public_key().public_numbers()
        key = {
            "use": "sig",
            "kty": "RSA",
            "kid": self._kid,
            "alg": "RS256",
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
        return {"keys": [key]}


def openid_configuration(base_url: str) -> JsonObj:
    """GET /.well-known/openid-configuration (ServiceAccountIssuerDiscovery)."""
    return {
        "issuer": ISSUER,
        "jwks_uri": f"{base_url}/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _invalid(name: str, causes: list[fe.Cause]) -> None:
    fe.raise_if_any("TokenRequest", "authentication.k8s.io", name, causes)


def request_token(
    store: Store, issuer: TokenIssuer, ns: str, name: str, body: Any, *, now: float | None = None
) -> JsonObj:
    """Answer a TokenRequest for service account `ns`/`name` (201 body); the caller holds
    the store's lock.

    Raises:
        errors.ApiError: 400 for a body that is not a TokenRequest or binds to what it may
            not, 404 for a missing service account or bound object, 409 for a UID that
            does not match, 422 for an invalid request.
    """
    request = _shape(body)
    meta = _check_names(dict(request.get("metadata") or {}), ns, name)
    account = store.get(_type(store, "serviceaccounts"), ns, name).obj["metadata"]
    if meta.get("uid") and meta["uid"] != account["uid"]:
        why = (
            f"the UID in the token request ({meta['uid']}) does not match the UID of the "
            f"service account ({account['uid']})"
        )
        raise errors.conflict("TokenRequest", "authentication.k8s.io", name, why)
    spec = _defaulted_spec(request)
    issued = int(time.time() if now is None else now)
    meta.update(name=name, namespace=ns, uid=account["uid"], creationTimestamp=_stamp(issued))
    seconds = _check_expiration(spec["expirationSeconds"])
    private: JsonObj = {"namespace": ns, "serviceaccount": {"name": name, "uid": account["uid"]}}
    if spec["boundObjectRef"] is not None:
        private.update(_bind(store, ns, name, spec["boundObjectRef"]))
    token = issuer.sign(_claims(spec, private, issued, seconds))
    status = {"token": token, "expirationTimestamp": _stamp(issued + seconds)}
    return {
        "kind": "TokenRequest",
        "apiVersion": API_VERSION,
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def _check_names(meta: JsonObj, ns: str, name: str) -> JsonObj:
    """A name or namespace in the body must be the service account's."""
    for field, want in (("name", name), ("namespace", ns)):
        if meta.get(field) and meta[field] != want:
            detail = f"must match the service account {field} if specified"
            _invalid(name, [fe.invalid(f"metadata.{field}", meta[field], detail)])
    return meta


def _defaulted_spec(request: JsonObj) -> JsonObj:
    """The spec with the API audiences, an hour and no bound object unless asked otherwise."""
    spec = dict(request.get("spec") or {})
    spec["audiences"] = list(spec.get("audiences") or API_AUDIENCES)
    spec.setdefault("expirationSeconds", DEFAULT_EXPIRATION)
    spec.setdefault("boundObjectRef", None)
    return spec


def _check_expiration(seconds: Any) -> int:
    """ValidateTokenRequest (a non-integer fails decoding, a 400)."""
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise errors.bad_request(
            "json: cannot unmarshal into Go struct field TokenRequestSpec.spec.expirationSeconds "
            "of type int64"
        )
    field = "spec.expirationSeconds"
    if seconds < MIN_EXPIRATION:
        detail = "may not specify a duration less than 10 minutes"
        _invalid("", [fe.invalid(field, seconds, detail)])
    if seconds > MAX_EXPIRATION:
        _invalid(
            "", [fe.invalid(field, seconds, "may not specify a duration larger than 2^32 seconds")]
        )
    return seconds


def _shape(body: Any) -> JsonObj:
    if not isinstance(body, dict):
        raise errors.bad_request("Object 'Kind' is missing in request body")
    for field, want in (("apiVersion", API_VERSION), ("kind", "TokenRequest")):
        if body.get(field, want) != want:
            raise errors.bad_request(
                f"the {'API version' if field == 'apiVersion' else 'kind'} in the data "
                f"({body[field]}) does not match the expected "
                f"{'API version' if field == 'apiVersion' else 'kind'} ({want})"
            )
    for part in ("metadata", "spec"):
        if not isinstance(body.get(part) or {}, dict):
            raise errors.bad_request(f"{part} must be an object")
    return body


def _type(store: Store, plural: str) -> Any:
    rtype = store.catalogue.lookup("", "v1", plural)
    assert rtype is not None
    return rtype


def _bind(store: Store, ns: str, name: str, ref: Any) -> JsonObj:
    """The private claims for the bound object, after checking it (token.go's switch)."""
    if not isinstance(ref, dict):
        raise errors.bad_request("spec.boundObjectRef must be an object")
    api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
    group, _, version = api_version.rpartition("/")
    target = str(ref.get("name") or "")
    claims: JsonObj = {}
    if group == "" and kind == "Pod":
        pod = store.get(_type(store, "pods"), ns, target).obj
        if ((pod.get("spec") or {}).get("serviceAccountName") or "default") != name:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{name}" to pod running with different '
                "serviceaccount name."
            )
        claims["pod"] = {"name": target, "uid": pod["metadata"]["uid"]}
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            claims["node"] = _node_claim(store, node_name)
        uid = pod["metadata"]["uid"]
    elif group == "" and kind == "Secret":
        uid = store.get(_type(store, "secrets"), ns, target).obj["metadata"]["uid"]
        claims["secret"] = {"name": target, "uid": uid}
    elif group == "" and kind == "Node":
        uid = store.get(_type(store, "nodes"), "", target).obj["metadata"]["uid"]
        claims["node"] = {"name": target, "uid": uid}
    else:
        raise errors.bad_request(
            f"cannot bind token to object of type {group}/{version}, Kind={kind}"
        )
    if ref.get("uid") and ref["uid"] != uid:
        why = (
            f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
            "record. The object might have been deleted and then recreated"
        )
        raise errors.conflict(kind, group, target, why)
    return claims


def _node_claim(store: Store, node_name: str) -> JsonObj:
    """The pod's node; a missing node still names it (ServiceAccountTokenPodNodeInfo)."""
    nodes = _type(store, "nodes")
    if store.exists(nodes, "", node_name):
        return {"name": node_name, "uid": store.get(nodes, "", node_name).obj["metadata"]["uid"]}
    return {"name": node_name}


def _claims(spec: JsonObj, private: JsonObj, issued: int, seconds: int) -> JsonObj:
    expires = issued + seconds
    audiences = spec["audiences"]
    if (
        "pod" in private
        and seconds == WARN_ONLY_EXPIRATION
        and set(audiences) <= set(API_AUDIENCES)
    ):
        private["warnafter"] = expires
        expires = issued + EXTENDED_EXPIRATION
    return {
        "aud": audiences,
        "exp": expires,
        "iat": issued,
        "iss": ISSUER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
        "nbf": issued,
        "sub": f"system:serviceaccount:{private['namespace']}:{private['serviceaccount']['name']}",
    }
