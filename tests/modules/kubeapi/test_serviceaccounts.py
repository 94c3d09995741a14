"""Service accounts and their TokenRequest subresource, through the official client."""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from kubernetes import client, config

from modules.kubeapi import EmbeddedKubeAPI, tokens
from modules.kubeapi.resources import Catalogue
from modules.kubeapi.store import Store
from tests.kube_fixtures import KubeTestCluster, manifest, pod_manifest, unique
from tests.modules.kubeapi.helpers import expect_failure, raw_call

YEAR = 365 * 24 * 3600


def _token_request(**spec: Any) -> Any:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def _account(kube: KubeTestCluster, namespace: str, name: str = "robot") -> Any:
    return kube.core.create_namespaced_service_account(
        namespace, manifest({"metadata": {"name": name}})
    )


def _pod_of(kube: KubeTestCluster, namespace: str, account: str, **spec: Any) -> Any:
    body = pod_manifest(unique("p"), serviceAccountName=account, **spec)
    return kube.core.create_namespaced_pod(namespace, body)


def _verified_claims(kube: KubeTestCluster, token: str, audience: str) -> dict[str, Any]:
    """The token's claims, its signature checked against the server's published keys."""
    status, jwks = raw_call(kube.api_client, "GET", "/openid/v1/jwks")
    assert status == 200
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token, key=jwt.PyJWK(key), algorithms=["RS256"], audience=audience
    )
    return claims


def _epoch(stamp: Any) -> int:
    return calendar.timegm(stamp.utctimetuple())


def test_service_accounts_are_created_listed_and_deleted_with_the_object_returned(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    created = _account(kube, kube_namespace)
    assert created.metadata.uid and created.metadata.namespace == kube_namespace
    listed = kube.core.list_namespaced_service_account(
        kube_namespace, field_selector="metadata.name=robot"
    )
    assert [sa.metadata.name for sa in listed.items] == ["robot"]
    path = f"/api/v1/namespaces/{kube_namespace}/serviceaccounts/robot"
    status, deleted = raw_call(kube.api_client, "DELETE", path)
    assert (status, deleted["kind"], deleted["metadata"]["uid"]) == (
        200,
        "ServiceAccount",
        created.metadata.uid,
    )


def test_a_token_request_gets_a_signed_token_for_the_api_audiences(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    account = _account(kube, kube_namespace)
    path = f"/api/v1/namespaces/{kube_namespace}/serviceaccounts/robot/token"
    status, answer = raw_call(
        kube.api_client, "POST", path, _token_request(audiences=None, expirationSeconds=3600)
    )
    assert (status, answer["kind"], answer["apiVersion"]) == (
        201,
        "TokenRequest",
        "authentication.k8s.io/v1",
    )
    meta = answer["metadata"]
    assert (meta["name"], meta["namespace"], meta["uid"]) == (
        "robot",
        kube_namespace,
        account.metadata.uid,
    )
    assert meta["creationTimestamp"]
    audiences = answer["spec"]["audiences"]
    assert audiences and answer["spec"]["expirationSeconds"] == 3600
    if kube.embedded:
        assert audiences == ["https://kubernetes.default.svc.cluster.local"]
    claims = _verified_claims(kube, answer["status"]["token"], audiences[0])
    _, discovery = raw_call(kube.api_client, "GET", "/.well-known/openid-configuration")
    assert claims["iss"] == discovery["issuer"]
    assert claims["sub"] == f"system:serviceaccount:{kube_namespace}:robot"
    assert claims["aud"] == audiences
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 3600
    assert claims["kubernetes.io"]["namespace"] == kube_namespace
    assert claims["kubernetes.io"]["serviceaccount"] == {
        "name": "robot",
        "uid": account.metadata.uid,
    }
    assert "pod" not in claims["kubernetes.io"]
    expires = time.strptime(answer["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    # taken just before the claims are built: never after the token's own expiry
    assert 0 <= claims["exp"] - calendar.timegm(expires) <= 1


def test_the_client_requests_tokens_for_its_own_audiences(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    _account(kube, kube_namespace)
    answer = kube.core.create_namespaced_service_account_token(
        "robot", kube_namespace, _token_request(audiences=["vault"], expirationSeconds=600)
    )
    assert answer.spec.audiences == ["vault"]
    claims = jwt.decode(answer.status.token, options={"verify_signature": False})
    assert claims["aud"] == ["vault"] and claims["exp"] - claims["iat"] == 600


def test_a_token_bound_to_a_pod_names_the_pod_and_its_node(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    _account(kube, kube_namespace)
    node = unique("no-such-node")
    pod = _pod_of(kube, kube_namespace, "robot", nodeName=node)
    ref = {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid}
    answer = kube.core.create_namespaced_service_account_token(
        "robot", kube_namespace, _token_request(expirationSeconds=3600, boundObjectRef=ref)
    )
    assert answer.spec.bound_object_ref.uid == pod.metadata.uid
    private = jwt.decode(answer.status.token, options={"verify_signature": False})["kubernetes.io"]
    assert private["pod"] == {"name": pod.metadata.name, "uid": pod.metadata.uid}
    assert private["node"] == {"name": node}  # the node does not exist: its name only


def test_a_kubelet_token_lives_a_year_but_warns_after_the_hour_it_asked_for(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    _account(kube, kube_namespace)
    pod = _pod_of(kube, kube_namespace, "robot")
    ref = {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid}
    answer = kube.core.create_namespaced_service_account_token(
        "robot", kube_namespace, _token_request(expirationSeconds=3607, boundObjectRef=ref)
    )
    claims = jwt.decode(answer.status.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == YEAR
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    assert 0 <= claims["iat"] + 3607 - _epoch(answer.status.expiration_timestamp) <= 1


def _bound(name: str, uid: str = "", kind: str = "Pod") -> Any:
    ref = {"kind": kind, "apiVersion": "v1", "name": name}
    return _token_request(boundObjectRef=dict(ref, uid=uid) if uid else ref)


def test_token_for_a_missing_service_account_is_not_found(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    body = expect_failure(
        lambda: kube.core.create_namespaced_service_account_token(
            "ghost", kube_namespace, _token_request()
        ),
        404,
        "NotFound",
        'serviceaccounts "ghost" not found',
    )
    assert body["details"] == {"name": "ghost", "kind": "serviceaccounts"}


def test_token_bound_to_a_missing_pod_is_not_found(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    _account(kube, kube_namespace)
    expect_failure(
        lambda: kube.core.create_namespaced_service_account_token(
            "robot", kube_namespace, _bound("gone")
        ),
        404,
        "NotFound",
        'pods "gone" not found',
    )


def test_token_bound_to_a_recreated_pod_is_a_conflict(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    _account(kube, kube_namespace)
    pod = _pod_of(kube, kube_namespace, "robot")
    stale = "0f0f0f0f-0000-4000-8000-000000000000"
    body = expect_failure(
        lambda: kube.core.create_namespaced_service_account_token(
            "robot", kube_namespace, _bound(pod.metadata.name, stale)
        ),
        409,
        "Conflict",
        f'Operation cannot be fulfilled on Pod "{pod.metadata.name}": the UID in the bound '
        f"object reference ({stale}) does not match the UID in record. The object might have "
        "been deleted and then recreated",
    )
    assert body["details"] == {"name": pod.metadata.name, "kind": "Pod"}


def test_token_bound_to_a_pod_of_another_service_account_is_a_bad_request(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    _account(kube, kube_namespace)
    _account(kube, kube_namespace, "other")
    pod = _pod_of(kube, kube_namespace, "other")
    expect_failure(
        lambda: kube.core.create_namespaced_service_account_token(
            "robot", kube_namespace, _bound(pod.metadata.name, pod.metadata.uid)
        ),
        400,
        "BadRequest",
        'cannot bind token for serviceaccount "robot" to pod running with different '
        "serviceaccount name.",
    )


@pytest.mark.parametrize(
    ("request_body", "code", "reason", "text"),
    [
        pytest.param(
            _token_request(expirationSeconds=599),
            422,
            "Invalid",
            'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
            "Invalid value: 599: may not specify a duration less than 10 minutes",
            id="expiring in under ten minutes",
        ),
        pytest.param(
            _bound("settings", kind="ConfigMap"),
            400,
            "BadRequest",
            "cannot bind token to object of type /v1, Kind=ConfigMap",
            id="bound to a kind tokens cannot be bound to",
        ),
        pytest.param(
            dict(_token_request(), metadata={"name": "someone-else"}),
            422,
            "Invalid",
            'metadata.name: Invalid value: "someone-else": must match the service account '
            "name if specified",
            id="naming another service account",
        ),
    ],
)
def test_bad_token_requests_are_refused(
    kube: KubeTestCluster,
    kube_namespace: str,
    request_body: Any,
    code: int,
    reason: str,
    text: str,
) -> None:
    _account(kube, kube_namespace)
    expect_failure(
        lambda: kube.core.create_namespaced_service_account_token(
            "robot", kube_namespace, request_body
        ),
        code,
        reason,
        text,
    )


def test_the_token_subresource_only_takes_posts(kube: KubeTestCluster, kube_namespace: str) -> None:
    _account(kube, kube_namespace)
    path = f"/api/v1/namespaces/{kube_namespace}/serviceaccounts/robot/token"
    status, body = raw_call(kube.api_client, "GET", path)
    assert (status, body["reason"]) == (405, "MethodNotAllowed")


# -- the embedded server's issuer --------------------------------------------------


def test_the_signing_key_is_kept_with_the_state_across_restarts(tmp_path: Path) -> None:
    data = str(tmp_path / "state.db")
    body = _token_request(audiences=["a"])
    tokens_issued: list[str] = []
    for _ in range(2):
        with EmbeddedKubeAPI(data_path=data) as server:
            api_client = config.new_client_from_config(
                str(server.write_kubeconfig(tmp_path / "kc"))
            )
            core: Any = client.CoreV1Api(api_client)
            if not tokens_issued:
                core.create_namespaced_service_account("default", {"metadata": {"name": "keep"}})
            tokens_issued.append(
                core.create_namespaced_service_account_token("keep", "default", body).status.token
            )
            _, jwks = raw_call(api_client, "GET", "/openid/v1/jwks")
            api_client.close()
    kids = {jwt.get_unverified_header(t)["kid"] for t in tokens_issued}
    assert kids == {jwks["keys"][0]["kid"]}
    first = jwt.decode(
        tokens_issued[0], key=jwt.PyJWK(jwks["keys"][0]), algorithms=["RS256"], audience="a"
    )
    assert first["sub"] == "system:serviceaccount:default:keep"


def test_expiration_timestamp_is_the_issue_time_plus_the_seconds_asked() -> None:
    store = Store()
    accounts = Catalogue().lookup("", "v1", "serviceaccounts")
    assert accounts is not None
    store.bootstrap()
    store.create(accounts, "default", {"metadata": {"name": "sa"}})
    issued = tokens.request_token(
        store,
        tokens.TokenIssuer(),
        "default",
        "sa",
        _token_request(expirationSeconds=7200),
        now=1_700_000_000,
    )
    assert issued["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert issued["status"]["expirationTimestamp"] == "2023-11-15T00:13:20Z"
    assert issued["spec"]["boundObjectRef"] is None
    header = jwt.get_unverified_header(issued["status"]["token"])
    assert header == {"alg": "RS256", "kid": header["kid"]}  # no "typ", as go-jose
