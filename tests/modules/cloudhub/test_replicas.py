"""Two cloudhub replicas on one API: an edge that moves between them is claimed by the
one it reaches, served from what it acked at the other (records read fresh), and the
one it left stops queueing for it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from beehive import Hive
from modules.cloudhub.debug import nodes_table
from modules.replicas import service
from modules.replicas.owners import OwnerLeases
from modules.replicas.settings import ReplicaSettings
from tests.fakes import eventually
from tests.kube_fixtures import unique
from tests.modules.cloudhub.harness import (
    RawEdge,
    node_row,
    pod,
    start_cloud,
    start_edge,
    stored,
)
from tests.modules.cloudhub.test_end_to_end import synced_rv

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.1}


@pytest.fixture
def replicas(kube: Any, kube_namespace: str) -> Iterator[Callable[[str], service.Replica]]:
    made: list[service.Replica] = []

    def make(identity: str, **extra: Any) -> service.Replica:
        settings = ReplicaSettings(id=identity, namespace=kube_namespace, **(FAST | extra))
        replica = service.Replica(kube.new_client(), settings)
        replica.start()
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.stop()


def closed_with(edge: RawEdge) -> tuple[int, str] | None:
    """The close code and reason the cloud sent `edge`, None if it sent none within 1 s."""
    edge.ws.settimeout(1.0)
    try:
        return edge.close_status()
    except websocket.WebSocketTimeoutException:
        return None


def queued_or_known(cloud: Hive, node: str) -> bool:
    """Whether the replica keeps anything for the node: a queue, or objects it knows."""
    row = node_row(cloud, node)
    return bool(row) and bool(row.get("queued") or row.get("objects") or row.get("connected"))


def test_an_edge_moving_between_replicas_is_served_by_the_one_it_reaches_without_resends(
    kube, kube_namespace, replicas, edge_node, make_hive, probe, world, tmp_path
):  # the API first: it is torn down after the hives
    ns, node, db = kube_namespace, edge_node, tmp_path / "r.db"
    r1, p1 = start_cloud(make_hive, probe, world, kube=kube, services={"replica": replicas("r1")})
    r2, p2 = start_cloud(make_hive, probe, world, kube=kube, services={"replica": replicas("r2")})
    world.put(node, pod("a", "ua", ns, rv=20))
    world.put(node, pod("b", "ub", ns, rv=21))
    edge = start_edge(make_hive, p1, node, db)
    assert eventually(lambda: stored(edge) == {"a": 20, "b": 21})
    assert eventually(lambda: synced_rv(kube, node, "ua") == 20)
    assert eventually(lambda: synced_rv(kube, node, "ub") == 21)
    edge.stop(timeout=2)

    again = start_edge(make_hive, p2, node, db)  # the load balancer picked the other one
    assert eventually(lambda: node_row(r2, node).get("connected", False))
    assert eventually(lambda: not queued_or_known(r1, node))  # r1 saw r2's claim
    r2.send("cloudhub", world.put(node, pod("c", "uc", ns, rv=22)))
    assert eventually(lambda: stored(again) == {"a": 20, "b": 21, "c": 22})
    assert eventually(lambda: node_row(r2, node)["acked"] == 1)
    assert node_row(r2, node)["sent"] == 1  # only c: what the node acked at r1 was read fresh
    r1.send("cloudhub", world.put(node, pod("d", "ud", ns, rv=23)))  # r1's watch saw d too
    assert not queued_or_known(r1, node)  # not r1's node: nothing queued there
    owning = r1.commands["cloudhub.metrics"]()["ownership"]  # what /metrics shows
    assert (owning["owned"], owning["taken"], owning["dropped"]) == (0, 1, 1)
    assert r2.commands["cloudhub.metrics"]()["ownership"]["claims_written"] == 1
    [seen_at_r1] = r1.commands["cloudhub.nodes"](node=node)  # what `debug nodes` shows
    assert (seen_at_r1["owner"], seen_at_r1["epoch"], seen_at_r1["connected"]) == ("r2", 2, False)
    assert "r2" in nodes_table([seen_at_r1]).splitlines()[1]
    assert eventually(lambda: synced_rv(kube, node, "uc") == 22)
    again.stop(timeout=2)

    back = start_edge(make_hive, p1, node, db)
    assert eventually(lambda: stored(back) == {"a": 20, "b": 21, "c": 22, "d": 23})
    assert eventually(lambda: node_row(r1, node).get("acked") == 1)
    assert node_row(r1, node)["sent"] == 1  # only d: c was acked at r2, read fresh again
    [owner] = OwnerLeases(replicas("r3").owners.api, "r3").owners()
    assert (owner.node, owner.holder, owner.epoch) == (node, "r1", 3)
    back.stop(timeout=2)


def test_a_node_connecting_to_two_replicas_at_once_keeps_one_session_and_one_epoch(
    kube, kube_namespace, replicas, edge_node, make_hive, probe, world
):
    node = edge_node
    clouds = [
        start_cloud(make_hive, probe, world, kube=kube, services={"replica": replicas(f"r{i}")})
        for i in (1, 2)
    ]
    edges: list[RawEdge] = []
    threads = [threading.Thread(target=lambda p=port: edges.append(RawEdge(p, node)))
               for _, port in clouds]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    try:

        def served() -> list[str]:
            return [f"r{i}" for i, (cloud, _) in enumerate(clouds, 1)
                    if node_row(cloud, node).get("connected") and
                    node_row(cloud, node).get("owner") == f"r{i}"]  # fmt: skip

        assert eventually(lambda: len(served()) == 1 and not all(
            node_row(cloud, node).get("connected") for cloud, _ in clouds))  # fmt: skip
        [owner] = OwnerLeases(replicas("r3").owners.api, "r3").owners()
        assert owner.epoch == 2 and [owner.holder] == served()
        [(code, reason)] = [found for e in edges if (found := closed_with(e)) is not None]
        assert code == 1000 and "node served elsewhere" in reason
    finally:
        for edge in edges:
            edge.close()


def test_a_replica_over_its_share_hands_sessions_over_down_to_its_share(
    kube, replicas, make_hive, probe, world
):
    # Two live replicas and six nodes, all on r1: its share is 3, with the slack 4
    # (ceil(3 x 1.1)); it closes two sessions, which the balancer would send to r2.
    fast = {"rebalance_settle": 0.0, "rebalance_rate": 100.0}
    r1, p1 = start_cloud(make_hive, probe, world, kube=kube,
                         services={"replica": replicas("r1", **fast)})  # fmt: skip
    r2, _ = start_cloud(make_hive, probe, world, kube=kube, services={"replica": replicas("r2")})
    edges = [RawEdge(p1, unique("edge-b")) for _ in range(6)]
    try:
        assert eventually(lambda: all(node_row(r1, e.node).get("epoch") for e in edges))
        assert eventually(lambda: r1.commands["cloudhub.metrics"]()["ownership"]["rebalanced"]
                          == 2)  # fmt: skip
        gone = [e for e in edges if not node_row(r1, e.node).get("connected")]
        closes = [found for edge in gone if (found := closed_with(edge)) is not None]
    finally:
        for edge in edges:
            edge.close()
    assert len(closes) == 2
    assert all(code == 1001 and "rebalancing" in reason for code, reason in closes)
    assert r2.commands["cloudhub.metrics"]()["ownership"]["rebalanced"] == 0
