"""modules.kube.raw: plain-JSON requests through the official client."""

from __future__ import annotations

import pytest
from kubernetes import client

from modules.kube import raw
from tests.kube_fixtures import KubeTestCluster, kube  # noqa: F401


@pytest.mark.parametrize(
    ("name", "segment"),
    [("edge-1", "edge-1"), ("a/b", "a%2Fb"), ("x?watch=1", "x%3Fwatch%3D1"), ("p#q", "p%23q")],
)
def test_a_name_is_one_path_segment(name: str, segment: str) -> None:
    assert raw.segment(name) == segment


def test_a_name_with_a_slash_reaches_no_other_resource(kube: KubeTestCluster) -> None:  # noqa: F811
    namespace = kube.namespace()
    kube.core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    path = f"/api/v1/namespaces/{raw.segment(namespace + '/configmaps/cm')}"
    with pytest.raises(client.ApiException) as caught:
        raw.request(kube.api_client, "GET", path)
    assert caught.value.status == 404
    unquoted = raw.request(kube.api_client, "GET", f"/api/v1/namespaces/{namespace}/configmaps/cm")
    assert unquoted["metadata"]["name"] == "cm"  # what the quoting keeps a name from reaching
