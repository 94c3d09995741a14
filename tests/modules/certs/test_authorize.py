"""Per-node authorization: a table of what an edge may and may not send."""

from __future__ import annotations

from typing import Any

import pytest

from beehive import Message
from modules.certs.authorize import NodeView, authorize, references

POD_A = {
    "metadata": {"name": "web", "namespace": "ns"},
    "spec": {
        "nodeName": "edge-a",
        "volumes": [
            {"name": "c", "configMap": {"name": "web-config"}},
            {"name": "p", "projected": {"sources": [{"secret": {"name": "projected"}}]}},
        ],
        "containers": [
            {
                "name": "m",
                "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "web-secret", "key": "k"}}}
                ],
            }
        ],
        "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init-config"}}]}],
        "imagePullSecrets": [{"name": "pull"}],
    },
}
POD_B = {
    "metadata": {"name": "db", "namespace": "ns"},
    "spec": {
        "nodeName": "edge-b",
        "volumes": [{"name": "s", "secret": {"secretName": "db-secret"}}],
        "containers": [],
    },
}
VIEW = NodeView.from_pods("edge-a", [POD_A, POD_B])


def msg(operation: str, resource: str, content: Any = None) -> Message:
    return Message.new(
        source="edged", group="resource", operation=operation, resource=resource, content=content
    )


def test_view_holds_only_the_nodes_pods_and_what_they_reference() -> None:
    assert VIEW.pods == {("ns", "web")}
    assert VIEW.configmaps == {("ns", "web-config"), ("ns", "init-config")}
    assert VIEW.secrets == {("ns", "web-secret"), ("ns", "projected"), ("ns", "pull")}
    assert references({}) == (set(), set())


@pytest.mark.parametrize(
    ("operation", "resource", "content"),
    [
        pytest.param(
            "update",
            "node/edge-a/null/nodestatus/edge-a",
            {"metadata": {"name": "edge-a"}},
            id="own node status",
        ),
        pytest.param("insert", "node/edge-a/null/node/edge-a", None, id="register itself"),
        pytest.param("update", "node/edge-a/kube-node-lease/lease/edge-a", None, id="own lease"),
        pytest.param(
            "update", "node/edge-a/ns/podstatus/web", None, id="status of a pod bound to it"
        ),
        pytest.param(
            "patch",
            "node/edge-a/ns/pod/web",
            {"metadata": {"name": "web"}},
            id="patch a pod bound to it",
        ),
        pytest.param("delete", "node/edge-a/ns/pod/web", None, id="delete a pod bound to it"),
        pytest.param(
            "insert",
            "node/edge-a/ns/pod/mirror",
            {"metadata": {"name": "mirror"}, "spec": {"nodeName": "edge-a"}},
            id="create a mirror pod bound to it",
        ),
        pytest.param(
            "query",
            "node/edge-a/ns/configmap/web-config",
            None,
            id="query a configmap its pod mounts",
        ),
        pytest.param(
            "query",
            "node/edge-a/ns/secret/web-secret",
            None,
            id="query a secret its pod uses in env",
        ),
        pytest.param("response", "node/edge-a/ns/pod/web", "OK", id="ack for its own resource"),
    ],
)
def test_allowed(operation, resource, content) -> None:
    decision = authorize("edge-a", msg(operation, resource, content), VIEW)
    assert decision.allowed, decision.reason


@pytest.mark.parametrize(
    ("operation", "resource", "content", "reason"),
    [
        pytest.param(
            "update",
            "node/edge-a/null/nodestatus/edge-b",
            None,
            "its own node object",
            id="status for another node",
        ),
        pytest.param(
            "update",
            "node/edge-a/null/nodestatus/edge-a",
            {"metadata": {"name": "edge-b"}},
            "its own node object",
            id="own resource, content for another node",
        ),
        pytest.param(
            "update",
            "node/edge-b/null/nodestatus/edge-b",
            None,
            "another node",
            id="resource prefixed with another node",
        ),
        pytest.param(
            "response",
            "node/edge-b/ns/pod/db",
            "OK",
            "another node",
            id="reply routed to another node",
        ),
        pytest.param(
            "update",
            "node/edge-a/kube-node-lease/lease/edge-b",
            None,
            "its own lease",
            id="another node's lease",
        ),
        pytest.param(
            "patch",
            "node/edge-a/ns/pod/db",
            None,
            "not bound to node",
            id="patch a pod bound elsewhere",
        ),
        pytest.param(
            "update",
            "node/edge-a/ns/podstatus/db",
            None,
            "not bound to node",
            id="status of a pod bound elsewhere",
        ),
        pytest.param(
            "insert",
            "node/edge-a/ns/pod/evil",
            {"metadata": {"name": "evil"}, "spec": {"nodeName": "edge-b"}},
            "must be bound to it",
            id="create a pod on another node",
        ),
        pytest.param(
            "update",
            "node/edge-a/ns/podstatus",
            None,
            "must name one pod",
            id="podstatus without a name",
        ),
        pytest.param(
            "query",
            "node/edge-a/ns/secret/db-secret",
            None,
            "references",
            id="secret only another node's pod uses",
        ),
        pytest.param(
            "query",
            "node/edge-a/kube-system/secret/admin-token",
            None,
            "references",
            id="secret no pod references",
        ),
        pytest.param(
            "update",
            "node/edge-a/ns/configmap/web-config",
            None,
            "may only query",
            id="write a configmap",
        ),
        pytest.param(
            "query",
            "node/edge-a/ns/serviceaccounttoken/default",
            None,
            "not allowed",
            id="unknown resource type",
        ),
        pytest.param(
            "delete", "node/edge-a/null/node/edge-a", None, "not allowed", id="delete its node"
        ),
        pytest.param(
            "update",
            "node/edge-a/ns/pod/web/../../db",
            None,
            "may not contain",
            id="name smuggling a path",
        ),
        pytest.param(
            "update",
            "edge-a/ns/pod/web",
            None,
            "node/<node>",
            id="resource without the node prefix",
        ),
    ],
)
def test_refused(operation, resource, content, reason) -> None:
    decision = authorize("edge-a", msg(operation, resource, content), VIEW)
    assert not decision
    assert reason in decision.reason


def test_view_of_another_node_is_refused() -> None:
    assert not authorize("edge-b", msg("update", "node/edge-b/null/nodestatus/edge-b"), VIEW)
