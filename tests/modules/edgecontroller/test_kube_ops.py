"""KubeOps: edgecontroller's API writes keep their connections (against the `kube` fixture).

A raw (``_preload_content=False``) response holds its connection until it is read
(urllib3): a write whose answer nobody reads opens a new connection, with a TLS
handshake, for every call. The library test fails loudly if urllib3 changes that.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from modules.edgecontroller import kube_ops
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube import raw
from tests.kube_fixtures import KubeTestCluster, kube  # noqa: F401

PODS = 4


def connections(api_client: client.ApiClient) -> int:
    """Connections the client's pool for the API server has opened so far."""
    host = api_client.configuration.host
    pool = api_client.rest_client.pool_manager.connection_from_url(host)
    opened: int = pool.num_connections
    return opened


def make_pods(kube: KubeTestCluster) -> str:  # noqa: F811
    namespace = kube.namespace()
    for i in range(PODS):
        kube.core.create_namespaced_pod(namespace, {
            "metadata": {"name": f"p{i}"},
            "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "x"}]},
        })  # fmt: skip
    return namespace


def test_deleting_pods_uses_one_connection(kube: KubeTestCluster) -> None:  # noqa: F811
    namespace = make_pods(kube)
    api_client = kube.new_client()
    ops = kube_ops.KubeOps(api_client, EdgeControllerSettings())
    for i in range(PODS):
        ops.delete_pod(namespace, f"p{i}", {"gracePeriodSeconds": 0})
    ops.delete_pod(namespace, "p0", {"gracePeriodSeconds": 0})  # gone: no error
    assert connections(api_client) == 1
    assert kube.core.list_namespaced_pod(namespace).items == []


def test_an_unread_raw_response_keeps_its_connection_from_the_pool(
    kube: KubeTestCluster,  # noqa: F811
) -> None:
    namespace = make_pods(kube)
    api_client = kube.new_client()
    core: Any = client.CoreV1Api(api_client)
    for i in range(PODS):
        core.delete_namespaced_pod(f"p{i}", namespace, _preload_content=False)
    assert connections(api_client) == PODS


def test_a_name_no_object_can_have_is_refused_before_any_request(
    kube: KubeTestCluster,  # noqa: F811
) -> None:
    # A real kube-apiserver decodes %2F before routing: quoting alone would let this
    # namespace reach another resource (tests/modules/kube/test_raw.py).
    api_client = kube.new_client()
    ops = kube_ops.KubeOps(api_client, EdgeControllerSettings())
    with pytest.raises(raw.BadName):
        ops.patch_pod_status("default%2Fconfigmaps%2Fcm", "p", {"phase": "Failed"})
    with pytest.raises(raw.BadName):
        ops.delete_pod("default", "..", {"gracePeriodSeconds": 0})
    assert connections(api_client) == 0
