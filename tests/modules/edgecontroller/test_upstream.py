"""What edges report reaches the API, and each report gets its reply (contract items 2-4)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiException

from beehive import Message
from modules import contract
from tests.fakes import eventually
from tests.kube_fixtures import unique
from tests.modules.edgecontroller.helpers import (
    WAIT,
    Cloud,
    body,
    configmap,
    env_from,
    failure,
    pod,
    raw,
)

READY = {"type": "Ready", "status": "True", "reason": "EdgeReady", "message": "ok"}


def test_node_status_report_patches_the_node_status(cloud: Cloud) -> None:
    node = cloud.node()
    uid = raw(cloud.kube.core.read_node, node)["metadata"]["uid"]
    content = {"UID": uid, "Status": {"conditions": [READY], "nodeInfo": {"kubeletVersion": "v1"}}}
    reply = cloud.report(node, "update", f"null/nodestatus/{node}", content)
    assert (reply.route.operation, reply.content) == ("response", "OK")
    status = raw(cloud.kube.core.read_node_status, node)["status"]
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [("Ready", "True")]
    assert status["conditions"][0]["lastHeartbeatTime"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1"


def test_a_report_changing_only_the_heartbeat_is_answered_without_a_write(cloud: Cloud) -> None:
    """Within `node_status_report_interval` of the Node's heartbeat (the node's Lease
    is the heartbeat meanwhile); any change is written at once."""
    node = cloud.node()
    content = {"Status": {"conditions": [READY], "nodeInfo": {"kubeletVersion": "v1"}}}

    def unchanged() -> int:
        counts = cloud.hive.commands["edgecontroller.metrics"]()["reports"]
        return sum(n for rtype, result, n in counts if (rtype, result) == ("nodestatus",
                                                                          "unchanged"))  # fmt: skip

    def version() -> str:
        return str(raw(cloud.kube.core.read_node, node)["metadata"]["resourceVersion"])

    def skipped() -> bool:  # once the watch holds the written status
        before = unchanged()
        assert cloud.report(node, "update", f"null/nodestatus/{node}", content).content == "OK"
        return unchanged() == before + 1

    assert eventually(skipped)
    written = version()
    assert skipped() and version() == written
    changed = {"Status": {"conditions": [{**READY, "status": "False"}]}}
    before = unchanged()
    assert cloud.report(node, "update", f"null/nodestatus/{node}", changed).content == "OK"
    assert unchanged() == before and version() != written
    status = raw(cloud.kube.core.read_node_status, node)["status"]
    assert status["conditions"][0]["status"] == "False"


def test_an_edge_registering_creates_its_node_labelled_as_an_edge_node(cloud: Cloud) -> None:
    name = unique("edge")
    cloud.nodes.append(name)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"a": "b"}}}
    reply = cloud.report(name, "insert", f"null/node/{name}", node)
    assert reply.route.operation == "response"
    created = body(reply)["Object"]
    assert created["metadata"]["labels"] == {"a": "b", contract.EDGE_NODE_LABEL: ""}
    labels = raw(cloud.kube.core.read_node, name)["metadata"]["labels"]
    assert labels[contract.EDGE_NODE_LABEL] == ""
    # The new edge node then gets its Node object, as any edge node does.
    cloud.wait_ops(name, [("update", f"node/{name}/null/node/{name}")])
    again = cloud.report(name, "insert", f"null/nodestatus/{name}", node)
    assert again.content == "OK"


def test_pod_status_report_patches_the_pod_status(cloud: Cloud, kube_namespace: str) -> None:
    node = cloud.node()
    created = cloud.deployed(kube_namespace, "web", node)
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    entries = [{"UID": created.metadata.uid, "Name": "web", "Status": status}]
    reply = cloud.report(node, "update", f"{kube_namespace}/podstatus", entries)
    assert reply.content == "OK"
    assert (
        raw(cloud.kube.core.read_namespaced_pod_status, "web", kube_namespace)["status"]["phase"]
        == "Running"
    )


def test_status_of_a_pod_bound_to_another_node_is_refused(
    cloud: Cloud, kube_namespace: str
) -> None:
    mine, other = cloud.node(), cloud.node()
    created = cloud.kube.core.create_namespaced_pod(kube_namespace, pod("theirs", other))
    cloud.wait_ops(other, [("insert", f"node/{other}/{kube_namespace}/pod/theirs")], rtype="pod")
    entry = {"UID": created.metadata.uid, "Name": "theirs", "Status": {"phase": "Failed"}}
    reply = cloud.report(mine, "update", f"{kube_namespace}/podstatus/theirs", entry)
    assert failure(reply)
    assert "not bound to this node" in str(reply.content)
    assert (
        raw(cloud.kube.core.read_namespaced_pod_status, "theirs", kube_namespace)["status"].get(
            "phase"
        )
        != "Failed"
    )


def test_status_of_a_pod_the_cloud_no_longer_has_sends_the_edge_a_delete(
    cloud: Cloud, kube_namespace: str
) -> None:
    node = cloud.node()
    entry = {"UID": "0000-gone", "Name": "ghost", "Status": {"phase": "Running"}}
    reply = cloud.report(node, "update", f"{kube_namespace}/podstatus/ghost", entry)
    assert reply.content == "OK"
    delete = cloud.last(f"node/{node}/{kube_namespace}/pod/ghost", "delete")
    assert body(delete)["metadata"]["uid"] == "0000-gone"


@pytest.mark.parametrize(
    ("operation", "tail", "content", "says"),
    [
        pytest.param(
            "update",
            "null/nodestatus/NODE",
            "not an object",
            "Status object",
            id="status content is a string",
        ),
        pytest.param(
            "update",
            "null/nodestatus/NODE",
            {"UID": "u"},
            "Status object",
            id="status without Status",
        ),
        pytest.param(
            "update",
            "null/nodestatus/someone-else",
            {"Status": {}},
            "may not report",
            id="status of another node",
        ),
        pytest.param(
            "update",
            "ns/podstatus/p",
            [1, 2],
            "PodStatusRequest",
            id="pod status entries not objects",
        ),
        pytest.param(
            "update",
            "ns/podstatus/p",
            {"UID": "u", "Status": {}},
            "without a Name",
            id="pod status without a name",
        ),
        pytest.param(
            "insert",
            "null/node/other-name",
            {"metadata": {"name": "other"}},
            "may not register",
            id="registering another name",
        ),
        pytest.param(
            "insert", "null/node/NODE", ["x"], "Node object", id="registering without a Node"
        ),
        pytest.param("update", "ns/widget/w", {}, "unsupported", id="unknown resource type"),
        pytest.param("delete", "null/nodestatus/NODE", {}, "unsupported", id="unknown operation"),
    ],
)
def test_malformed_reports_are_refused_with_an_error_reply(
    cloud: Cloud, operation: str, tail: str, content: Any, says: str
) -> None:
    node = cloud.node()
    reply = cloud.report(node, operation, tail.replace("NODE", node), content)
    assert failure(reply)
    assert says in str(reply.content)
    # The controller keeps serving: a good report right after is applied.
    good = cloud.report(
        node, "update", f"null/nodestatus/{node}", {"Status": {"conditions": [READY]}}
    )
    assert good.content == "OK"


def test_query_is_answered_only_for_objects_a_pod_on_the_node_references(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node, other = cloud.node(), cloud.node()
    core.create_namespaced_config_map(ns, configmap("mine", k="v"))
    core.create_namespaced_config_map(ns, configmap("notmine", k="v"))
    core.create_namespaced_pod(ns, pod("app", node, containers=env_from(configmaps=("mine",))))
    cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/pod/app")], rtype="pod")
    # each resource has its own watch: the configmap may reach the cache after the pod
    cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/configmap/mine")], rtype="configmap")

    answer = cloud.report(node, "query", f"{ns}/configmap/mine", None)
    assert answer.route.operation == "response"
    assert (body(answer)["kind"], body(answer)["data"]) == ("ConfigMap", {"k": "v"})
    for asker, name in ((node, "notmine"), (other, "mine")):
        refused = cloud.report(asker, "query", f"{ns}/configmap/{name}", None)
        assert failure(refused)
        assert f"{asker}: no pod on it references configmap {ns}/{name}" in str(refused.content)


def test_session_notices_create_the_node_lease_and_renew_it_at_most_once_per_interval(
    cloud: Cloud,
) -> None:
    node = cloud.node()
    leases = cloud.kube.coordination

    def lease() -> Any:
        try:
            return raw(leases.read_namespaced_lease, node, contract.LEASE_NAMESPACE)
        except ApiException:
            return None

    cloud.notice(node, "connected")
    assert eventually(lambda: lease() is not None, WAIT)
    first = lease()["spec"]
    assert (first["holderIdentity"], first["leaseDurationSeconds"]) == (node, 40)
    cloud.notice(node, "disconnected")
    cloud.notice(node, "connected")  # back within the renewal interval: no write
    # The node's work is done in order: once this query is answered, any renewal is too.
    assert cloud.report(node, "query", f"null/node/{node}", None).route.operation == "response"
    assert lease()["spec"]["renewTime"] == first["renewTime"]
    cloud.notice(node, "keepalive")  # nor for keepalives within the interval
    assert cloud.report(node, "query", f"null/node/{node}", None).route.operation == "response"
    assert lease()["spec"]["renewTime"] == first["renewTime"]


def test_a_pod_reported_in_the_same_state_again_keeps_its_times_and_is_not_rewritten(
    cloud: Cloud, kube_namespace: str
) -> None:
    node = cloud.node()
    created = cloud.deployed(kube_namespace, "web", node)

    def report(at: str) -> None:
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": at}
        status = {"phase": "Running", "startTime": at, "conditions": [ready]}
        entry = {"UID": created.metadata.uid, "Name": "web", "Status": status}
        assert (
            cloud.report(node, "update", f"{kube_namespace}/podstatus/web", entry).content == "OK"
        )

    report("2026-01-01T00:00:00Z")
    first = raw(cloud.kube.core.read_namespaced_pod_status, "web", kube_namespace)
    watches = cloud.hive.commands["watches"]

    def skipped_once_seen() -> bool:  # until the watch has shown the controller its write
        report("2026-01-01T00:05:00Z")
        return bool(watches()["upstream_unchanged"] >= 1)

    assert eventually(skipped_once_seen, WAIT)
    now = raw(cloud.kube.core.read_namespaced_pod_status, "web", kube_namespace)
    assert now["status"]["startTime"] == first["status"]["startTime"] == "2026-01-01T00:00:00Z"
    # Ready became True at the first report (cloud time, as KubeEdge sets it) and stayed.
    assert now["status"]["conditions"] == first["status"]["conditions"]


def marked_for_deletion(cloud: Cloud, namespace: str, node: str) -> Any:
    """Pod "web" on `node`, deleted gracefully as kubectl does: it waits for the node,
    which has been sent the pod and then its deletion mark."""
    created = cloud.deployed(namespace, "web", node)
    cloud.kube.core.delete_namespaced_pod("web", namespace)
    resource = f"node/{node}/{namespace}/pod/web"
    cloud.wait_ops(node, [("insert", resource), ("update", resource)], rtype="pod")
    return created


def test_a_pod_being_deleted_goes_once_its_edge_reports_it_stopped(
    cloud: Cloud, kube_namespace: str
) -> None:
    node = cloud.node()
    created = marked_for_deletion(cloud, kube_namespace, node)
    marked = raw(cloud.kube.core.read_namespaced_pod, "web", kube_namespace)
    assert marked["metadata"].get("deletionTimestamp")  # waits for the node to confirm
    stopped = {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    status = {"phase": "Succeeded", "containerStatuses": [stopped]}
    entry = {"UID": created.metadata.uid, "Name": "web", "Status": status}
    assert cloud.report(node, "update", f"{kube_namespace}/podstatus/web", entry).content == "OK"

    def gone() -> bool:
        try:
            cloud.kube.core.read_namespaced_pod("web", kube_namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    assert eventually(gone, WAIT)
    # The delete with grace 0 first shortens the mark to 0 (an update), then removes the
    # pod; the controller's queue may replace that update with the delete.
    res = f"node/{node}/{kube_namespace}/pod/web"
    deleted = [("insert", res), ("update", res), ("delete", res)]
    shortened_then_deleted = [("insert", res), ("update", res), ("update", res), ("delete", res)]
    ok = cloud.probe.wait_for(
        lambda: cloud.ops(node, rtype="pod") in (deleted, shortened_then_deleted), WAIT
    )
    assert ok, cloud.ops(node, rtype="pod")
    if cloud.ops(node, rtype="pod") == shortened_then_deleted:
        assert body(cloud.last(res, "update"))["metadata"]["deletionGracePeriodSeconds"] == 0


def test_a_running_report_does_not_finish_a_deletion(cloud: Cloud, kube_namespace: str) -> None:
    node = cloud.node()
    created = marked_for_deletion(cloud, kube_namespace, node)
    entry = {"UID": created.metadata.uid, "Name": "web", "Status": {"phase": "Running"}}
    assert cloud.report(node, "update", f"{kube_namespace}/podstatus/web", entry).content == "OK"
    assert raw(cloud.kube.core.read_namespaced_pod, "web", kube_namespace)["metadata"][
        "deletionTimestamp"
    ]
    cloud.kube.core.delete_namespaced_pod("web", kube_namespace, grace_period_seconds=0)


def test_a_kubelet_based_edge_reads_updates_and_patches_its_own_node(cloud: Cloud) -> None:
    node, other = cloud.node(), cloud.node()
    read = cloud.report(node, "query", f"null/node/{node}", None)
    assert body(read)["metadata"]["name"] == node
    labels = {"zone": "a"}
    updated = {"metadata": {"name": node, "labels": labels, "annotations": {"note": "x"}}}
    assert cloud.report(node, "update", f"null/node/{node}", updated).content == "OK"
    meta = raw(cloud.kube.core.read_node, node)["metadata"]
    assert meta["labels"]["zone"] == "a" and meta["annotations"]["note"] == "x"
    assert contract.EDGE_NODE_LABEL in meta["labels"]  # merged, not replaced
    patch = '{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}'
    patched = cloud.report(node, "patch", f"null/nodepatch/{node}", patch)
    assert body(patched)["Object"]["status"]["conditions"][0]["type"] == "Ready"
    for operation, tail, content in [
        ("query", f"null/node/{other}", None),
        ("update", f"null/node/{other}", {**updated, "metadata": {"name": other}}),
        ("patch", f"null/nodepatch/{other}", patch),
        ("patch", f"null/nodepatch/{node}", "{not json"),
    ]:
        assert failure(cloud.report(node, operation, tail, content)), tail


def test_a_kubelet_based_edge_patches_and_deletes_its_own_pods(
    cloud: Cloud, kube_namespace: str
) -> None:
    node, other = cloud.node(), cloud.node()
    ns = kube_namespace
    mine = cloud.deployed(ns, "mine", node)
    cloud.deployed(ns, "theirs", other)
    patch = '{"status": {"phase": "Running"}}'
    patched = cloud.report(node, "patch", f"{ns}/podpatch/mine", patch)
    assert body(patched)["Object"]["status"]["phase"] == "Running"
    refused = cloud.report(node, "patch", f"{ns}/podpatch/theirs", patch)
    assert failure(refused) and "not bound" in str(refused.content)
    assert failure(cloud.report(node, "delete", f"{ns}/pod/theirs", None))
    # KubeEdge's legacy form: the UID, meaning grace 0 for that pod only.
    assert cloud.report(node, "delete", f"{ns}/pod/mine", mine.metadata.uid).content == "OK"
    with pytest.raises(ApiException) as gone:
        cloud.kube.core.read_namespaced_pod("mine", ns)
    assert gone.value.status == 404
    assert cloud.report(node, "delete", f"{ns}/pod/never", {}).content == "OK"  # not found
    assert raw(cloud.kube.core.read_namespaced_pod, "theirs", ns)["metadata"]["name"] == "theirs"


def test_an_edge_that_renews_its_own_lease_is_not_renewed_again_within_the_interval(
    cloud: Cloud,
) -> None:
    """A kubelet-based edgecore renews its node's Lease itself; the keepalives of the
    same interval write nothing more."""
    node = cloud.node()
    renewed = cloud.report(node, "update", f"kube-node-lease/lease/{node}", {})
    written = body(renewed)["Object"]["metadata"]["resourceVersion"]
    cloud.notice(node, "connected")
    cloud.notice(node, "keepalive")
    # The node's work is done in order: once this query is answered, any renewal is too.
    assert cloud.report(node, "query", f"null/node/{node}", None).route.operation == "response"
    lease = raw(cloud.kube.coordination.read_namespaced_lease, node, contract.LEASE_NAMESPACE)
    assert lease["metadata"]["resourceVersion"] == written


def test_an_edge_reads_its_own_lease(cloud: Cloud) -> None:
    node, other = cloud.node(), cloud.node()
    assert cloud.report(node, "update", f"kube-node-lease/lease/{node}", {}).route.operation == (
        "response"
    )
    lease = cloud.report(node, "query", f"kube-node-lease/lease/{node}", None)
    assert body(lease)["Object"]["spec"]["holderIdentity"] == node
    refused = cloud.report(node, "query", f"kube-node-lease/lease/{other}", None)
    assert failure(refused)


def test_a_request_marked_sync_is_answered_through_cloudhub(cloud: Cloud) -> None:
    """A request may arrive with ``sync: true`` (edgecore's beehive marks what edged sends
    with SendSync); its waiter is on the edge, so the reply goes to cloudhub like any
    other, not to this hive's waiters (where it would land in dead letters)."""
    node = cloud.node()
    request = Message.new(source="edged", group=contract.GROUP_META, operation="query",
                          resource=f"node/{node}/null/node/{node}").with_header(sync=True)  # fmt: skip
    cloud.hive.send(contract.EDGECONTROLLER, request)
    assert cloud.probe.wait_for(
        lambda: any(m.parent_msg_id == request.msg_id for m in cloud.sent()), WAIT
    )
    dead = cloud.hive.dead_letters.recent()
    assert not [d for d in dead if d.message.parent_msg_id == request.msg_id]
