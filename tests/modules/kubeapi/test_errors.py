"""Bad input gets the status code and Status body a real API server gives; nothing changes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.kube_fixtures import KubeTestCluster, manifest, unique


def _status(exc: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body or "")
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def _expect(call: Any, code: int, reason: str, text: str) -> None:
    with pytest.raises(client.ApiException) as info:
        call()
    body = _status(info.value)
    assert (info.value.status, body["reason"]) == (code, reason)
    assert text in body["message"]


def test_malformed_json_is_a_bad_request(kube: KubeTestCluster, kube_namespace: str) -> None:
    response = kube.api_client.call_api(
        *kube.api_client.param_serialize(
            "POST",
            f"/api/v1/namespaces/{kube_namespace}/configmaps",
            body="{not json",
            header_params={"Content-Type": "application/json"},
            auth_settings=["BearerToken"],
        )
    )
    assert response.status == 400
    body = json.loads(response.read())
    assert (body["kind"], body["reason"]) == ("Status", "BadRequest")


@pytest.mark.parametrize(
    ("metadata", "text"),
    [
        pytest.param({}, "metadata.name: Required value", id="missing name"),
        pytest.param({"name": "Bad_Name"}, "metadata.name: Invalid value", id="invalid name"),
    ],
)
def test_invalid_names_are_unprocessable(
    kube: KubeTestCluster, kube_namespace: str, metadata: dict[str, str], text: str
) -> None:
    body = manifest({"metadata": metadata})
    _expect(
        lambda: kube.core.create_namespaced_config_map(kube_namespace, body), 422, "Invalid", text
    )


def test_nonexistent_namespace_is_not_found(kube: KubeTestCluster) -> None:
    missing = unique("nope")
    body = manifest({"metadata": {"name": "x"}})
    _expect(
        lambda: kube.core.create_namespaced_config_map(missing, body),
        404,
        "NotFound",
        f'namespaces "{missing}" not found',
    )


def test_body_namespace_disagreeing_with_the_url_is_a_bad_request(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    body = manifest({"metadata": {"name": "x", "namespace": "default"}})
    _expect(
        lambda: kube.core.create_namespaced_config_map(kube_namespace, body),
        400,
        "BadRequest",
        "does not match the namespace",
    )


def test_request_over_three_mebibytes_is_too_large(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    body = manifest({"metadata": {"name": "big"}, "data": {"blob": "x" * (3 * 1024 * 1024 + 10)}})
    with pytest.raises(client.ApiException) as info:
        kube.core.create_namespaced_config_map(kube_namespace, body)
    assert info.value.status == 413
    assert kube.core.list_namespaced_config_map(kube_namespace).items == []


def test_config_map_data_over_one_mebibyte_is_invalid(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    body = manifest({"metadata": {"name": "big"}, "data": {"blob": "x" * (1024 * 1024 + 10)}})
    _expect(
        lambda: kube.core.create_namespaced_config_map(kube_namespace, body),
        422,
        "Invalid",
        "Too long",
    )


def test_unknown_resource_is_not_found(kube: KubeTestCluster, kube_namespace: str) -> None:
    with pytest.raises(client.ApiException) as info:
        kube.custom.list_namespaced_custom_object(
            "nothing.example.com", "v1", kube_namespace, "gizmos"
        )
    assert info.value.status == 404


def test_patch_that_does_not_apply_is_refused_and_changes_nothing(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_config_map(
        kube_namespace, manifest({"metadata": {"name": "c"}, "data": {"a": "1"}})
    )
    ops = [
        {"op": "replace", "path": "/data/a", "value": "2"},
        {"op": "test", "path": "/data/a", "value": "1"},
    ]
    with pytest.raises(client.ApiException) as info:
        kube.core.patch_namespaced_config_map("c", kube_namespace, manifest(ops))
    assert info.value.status == 422
    assert _status(info.value)["reason"] == "Invalid"
    assert kube.core.read_namespaced_config_map("c", kube_namespace).data == {"a": "1"}


def test_update_of_a_missing_object_is_not_found(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    body = manifest({"metadata": {"name": "ghost"}})
    _expect(
        lambda: kube.core.replace_namespaced_config_map("ghost", kube_namespace, body),
        404,
        "NotFound",
        'configmaps "ghost" not found',
    )


def test_pod_without_containers_is_invalid(kube: KubeTestCluster, kube_namespace: str) -> None:
    body = manifest({"metadata": {"name": "p"}, "spec": {"containers": []}})
    _expect(
        lambda: kube.core.create_namespaced_pod(kube_namespace, body),
        422,
        "Invalid",
        "spec.containers",
    )


def test_unsupported_field_selector_is_a_bad_request(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    _expect(
        lambda: kube.core.list_namespaced_config_map(kube_namespace, field_selector="data.x=1"),
        400,
        "BadRequest",
        '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
    )
    _expect(  # kinds with field selectors of their own word it otherwise
        lambda: kube.core.list_namespaced_pod(kube_namespace, field_selector="data.x=1"),
        400,
        "BadRequest",
        "field label not supported: data.x",
    )
