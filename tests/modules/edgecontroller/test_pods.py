"""Pods reach their edge node: insert, update, delete; status-only updates and pods on
other nodes do not (against the API, cloudhub recorded)."""

from __future__ import annotations

from modules import contract
from tests.kube_fixtures import manifest
from tests.modules.edgecontroller.helpers import WAIT, Cloud, body, pod


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

    # Even without a grace period the API server first marks the pod (deletionTimestamp,
    # deletionGracePeriodSeconds 0), then removes it: the mark reaches the edge as an
    # update, unless the delete replaced it in the controller's queue first.
    core.delete_namespaced_pod("web", kube_namespace, grace_period_seconds=0)
    deleted = [("insert", res), ("update", res), ("delete", res)]
    marked_then_deleted = [("insert", res), ("update", res), ("update", res), ("delete", res)]
    ok = cloud.probe.wait_for(
        lambda: cloud.ops(node, rtype="pod") in (deleted, marked_then_deleted), WAIT
    )
    assert ok, cloud.ops(node, rtype="pod")
    if cloud.ops(node, rtype="pod") == marked_then_deleted:
        marked = body(cloud.last(res, "update"))["metadata"]
        assert marked["deletionTimestamp"] and marked["deletionGracePeriodSeconds"] == 0


def test_pods_on_other_nodes_and_unscheduled_pods_are_not_sent(
    cloud: Cloud, kube_namespace: str
) -> None:
    edge, other = cloud.node(), cloud.node("cloud", edge=False)
    core = cloud.kube.core
    core.create_namespaced_pod(kube_namespace, pod("elsewhere", other))
    core.create_namespaced_pod(kube_namespace, pod("pending"))
    core.create_namespaced_pod(kube_namespace, pod("here", edge))
    cloud.wait_ops(edge, [("insert", f"node/{edge}/{kube_namespace}/pod/here")], rtype="pod")
    # Only this test's pods: a shared cluster may run others on its edge nodes.
    mine = [contract.parse_resource(m.route.resource) for m in cloud.sent()]
    pods = [r for r in mine if r.type == "pod" and r.namespace == kube_namespace]
    assert [(r.node, r.name) for r in pods] == [(edge, "here")]
