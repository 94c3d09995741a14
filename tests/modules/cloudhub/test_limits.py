"""Limits and bad input at cloudhub: node limit, rate limit, malformed frames,
keepalive timeout, node deletion, and the ``beehive debug nodes`` view."""

from __future__ import annotations

import json

import pytest

from beehive.admin import AdminServer
from beehive.spec import MailboxSpec
from modules import cli, contract
from modules.cloudhub import CloudHub, CloudHubSettings
from tests.fakes import RecordingModule, RecordingSettings, eventually
from tests.modules.cloudhub.harness import (
    ControllerSettings,
    RawEdge,
    delivers_a_pod,
    node_row,
    object_message,
    operations,
    pod,
    start_cloud,
    start_edge,
    stored,
)

pytestmark = pytest.mark.integration


def test_a_node_over_the_limit_is_refused_with_1013(make_hive, probe, world):
    _cloud, port = start_cloud(make_hive, probe, world, node_limit=1)
    first = RawEdge(port, "edge-1")
    assert eventually(lambda: "connected" in operations(probe, "edge-1"))
    second = RawEdge(port, "edge-2")
    code, reason = second.close_status()
    assert code == 1013
    assert "node limit of 1" in reason
    assert "connected" not in operations(probe, "edge-2")
    first.close()
    second.close()


def test_upstream_over_the_rate_limit_gets_too_many_requests_replies(make_hive, probe, world):
    _cloud, port = start_cloud(make_hive, probe, world, message_qps=0.01, message_burst=2)
    edge = RawEdge(port, "edge-q")
    sent = [edge.send("update", f"default/podstatus/p{i}", {"i": i}) for i in range(4)]
    refused = [edge.recv(), edge.recv()]
    assert [f["header"]["parent_msg_id"] for f in refused] == sent[2:]
    assert {(f["route"]["group"], f["route"]["operation"]) for f in refused} == {
        ("resource", "response")
    }
    assert {f["content"]["ErrStatus"]["code"] for f in refused} == {429}
    assert eventually(lambda: operations(probe, "edge-q").count("update") == 2)
    edge.close()


def test_malformed_frames_are_refused_and_the_session_survives(make_hive, probe, world):
    cloud, port = start_cloud(make_hive, probe, world, max_frame_size=4096)
    edge, other = RawEdge(port, "edge-x"), RawEdge(port, "edge-y")
    edge.ws.send("not json")
    edge.ws.send(json.dumps({"header": {"msg_id": 7}, "route": {}, "content": None}))
    edge.ws.send(json.dumps({"header": {"msg_id": ""}, "route": {}, "content": None}))  # edgecore's
    bad_op = edge.send("explode", "default/pod/p")
    forged = edge.send("update", "node/edge-y/default/podstatus/p")
    replies = [edge.recv(), edge.recv()]
    assert [r["header"]["parent_msg_id"] for r in replies] == [bad_op, forged]
    assert all(r["route"]["operation"] == "response" for r in replies)
    assert [r["content"]["ErrStatus"]["code"] for r in replies] == [400, 400]
    good = edge.send("update", "default/podstatus/p", {"ok": True})
    assert eventually(lambda: any(m.msg_id == good for m in probe.messages("edgecontroller")))
    assert node_row(cloud, "edge-x")["decode_failed"] == 2
    assert node_row(cloud, "edge-x")["rejected"] == 2
    assert node_row(cloud, "edge-x")["ignored"] == 1  # the empty message: no reply, no error
    edge.ws.send("x" * 5000)  # over max_frame_size: the connection is closed with 1009
    assert edge.close_status()[0] == 1009
    edge.close()
    assert eventually(lambda: not node_row(cloud, "edge-x")["connected"])
    assert node_row(cloud, "edge-y")["connected"]
    cloud.send("cloudhub", world.put("edge-y", pod("p", "up", rv=3)))
    assert other.recv()["route"]["resource"] == "default/pod/p"
    other.close()


def test_a_silent_edge_is_disconnected_after_the_keepalive_timeout(make_hive, probe, world):
    _cloud, port = start_cloud(make_hive, probe, world, keepalive_timeout=0.3)
    edge = RawEdge(port, "edge-s")
    code, reason = edge.close_status()
    assert code == 1008
    assert reason.startswith("no keepalive for")
    assert eventually(lambda: "disconnected" in operations(probe, "edge-s"))
    edge.close()


def test_deleting_the_node_ends_its_session_and_drops_its_queue(make_hive, probe, world):
    quiet = ControllerSettings(answer_resync=False)  # nothing re-sent after the delete
    cloud, port = start_cloud(make_hive, probe, world, controller=quiet, window=1)
    edge = RawEdge(port, "edge-d")
    cloud.send("cloudhub", world.put("edge-d", pod("a", "ua", rv=1)))
    cloud.send("cloudhub", world.put("edge-d", pod("b", "ub", rv=2)))
    edge.recv()
    meta = {"name": "edge-d", "uid": "n1", "resourceVersion": "9"}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": meta}
    cloud.send("cloudhub", object_message("edge-d", node, "delete"))
    assert edge.close_status() == (1000, "the node was deleted")
    assert eventually(lambda: node_row(cloud, "edge-d") == {})
    edge.close()


def test_debug_nodes_shows_each_node_through_the_command(make_hive, probe, world, tmp_path, capsys):
    cloud, port = start_cloud(make_hive, probe, world)
    edge = start_edge(make_hive, port, "edge-v", tmp_path / "v.db")
    cloud.send("cloudhub", world.put("edge-v", pod("a", "ua", rv=4)))
    assert eventually(lambda: stored(edge) == {"a": 4})
    assert eventually(lambda: node_row(cloud, "edge-v")["acked"] == 1)
    admin = AdminServer(cloud, f"unix://{tmp_path}/admin.sock")
    admin.start()
    try:
        assert cli.main(["debug", "--address", admin.address, "nodes", "--json"]) == 0
        [row] = json.loads(capsys.readouterr().out)
        assert row["node"] == "edge-v" and row["connected"] and row["acked"] == 1
        assert cli.main(["debug", "--address", admin.address, "nodes"]) == 0
        table = capsys.readouterr().out
        assert table.split("\n")[0].split()[:3] == ["NODE", "CONNECTED", "QUEUED"]
        assert table.split("\n")[1].split()[:2] == ["edge-v", "yes"]
    finally:
        admin.stop()


def test_a_node_that_reads_nothing_is_closed_past_the_write_buffer_limit(make_hive, probe, world):
    cloud, port = start_cloud(make_hive, probe, world, max_write_buffer=65536, window=64)
    slow = RawEdge(port, "edge-slow")  # reads nothing: the socket's buffers fill, then ours
    assert eventually(lambda: "connected" in operations(probe, "edge-slow"))
    big = "x" * 512 * 1024
    for i in range(48):  # 24 MiB: more than TCP buffers on both ends take
        meta = {"name": f"cm{i}", "namespace": "default", "uid": f"u{i}",
                "resourceVersion": str(10 + i)}  # fmt: skip
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": big}}
        cloud.send("cloudhub", object_message("edge-slow", configmap))
    assert eventually(lambda: "disconnected" in operations(probe, "edge-slow"), 15)
    row = node_row(cloud, "edge-slow")
    assert row["queued"] == 48 and row["in_flight"] == 0  # all wait for its next session
    slow.ws.close()
    after = RawEdge(port, "edge-after")
    delivers_a_pod(cloud, world, after, rv=5)  # cloudhub goes on
    after.close()


def test_session_notices_are_never_dropped_when_the_upstream_hand_off_is_full(make_hive, probe):
    """edgecontroller holds still (its mailbox of 2 full) while nodes connect and report:
    their reports beyond the hand-off's bound may go, their connected and resync notices
    may not (a lost resync would leave a node without what it missed)."""
    hive = make_hive()
    probe.gate.clear()
    hive.add(contract.EDGECONTROLLER, RecordingModule, services={"probe": probe},
             mailbox=MailboxSpec(size=2, timeout=0.05),
             settings=RecordingSettings(gated=True))  # fmt: skip
    hive.add(contract.CLOUDHUB, CloudHub, settings=CloudHubSettings(
        port=0, tick_interval=0.05, object_sync=False, upstream_queue=2))  # fmt: skip
    hive.start()
    assert eventually(lambda: "cloudhub.address" in hive.commands)
    port = hive.commands["cloudhub.address"]()["port"]
    edges = [RawEdge(port, f"edge-{i}") for i in range(4)]
    try:
        for edge in edges:
            for i in range(5):
                edge.send("update", f"default/podstatus/p{i}", {"Name": f"p{i}", "Status": {}})
        assert eventually(lambda: all(node_row(hive, e.node).get("received") == 5 for e in edges))
        probe.gate.set()

        def notified() -> bool:
            wanted = {"connected", "resync"}
            return all(wanted <= set(operations(probe, e.node)) for e in edges)

        assert eventually(notified), [operations(probe, e.node) for e in edges]
    finally:
        probe.gate.set()
        for edge in edges:
            edge.close()
