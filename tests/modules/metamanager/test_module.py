"""metamanager in an edge hive connected to a cloud hive: acks after storing, remote
queries through edgehub, error replies for what cannot be stored."""

from __future__ import annotations

import pytest

from beehive import Message
from modules import contract
from tests.fakes import eventually
from tests.modules.cloudhub.harness import node_row, pod, start_cloud, start_edge, stored

pytestmark = pytest.mark.integration


def configmap(name: str, rv: str) -> dict[str, object]:
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
