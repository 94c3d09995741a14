"""Discovery of the service account, storage, event and certificate kinds, and kubectl on them."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import jwt
import pytest
from kubernetes import client

from tests.kube_fixtures import KubeTestCluster, manifest


def _resources(api_list: Any) -> dict[str, Any]:
    return {r.name: r for r in api_list.resources}


def test_core_discovery_lists_the_new_kinds_with_their_subresources(kube: KubeTestCluster) -> None:
    core = _resources(client.CoreV1Api(kube.api_client).get_api_resources())
    for name, kind, short in (
        ("serviceaccounts", "ServiceAccount", "sa"),
        ("persistentvolumes", "PersistentVolume", "pv"),
        ("persistentvolumeclaims", "PersistentVolumeClaim", "pvc"),
        ("events", "Event", "ev"),
    ):
        assert (core[name].kind, short in core[name].short_names) == (kind, True), name
    assert core["persistentvolumes"].namespaced is False
    assert {"persistentvolumes/status", "persistentvolumeclaims/status"} <= core.keys()
    assert "events/status" not in core
    token = core["serviceaccounts/token"]
    assert (token.group, token.version, token.kind, token.verbs) == (
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
        ["create"],
    )


def test_group_discovery_lists_volume_attachments_and_signing_requests(
    kube: KubeTestCluster,
) -> None:
    groups = {g.name for g in client.ApisApi(kube.api_client).get_api_versions().groups}
    assert {"storage.k8s.io", "certificates.k8s.io"} <= groups
    storage = _resources(client.StorageV1Api(kube.api_client).get_api_resources())
    assert storage["volumeattachments"].namespaced is False
    assert "volumeattachments/status" in storage
    certs = _resources(client.CertificatesV1Api(kube.api_client).get_api_resources())
    assert certs["certificatesigningrequests"].short_names == ["csr"]
    assert set(certs["certificatesigningrequests/approval"].verbs) == {"get", "patch", "update"}
    assert "certificatesigningrequests/status" in certs


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_gets_the_new_kinds_and_creates_tokens(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_service_account(
        kube_namespace, manifest({"metadata": {"name": "robot"}})
    )
    kubectl = ["kubectl", "--kubeconfig", str(kube.kubeconfig_path), "-n", kube_namespace]
    listed = subprocess.run(
        [*kubectl, "get", "sa,pv,pvc,events,volumeattachments,csr", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "serviceaccount/robot" in listed.stdout.split()
    token = subprocess.run(
        [*kubectl, "create", "token", "robot", "--duration=15m", "--audience=bh-test"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["exp"] - claims["iat"]) == (["bh-test"], 900)
    refused = subprocess.run(
        [*kubectl, "create", "token", "robot", "--duration=1m"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0
    assert "may not specify a duration less than 10 minutes" in refused.stderr
