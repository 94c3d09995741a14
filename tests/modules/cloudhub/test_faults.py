"""Faults that must lose nothing: disconnects, cloudcore restarts, replaced sessions.

Edge hives (edgehub + metamanager on sqlite) against cloud hives (cloudhub with a
scripted edgecontroller answering resync) on loopback, the records of what nodes
acked in the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes import eventually
from tests.kube_fixtures import delete_if_present, manifest, unique
from tests.modules.cloudhub.harness import (
    RawEdge,
    node_row,
    pod,
    start_cloud,
    start_edge,
    stored,
)
from tests.modules.cloudhub.test_end_to_end import recorded, synced_rv

pytestmark = pytest.mark.integration


@pytest.fixture
def node_object(kube: Any) -> Iterator[Callable[[str], str]]:
    """A Node with a unique name: at start, records of nodes that do not exist are dropped
    (and, on a shared cluster, records of an earlier run are not read as this one's)."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = unique(prefix)
        kube.core.create_node(manifest({"metadata": {"name": name}}))
        made.append(name)
        return name

    yield make
    for name in made:
        delete_if_present(kube.core.delete_node, name)


def test_a_reconnecting_edge_gets_exactly_what_it_missed(make_hive, probe, world, tmp_path):
    cloud, port = start_cloud(make_hive, probe, world)
    db = tmp_path / "m.db"
    edge = start_edge(make_hive, port, "edge-m", db)
    for name, uid in (("a", "ua"), ("b", "ub"), ("c", "uc")):
        cloud.send("cloudhub", world.put("edge-m", pod(name, uid, rv=10)))
    assert eventually(lambda: stored(edge) == {"a": 10, "b": 10, "c": 10})
    assert eventually(lambda: node_row(cloud, "edge-m")["acked"] == 3)
    edge.stop(timeout=2)
    assert eventually(lambda: not node_row(cloud, "edge-m")["connected"])

    cloud.send("cloudhub", world.put("edge-m", pod("a", "ua", rv=11)))  # missed update
    cloud.send("cloudhub", world.remove("edge-m", "ub"))  # missed delete
    cloud.send("cloudhub", world.put("edge-m", pod("d", "ud", rv=12)))  # missed create
    again = start_edge(make_hive, port, "edge-m", db)
    assert eventually(lambda: stored(again) == {"a": 11, "c": 10, "d": 12}, timeout=15)
    assert eventually(lambda: node_row(cloud, "edge-m")["acked"] == 6, timeout=15)
    row = node_row(cloud, "edge-m")
    assert row["sent"] == 6  # 3, then exactly the 3 missed: nothing acked went again
    assert row["queued"] == row["in_flight"] == 0


def test_after_a_cloudcore_restart_nothing_acked_is_sent_again(
    make_hive, probe, world, kube, kube_namespace, tmp_path, node_object
):
    ns, node = kube_namespace, node_object("edge-k")
    cloud, port = start_cloud(make_hive, probe, world, kube=kube)
    edge = start_edge(make_hive, port, node, tmp_path / "k.db")
    cloud.send("cloudhub", world.put(node, pod("a", "ua", ns, rv=20)))
    cloud.send("cloudhub", world.put(node, pod("b", "ub", ns, rv=21)))
    cloud.send("cloudhub", world.put(node, pod("c", "uc", ns, rv=22)))
    assert eventually(lambda: stored(edge) == {"a": 20, "b": 21, "c": 22})
    assert eventually(lambda: synced_rv(kube, node, "uc") == 22)
    assert eventually(lambda: synced_rv(kube, node, "ub") == 21)
    cloud.stop(timeout=2)

    world.put(node, pod("a", "ua", ns, rv=23))  # changed while cloudcore was down
    world.remove(node, "ub")  # deleted while cloudcore was down
    cloud, _ = start_cloud(make_hive, probe, world, kube=kube, port=port)
    assert eventually(lambda: stored(edge) == {"a": 23, "c": 22}, timeout=15)
    assert eventually(lambda: recorded(kube, node, "ub") is None)  # its delete was acked
    assert eventually(lambda: synced_rv(kube, node, "ua") == 23)
    assert eventually(lambda: node_row(cloud, node)["acked"] == 2)
    assert node_row(cloud, node)["sent"] == 2  # the update of a and the delete of b


def test_an_object_kubeedge_recorded_as_acked_is_not_sent_again(
    make_hive, probe, world, kube, kube_namespace, tmp_path, node_object
):
    # A cluster moving from KubeEdge's cloudcore: its ObjectSync says the node has a@30.
    ns, node = kube_namespace, node_object("edge-ke")
    group, version = "reliablesyncs.kubeedge.io", "v1alpha1"
    start_cloud(make_hive, probe, world, kube=kube)[0].stop(timeout=2)  # installs the CRDs
    spec = {"objectAPIVersion": "v1", "objectKind": "Pod", "objectName": "a"}
    kube.custom.create_namespaced_custom_object(group, version, ns, "objectsyncs", manifest({
        "apiVersion": f"{group}/{version}", "kind": "ObjectSync",
        "metadata": {"name": f"{node}.ua", "namespace": ns}, "spec": spec}))  # fmt: skip
    kube.custom.patch_namespaced_custom_object_status(
        group, version, ns, "objectsyncs", f"{node}.ua",
        {"status": {"objectResourceVersion": "30"}})  # fmt: skip
    world.put(node, pod("a", "ua", ns, rv=30))
    world.put(node, pod("b", "ub", ns, rv=31))
    cloud, port = start_cloud(make_hive, probe, world, kube=kube)
    edge = start_edge(make_hive, port, node, tmp_path / "ke.db")
    assert eventually(lambda: stored(edge) == {"b": 31})  # the resync's answer has been taken
    assert eventually(lambda: node_row(cloud, node)["acked"] == 1)
    assert node_row(cloud, node)["sent"] == 1  # b only: a is held, as KubeEdge recorded
    assert eventually(lambda: synced_rv(kube, node, "ub") == 31)
    assert synced_rv(kube, node, "ua") == 30  # now in our records
    assert eventually(lambda: not kube.custom.list_namespaced_custom_object(
        group, version, ns, "objectsyncs")["items"])  # and KubeEdge's deleted  # fmt: skip


def test_a_second_connection_for_a_node_replaces_the_first(make_hive, probe, world):
    cloud, port = start_cloud(make_hive, probe, world)
    first = RawEdge(port, "edge-2")
    assert eventually(lambda: node_row(cloud, "edge-2").get("connected", False))
    second = RawEdge(port, "edge-2")
    assert first.close_status() == (1000, "replaced by a newer connection of this node")
    cloud.send("cloudhub", world.put("edge-2", pod("p", "up", rv=5)))
    frame = second.recv()
    assert frame["route"]["resource"] == "default/pod/p"
    second.ack(frame)
    assert eventually(lambda: node_row(cloud, "edge-2")["acked"] == 1)
    assert node_row(cloud, "edge-2")["connects"] == 2
    first.close()
    second.close()


def test_the_window_pipelines_unacked_messages_per_node(make_hive, probe, world):
    cloud, port = start_cloud(make_hive, probe, world, window=4)
    edge = RawEdge(port, "edge-w")
    for i in range(6):
        cloud.send("cloudhub", world.put("edge-w", pod(f"p{i}", f"u{i}", rv=30 + i)))
    frames = [edge.recv() for _ in range(4)]  # four go out before any ack
    row = lambda: node_row(cloud, "edge-w")  # noqa: E731
    assert eventually(lambda: (row()["in_flight"], row()["queued"]) == (4, 2))  # all six taken
    edge.ack(frames[0])
    assert edge.recv()["route"]["resource"] == "default/pod/p4"  # one slot freed, one more
    for frame in frames[1:]:
        edge.ack(frame)
    last = edge.recv()
    edge.ack(last)
    assert eventually(lambda: node_row(cloud, "edge-w")["acked"] == 5)
    edge.close()
