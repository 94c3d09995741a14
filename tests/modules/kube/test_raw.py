"""modules.kube.raw: plain-JSON requests through the official client."""

from __future__ import annotations

import pytest
from kubernetes import client

from modules.kube import raw
from tests.kube_fixtures import KubeTestCluster, kube  # noqa: F401


@pytest.mark.parametrize(
    ("name", "segment"),
    [("edge-1", "edge-1"), ("x?watch=1", "x%3Fwatch%3D1"), ("p#q", "p%23q"), ("a.b", "a.b")],
)
def test_a_name_is_one_path_segment(name: str, segment: str) -> None:
    assert raw.segment(name) == segment


@pytest.mark.parametrize("name", ["ns/configmaps/cm", "ns%2Fconfigmaps%2Fcm", "..", ".", ""])
def test_a_name_that_cannot_be_a_path_segment_is_refused(name: str) -> None:
    with pytest.raises(raw.BadName, match="is not a valid name"):
        raw.segment(name)


def test_quoting_alone_would_not_keep_a_name_in_its_segment(kube: KubeTestCluster) -> None:  # noqa: F811
    # Why `segment` refuses '/' and '%' rather than only quoting them: a real
    # kube-apiserver decodes %2F before it routes (the embedded API answers 404).
    namespace = kube.namespace()
    kube.core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    path = f"/api/v1/namespaces/{namespace}%2Fconfigmaps%2Fcm"
    try:
        found = raw.request(kube.api_client, "GET", path)
    except client.ApiException as exc:  # the embedded API: not found
        assert kube.embedded and exc.status == 404, exc
        return
    assert found["metadata"]["name"] == "cm"


@pytest.mark.parametrize("ended", ["closed", "released"])
def test_shutting_down_a_stream_that_already_ended_is_no_error(
    kube: KubeTestCluster,  # noqa: F811
    ended: str,
) -> None:
    """A watch's reader may end its stream (closed, or released to the pool) just as
    a stop shuts it down from another thread: urllib3 2.x raises ValueError or
    RuntimeError there; the stop must go on."""
    namespace = kube.namespace()
    query = [("watch", "true"), ("timeoutSeconds", "1")]  # the server ends it in 1 s
    response = raw.stream(kube.api_client, f"/api/v1/namespaces/{namespace}/configmaps",
                          query=query, timeout=30)  # fmt: skip
    if ended == "closed":
        response.close()
    else:
        assert list(response) == []  # read to its end, as a watch's reader does
        response.release_conn()
    raw.shutdown(response)
    raw.shutdown(response)  # twice: still nothing to do
