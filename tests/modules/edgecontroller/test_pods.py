"""Pods reach their edge node: insert, update, delete; status-only updates and pods on
other nodes do not (against the API, cloudhub recorded)."""

from __future__ import annotations

from modules import contract
from tests.kube_fixtures import manifest
from tests.modules.edgecontroller.helpers import Cloud, body, pod


def test_pod_lifecycle_reaches_its_edge_node_as_insert_update_delete(
    cloud: Cloud, kube_namespace: str
) -> None:
    node = cloud.node()
    core = cloud.kube.core
    res = f"node/{node}/{kube_namespace}/pod/web"
    core.create_namespaced_pod(kube_namespace, pod("web", node))
    cloud.wait_ops(node, [("insert", res)], rtype="pod")
    inserted = cloud.last(res, "insert")
    content = body(inserted)
    assert (content["apiVersion"], content["kind"]) == ("v1", "Pod")
    assert inserted.header.resource_version == content["metadata"]["resourceVersion"]
    assert (inserted.route.source, inserted.route.group) == ("edgecontroller", "resource")

    status = {"status": {"phase": "Running"}}
    core.patch_namespaced_pod_status("web", kube_namespace, manifest(status))
    core.patch_namespaced_pod("web", kube_namespace, manifest({"metadata": {"labels": {"v": "2"}}}))
    cloud.wait_ops(node, [("insert", res), ("update", res)], rtype="pod")
    updated = body(cloud.last(res, "update"))
    assert updated["metadata"]["labels"]["v"] == "2"

    core.delete_namespaced_pod("web", kube_namespace, grace_period_seconds=0)
    cloud.wait_ops(node, [("insert", res), ("update", res), ("delete", res)], rtype="pod")


def test_pods_on_other_nodes_and_unscheduled_pods_are_not_sent(
    cloud: Cloud, kube_namespace: str
) -> None:
    edge, other = cloud.node(), cloud.node("cloud", edge=False)
    core = cloud.kube.core
    core.create_namespaced_pod(kube_namespace, pod("elsewhere", other))
    core.create_namespaced_pod(kube_namespace, pod("pending"))
    core.create_namespaced_pod(kube_namespace, pod("here", edge))
    cloud.wait_ops(edge, [("insert", f"node/{edge}/{kube_namespace}/pod/here")], rtype="pod")
    pods = [m for m in cloud.sent() if contract.parse_resource(m.route.resource).type == "pod"]
    assert [m.route.resource for m in pods] == [f"node/{edge}/{kube_namespace}/pod/here"]
