"""An edge hive (edgehub + metamanager on sqlite) against a cloud hive (cloudhub and a
scripted edgecontroller), over real websockets on loopback, with ObjectSync records
in the embedded API server (or $BEEHIVE_TEST_KUBECONFIG's cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

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

GROUP, VERSION = "reliablesyncs.kubeedge.io", "v1alpha1"


def object_sync(kube: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "objectsyncs", name
        )
        return found
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def synced_rv(kube: Any, namespace: str, name: str) -> str | None:
    record = object_sync(kube, namespace, name)
    return ((record or {}).get("status") or {}).get("objectResourceVersion")


def test_objects_are_stored_acked_and_recorded_in_objectsyncs(
    make_hive, probe, world, kube, kube_namespace, tmp_path
):
    cloud, port = start_cloud(make_hive, probe, world, kube=kube)
    edge = start_edge(make_hive, port, "edge-a", tmp_path / "a.db")
    first = pod("web", "uid-web", kube_namespace, rv=10)
    cloud.send("cloudhub", world.put("edge-a", first))
    assert eventually(lambda: stored(edge) == {"web": 10})
    assert eventually(lambda: synced_rv(kube, kube_namespace, "edge-a.uid-web") == "10")
    record = object_sync(kube, kube_namespace, "edge-a.uid-web")
    assert record is not None
    assert record["spec"] == {"objectAPIVersion": "v1", "objectKind": "Pod", "objectName": "web"}

    cloud.send("cloudhub", world.put("edge-a", pod("web", "uid-web", kube_namespace, rv=11)))
    assert eventually(lambda: stored(edge) == {"web": 11})
    assert eventually(lambda: synced_rv(kube, kube_namespace, "edge-a.uid-web") == "11")

    cloud.send("cloudhub", world.remove("edge-a", "uid-web"))
    assert eventually(lambda: stored(edge) == {})
    assert eventually(lambda: object_sync(kube, kube_namespace, "edge-a.uid-web") is None)
    row = node_row(cloud, "edge-a")
    assert row["connected"] and row["acked"] == 3 and row["in_flight"] == 0


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
