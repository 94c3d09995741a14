"""metamanager in an edge hive connected to a cloud hive: acks after storing, remote
queries through edgehub, error replies for what cannot be stored."""

from __future__ import annotations

import threading

import pytest

from beehive import JsonValue, Message
from modules import contract
from modules.metamanager.module import MetaManager, MetaManagerSettings
from tests.fakes import WAIT, RecordingModule, RecordingSettings, eventually
from tests.modules.cloudhub.harness import node_row, pod, start_cloud, start_edge, stored

pytestmark = pytest.mark.integration


def configmap(name: str, rv: str) -> dict[str, JsonValue]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
            "metadata": {"name": name, "namespace": "default", "uid": f"u-{name}",
                         "resourceVersion": rv}}  # fmt: skip


def test_a_configmap_query_is_answered_by_the_cloud_and_stored(make_hive, probe, world, tmp_path):
    world.configmaps["settings"] = configmap("settings", "7")
    _cloud, port = start_cloud(make_hive, probe, world)
    edge = start_edge(make_hive, port, "edge-q", tmp_path / "q.db")

    def connected() -> bool:
        command = edge.commands.get("edgehub.state")
        return command is not None and bool(command()["connected"])

    assert eventually(connected)
    query = Message.new(source="edged", group="resource", operation="query",
                        resource="default/configmap/settings")  # fmt: skip
    reply = edge.send_sync(contract.METAMANAGER, query, timeout=3)
    assert reply.content == world.configmaps["settings"]
    assert stored(edge) == {"settings": 7}
    missing = query.with_route(resource="default/configmap/absent").with_header(msg_id="m2")
    answer = edge.send_sync(contract.METAMANAGER, missing, timeout=3)
    assert answer.route.operation == "error"
    # cloudhub sent both answers once, without waiting for an ack.
    row = node_row(_cloud, "edge-q")
    assert (row["in_flight"], row["resends"]) == (0, 0)


def test_a_message_that_cannot_be_stored_gets_an_error_reply_and_is_resent(
    make_hive, probe, world, tmp_path
):
    cloud, port = start_cloud(make_hive, probe, world, resend_initial=0.05)
    edge = start_edge(make_hive, port, "edge-e", tmp_path / "e.db")
    bad = world.put("edge-e", pod("p", "up", rv=5)).with_route(resource="node/edge-e/default/pod")
    cloud.send("cloudhub", bad)
    assert eventually(lambda: node_row(cloud, "edge-e").get("resends", 0) >= 1)
    assert node_row(cloud, "edge-e")["acked"] == 0
    assert stored(edge) == {}


def edge_store(make_hive, probe, tmp_path, **settings):
    """A hive of metamanager and, as its edgehub, a recorder that answers nothing itself."""
    hive = make_hive()
    hive.add("hub", RecordingModule, settings=RecordingSettings(reply=False),
             services={"probe": probe})  # fmt: skip
    hive.add(contract.METAMANAGER, MetaManager, settings=MetaManagerSettings(
        db_path=str(tmp_path / "edge.db"), hub_module="hub", report_pod_status=False,
        remote_query_timeout=WAIT * 2, **settings))  # fmt: skip
    hive.start()
    return hive


def query_for(name: str) -> Message:
    return Message.new(source="edged", group="resource", operation="query",
                       resource=f"default/configmap/{name}")  # fmt: skip


def test_deliveries_are_stored_and_acked_while_a_query_waits_for_the_cloud(
    make_hive, probe, tmp_path
):
    hive = edge_store(make_hive, probe, tmp_path)
    answers: list[Message] = []
    asker = threading.Thread(
        target=lambda: answers.append(hive.send_sync(contract.METAMANAGER, query_for("slow"),
                                                     timeout=WAIT * 2)))  # fmt: skip
    asker.start()
    try:
        assert probe.wait_for(
            lambda: any(m.route.operation == "query" for m in probe.messages("hub"))
        )
        delivery = Message.new(source="edgecontroller", group="resource", operation="insert",
                               resource="default/configmap/fast",
                               content=configmap("fast", "3"), resource_version="3")  # fmt: skip
        hive.send(contract.METAMANAGER, delivery)
        assert probe.wait_for(  # the ack, while the query still waits
            lambda: any(m.parent_msg_id == delivery.msg_id for m in probe.messages("hub"))
        )
        assert not answers
        (remote,) = [m for m in probe.messages("hub") if m.route.operation == "query"]
        hive.send_resp(remote.reply(configmap("slow", "9")))
    finally:
        asker.join(WAIT)
    assert [a.content for a in answers] == [configmap("slow", "9")]
    assert {
        o["name"]: o["resource_version"] for o in hive.commands[f"{contract.METAMANAGER}.store"]()
    } == {"fast": 3, "slow": 9}


def test_a_query_beyond_max_remote_queries_is_refused_at_once(make_hive, probe, tmp_path):
    hive = edge_store(make_hive, probe, tmp_path, max_remote_queries=1)
    first = threading.Thread(
        target=lambda: hive.send_sync(contract.METAMANAGER, query_for("a"), timeout=WAIT * 2),
        daemon=True)  # fmt: skip
    first.start()
    assert probe.wait_for(lambda: any(m.route.operation == "query" for m in probe.messages("hub")))
    refused = hive.send_sync(contract.METAMANAGER, query_for("b"), timeout=WAIT)
    assert refused.route.operation == "error"
    assert "1 queries wait for the cloud" in str(refused.content)
    (remote,) = [m for m in probe.messages("hub") if m.route.operation == "query"]
    hive.send_resp(remote.reply(configmap("a", "1")))
    first.join(WAIT)
    assert not first.is_alive()
