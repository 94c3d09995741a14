"""Edge nodes come and go; a (re)connecting node is resynced (contract item 5)."""

from __future__ import annotations

import pytest

from modules import contract
from modules.edgecontroller import fresh
from tests.kube_fixtures import manifest
from tests.modules.edgecontroller.helpers import WAIT, Cloud, body, configmap, env_from, pod


def test_labelling_a_node_as_edge_sends_it_its_pods_and_their_configmaps(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node = cloud.node("later", edge=False)
    core.create_namespaced_config_map(ns, configmap("conf"))
    core.create_namespaced_pod(ns, pod("app", node, containers=env_from(configmaps=("conf",))))
    # Each resource has its own watch: a witness edge node shows when both reached the
    # caches (its pod comes after ours on the pod watch), before the label makes `node` one.
    witness = cloud.node()
    core.create_namespaced_pod(ns, pod("w", witness, containers=env_from(configmaps=("conf",))))
    cloud.wait_ops(witness, [("update", f"node/{witness}/null/node/{witness}"),
                             ("insert", f"node/{witness}/{ns}/configmap/conf"),
                             ("insert", f"node/{witness}/{ns}/pod/w")])  # fmt: skip
    labels = {"metadata": {"labels": {contract.EDGE_NODE_LABEL: ""}}}
    core.patch_node(node, manifest(labels))
    cloud.wait_ops(
        node,
        [
            ("update", f"node/{node}/null/node/{node}"),
            ("insert", f"node/{node}/{ns}/configmap/conf"),
            ("insert", f"node/{node}/{ns}/pod/app"),
        ],
    )
    core.patch_node(node, manifest({"metadata": {"labels": {contract.EDGE_NODE_LABEL: None}}}))
    cloud.wait_ops(
        node,
        [
            ("update", f"node/{node}/null/node/{node}"),
            ("insert", f"node/{node}/{ns}/configmap/conf"),
            ("insert", f"node/{node}/{ns}/pod/app"),
            ("delete", f"node/{node}/null/node/{node}"),
        ],
    )


def test_resync_updates_everything_the_node_should_have_then_lists_their_uids(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node, other = cloud.node(), cloud.node()
    core.create_namespaced_config_map(ns, configmap("conf"))
    core.create_namespaced_config_map(ns, configmap("theirs"))
    core.create_namespaced_pod(ns, pod("app", node, containers=env_from(configmaps=("conf",))))
    core.create_namespaced_pod(ns, pod("x", other, containers=env_from(configmaps=("theirs",))))
    cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/pod/app")], rtype="pod")
    before = len(cloud.ops(node))

    cloud.notice(node, contract.RESYNC)
    done = f"node/{node}"
    assert cloud.probe.wait_for(lambda: ("resynced", done) in cloud.ops(node), WAIT)
    resync = cloud.ops(node)[before:]
    assert resync == [
        ("update", f"node/{node}/null/node/{node}"),
        ("update", f"node/{node}/{ns}/configmap/conf"),
        ("update", f"node/{node}/{ns}/pod/app"),
        ("resynced", done),
    ]
    sent = [m for m in cloud.sent() if m.route.resource.startswith(f"node/{node}/")]
    uids = {body(m)["metadata"]["uid"] for m in sent[-3:]}
    resynced = cloud.last(done, "resynced")
    assert (resynced.route.source, resynced.route.group) == ("edgecontroller", "resource")
    assert set(body(resynced)["uids"]) == uids and len(body(resynced)["uids"]) == 3


def test_resync_of_a_node_that_is_not_an_edge_node_lists_no_uids(cloud: Cloud) -> None:
    cloud.notice("no-such-node-x1", contract.RESYNC)
    done = "node/no-such-node-x1"
    assert cloud.probe.wait_for(lambda: ("resynced", done) in cloud.ops("no-such-node-x1"), WAIT)
    assert body(cloud.last(done, "resynced")) == {"uids": []}


def test_a_takeover_resync_reads_the_node_and_its_pods_from_the_api(
    cloud: Cloud, kube_namespace: str
) -> None:
    # The node comes from another replica: its pods are read, not taken from the cache.
    ns, core = kube_namespace, cloud.kube.core
    node = cloud.node()
    core.create_namespaced_pod(ns, pod("app", node))
    cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/pod/app")], rtype="pod")
    before = len(cloud.ops(node))
    cloud.notice(node, contract.RESYNC, takeover="true")
    done = f"node/{node}"
    assert cloud.probe.wait_for(lambda: ("resynced", done) in cloud.ops(node), WAIT)
    assert cloud.ops(node)[before:] == [
        ("update", f"node/{node}/null/node/{node}"),
        ("update", f"node/{node}/{ns}/pod/app"),
        ("resynced", done),
    ]
    watches = cloud.hive.commands["watches"]()
    assert watches["fresh_reads"] == 1 and watches["fresh_failures"] == 0


def test_a_failovers_nodes_are_read_with_one_list_of_each(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    first, second = cloud.node(), cloud.node()
    core.create_namespaced_pod(ns, pod("a", first))
    core.create_namespaced_pod(ns, pod("b", second))
    core.create_namespaced_pod(ns, pod("c", second))
    core.create_namespaced_pod(ns, pod("loose"))  # bound to no node
    got = fresh.read_many(cloud.kube.api_client, [first, second, "no-such-node-y2"])
    names = {node: sorted(p["metadata"]["name"] for p in f.pods) for node, f in got.items()}
    assert names == {first: ["a"], second: ["b", "c"], "no-such-node-y2": []}
    assert got["no-such-node-y2"].node is None
    found = got[first].node
    assert found is not None and found["kind"] == "Node"
    one = fresh.read(cloud.kube.api_client, second)
    assert sorted(p["metadata"]["name"] for p in one.pods) == ["b", "c"]
    assert got[first].list_rv is not None and one.list_rv is not None


@pytest.mark.parametrize(
    ("waiting", "cluster", "whole"),
    [(1, 0, False), (fresh.BATCH - 1, 0, False), (fresh.BATCH, 0, True),
     (fresh.BATCH, 4 * fresh.BATCH, True), (150, 900, False), (300, 900, True),
     (900, 900, True), (100, 10_000, False)],
)  # fmt: skip
def test_whole_lists_only_for_many_nodes_that_are_a_large_share_of_the_cluster(
    waiting: int, cluster: int, whole: bool
) -> None:
    # A list of everything parses every pod of the cluster: worth it only when the
    # nodes waiting are a good part of it (a replica of three taking a third of them).
    assert fresh.whole_lists(waiting, cluster) is whole
