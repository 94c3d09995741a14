"""An edge hive (edgehub + metamanager on sqlite) against a cloud hive (cloudhub and a
scripted edgecontroller), over real websockets on loopback, with the records of what
nodes acked in the embedded API server (or $BEEHIVE_TEST_KUBECONFIG's cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from modules.cloudhub import debug, objects, objectsync, syncrecord
from tests.fakes import eventually
from tests.modules.cloudhub.harness import (
    node_row,
    operations,
    pod,
    start_cloud,
    start_edge,
    stored,
)

pytestmark = pytest.mark.integration


def recorded(kube: Any, node: str, uid: str) -> syncrecord.Held | None:
    """What cloudhub's records say of one object on one node (None: no entry)."""
    return objectsync.read_acked(kube.api_client, node).get(uid)


def synced_rv(kube: Any, node: str, uid: str) -> int | None:
    """The version the records say the node acked (None: no entry, or not acked)."""
    held = recorded(kube, node, uid)
    return held.rv if held is not None else None


def test_objects_are_stored_acked_and_recorded(
    make_hive, probe, world, kube, kube_namespace, tmp_path
):
    cloud, port = start_cloud(make_hive, probe, world, kube=kube)
    edge = start_edge(make_hive, port, "edge-a", tmp_path / "a.db")
    first = pod("web", "uid-web", kube_namespace, rv=10)
    cloud.send("cloudhub", world.put("edge-a", first))
    assert eventually(lambda: stored(edge) == {"web": 10})
    assert eventually(lambda: synced_rv(kube, "edge-a", "uid-web") == 10)
    held = recorded(kube, "edge-a", "uid-web")
    assert held is not None
    assert held.ref == objects.ObjectRef("uid-web", kube_namespace, "pod", "web", "v1", "Pod")

    cloud.send("cloudhub", world.put("edge-a", pod("web", "uid-web", kube_namespace, rv=11)))
    assert eventually(lambda: stored(edge) == {"web": 11})
    assert eventually(lambda: synced_rv(kube, "edge-a", "uid-web") == 11)

    cloud.send("cloudhub", world.remove("edge-a", "uid-web"))
    assert eventually(lambda: stored(edge) == {})
    assert eventually(lambda: recorded(kube, "edge-a", "uid-web") is None)
    row = node_row(cloud, "edge-a")
    assert row["connected"] and row["acked"] == 3 and row["in_flight"] == 0
    stats = cloud.commands["cloudhub.objectsync"]()  # as `beehive debug nodes` shows it
    assert sum(stats["writes"].values()) >= 2 and stats["pending_records"] == 0
    assert debug.objectsync_line(stats).startswith("records of what nodes acked: writes create")


def test_the_edge_registers_its_node_and_reports_status(make_hive, probe, world, tmp_path):
    _cloud, port = start_cloud(make_hive, probe, world)
    start_edge(make_hive, port, "edge-r", tmp_path / "r.db", status_interval=0.05)
    assert eventually(lambda: operations(probe, "edge-r").count("update") >= 2)
    ops = operations(probe, "edge-r")
    assert ops[:3] == ["connected", "resync", "keepalive"]
    [register] = [m for m in probe.messages("edgecontroller") if m.route.operation == "insert"]
    assert register.route.resource == "node/edge-r/null/node/edge-r"
    assert register.content["metadata"]["labels"]["node-role.kubernetes.io/edge"] == ""
    status = next(m for m in probe.messages("edgecontroller") if m.route.operation == "update")
    assert status.route.resource == "node/edge-r/null/nodestatus/edge-r"
    assert status.content["Status"]["conditions"][0]["type"] == "Ready"
