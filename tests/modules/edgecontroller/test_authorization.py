"""Per-node authorization end to end: a hostile edge, through cloudhub's websocket and the
real edgecontroller against the API, tries to act for another node; every attempt gets
a failure reply (a Status, routed as cloudcore routes replies), nothing changes in the API, nothing reaches the other node, the
refusals are counted, and the secret it asked for appears in no reply and no log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from beehive import Hive
from modules import contract
from modules.cloudhub import CloudHub, CloudHubSettings
from modules.edgecontroller import EdgeController
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube.connection import KubeConnection
from tests.fakes import eventually
from tests.modules.cloudhub.harness import RawEdge
from tests.modules.edgecontroller.helpers import edge_node, env_from, pod, raw, secret

pytestmark = pytest.mark.integration

SECRET_VALUE = "hunter2-s3cr3t"


@pytest.fixture
def cloud(make_hive, kube) -> Iterator[tuple[Hive, int]]:
    hive = make_hive()
    services = {"kube": KubeConnection(kube.kubeconfig_path)}
    hive.add(contract.EDGECONTROLLER, EdgeController, services=services,
             settings=EdgeControllerSettings())  # fmt: skip
    hive.add(contract.CLOUDHUB, CloudHub, services=services,
             settings=CloudHubSettings(port=0, tick_interval=0.05, object_sync=False))  # fmt: skip
    hive.start()
    assert eventually(lambda: "cloudhub.address" in hive.commands)
    yield hive, hive.commands["cloudhub.address"]()["port"]
    for name in ("edge-a", "edge-b"):
        kube.core.delete_node(name)


def frames(edge: RawEdge, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Everything the edge receives until it has been quiet for `quiet` seconds (acked)."""
    got: list[dict[str, Any]] = []
    edge.ws.settimeout(quiet)
    while True:
        try:
            frame = json.loads(edge.ws.recv())
        except websocket.WebSocketTimeoutException:
            return got
        got.append(frame)
        if not frame["header"].get("parent_msg_id"):
            edge.ack(frame)


def test_an_edge_cannot_act_for_another_node(cloud, kube, kube_namespace, caplog):
    caplog.set_level(logging.DEBUG)
    hive, port = cloud
    ns = kube_namespace
    for name in ("edge-a", "edge-b"):
        kube.core.create_node(edge_node(name))
    kube.core.create_namespaced_secret(ns, secret("b-secret", password=SECRET_VALUE))
    theirs = kube.core.create_namespaced_pod(
        ns, pod("theirs", "edge-b", containers=env_from(secrets=("b-secret",)))
    )
    victim, attacker = RawEdge(port, "edge-b"), RawEdge(port, "edge-a")
    try:
        _attack(hive, kube, ns, theirs.metadata.uid, victim, attacker, caplog)
    finally:
        victim.ws.close()
        attacker.ws.close()


def _attack(hive, kube, ns, uid, victim, attacker, caplog) -> None:
    def victim_has_its_pod() -> bool:
        frames(victim, 0.05)  # read (and ack) what it was sent so far
        return _has_pod(hive, "edge-b")

    assert eventually(victim_has_its_pod)
    before = frames(victim)

    ids = [
        attacker.send("update", "null/nodestatus/edge-b",
                      {"UID": "", "Status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        attacker.send("update", f"{ns}/podstatus/theirs",
                      {"UID": uid, "Name": "theirs", "Status": {"phase": "Failed"}}),
        attacker.send("query", f"{ns}/secret/b-secret"),
        attacker.send("update", f"node/edge-b/{ns}/podstatus/theirs",
                      {"UID": uid, "Name": "theirs", "Status": {"phase": "Failed"}}),
    ]  # fmt: skip
    replies = {f["header"]["parent_msg_id"]: f for f in frames(attacker, 1.0)
               if f["header"].get("parent_msg_id") in ids}  # fmt: skip
    assert set(replies) == set(ids)
    routes = {(r["route"]["source"], r["route"]["group"], r["route"]["operation"])
              for r in replies.values()}  # fmt: skip
    assert routes <= {
        ("edgecontroller", "resource", "response"),
        ("cloudhub", "resource", "response"),
    }
    codes = sorted(r["content"]["ErrStatus"]["code"] for r in replies.values())
    assert codes == [400, 403, 403, 403]  # the forged resource: 400 from cloudhub
    assert SECRET_VALUE not in json.dumps(replies)

    after = frames(victim)
    assert not [f for f in before + after if f["header"].get("parent_msg_id") in ids]
    assert (
        raw(kube.core.read_namespaced_pod_status, "theirs", ns)["status"].get("phase") != "Failed"
    )
    node_b = raw(kube.core.read_node_status, "edge-b")
    conditions = (node_b.get("status") or {}).get("conditions") or []
    assert not [c for c in conditions if c["status"] == "False"]

    watches = hive.commands["watches"]()
    assert (
        watches["refused_by_node"].get("edge-a") == 3 and "edge-b" not in watches["refused_by_node"]
    )
    assert hive.commands["cloudhub.nodes"](node="edge-a")[0]["rejected"] == 1
    assert SECRET_VALUE not in caplog.text
    assert all(i in caplog.text for i in ids[:3])  # each refusal is logged with its message id


def _has_pod(hive: Hive, node: str) -> bool:
    rows = hive.commands["cloudhub.nodes"](node=node)
    return bool(rows) and rows[0]["acked"] >= 2  # the secret, then the pod
