"""Kubernetes API requests: verb and resource from method and URL, as the API server's
own metrics label them, and counted with their status."""

from __future__ import annotations

from typing import Any

import pytest

from modules.kube import metered

API = "https://10.0.0.1:6443"


@pytest.mark.parametrize(
    ("method", "path", "verb", "resource"),
    [
        pytest.param("GET", "/api/v1/pods", "list", "pods", id="a list across namespaces"),
        pytest.param("GET", "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=5", "watch",
                     "pods", id="a watch"),
        pytest.param("GET", "/api/v1/namespaces/ns/pods/p", "get", "pods", id="a get"),
        pytest.param("PATCH", "/api/v1/namespaces/ns/pods/p/status", "patch", "pods/status",
                     id="a subresource"),
        pytest.param("POST", "/api/v1/nodes", "create", "nodes", id="a cluster-scoped create"),
        pytest.param("PUT", "/api/v1/nodes/n", "update", "nodes", id="an update"),
        pytest.param("DELETE", "/api/v1/namespaces/ns/pods/p", "delete", "pods", id="a delete"),
        pytest.param("DELETE", "/api/v1/namespaces/ns/pods", "deletecollection", "pods",
                     id="a collection delete"),
        pytest.param("GET", "/api/v1/namespaces/ns", "get", "namespaces", id="a namespace"),
        pytest.param("PUT", "/api/v1/namespaces/ns/finalize", "update", "namespaces/finalize",
                     id="a namespace's own subresource"),
        pytest.param("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                     "create", "leases", id="a group's resource"),
        pytest.param("GET", "/apis/reliablesyncs.kubeedge.io/v1alpha1/clusterobjectsyncs",
                     "list", "clusterobjectsyncs", id="a custom resource"),
        pytest.param("GET", "/version", "get", "other", id="not a resource"),
    ],
)  # fmt: skip
def test_a_request_is_classified_by_verb_and_resource(
    method: str, path: str, verb: str, resource: str
) -> None:
    assert metered.classify(method, API + path) == (verb, resource)


class FakeRest:
    def __init__(self, status: int | None) -> None:
        self.status = status

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if self.status is None:
            raise OSError("connection refused")
        return self


class FakeClient:
    def __init__(self, status: int | None) -> None:
        self.rest_client = FakeRest(status)


def test_every_request_of_an_instrumented_client_is_counted_with_its_status() -> None:
    stats = metered.RequestStats()
    ok, refused = stats.instrument(FakeClient(404)), stats.instrument(FakeClient(None))
    ok.rest_client.request("GET", API + "/api/v1/nodes/n", headers={})
    with pytest.raises(OSError, match="refused"):
        refused.rest_client.request("GET", API + "/api/v1/nodes/n")
    snapshot = stats.snapshot()
    assert snapshot["requests"] == [["get", "nodes", "404", 1], ["get", "nodes", "error", 1]]
    [[verb, resource, latency]] = snapshot["latency"]
    assert (verb, resource, sum(latency["counts"])) == ("get", "nodes", 2)
