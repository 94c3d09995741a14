"""Why a session ended and whom a refusal was for, as the transport tells the core, seen
in the notices edgecontroller receives (contract item 4): a close frame, a connection
cut without one, a node that reads nothing, a bad request and a certificate of another
node (which name the node), and a request naming no valid node (no notice)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import websocket

from beehive import Message
from modules import contract
from modules.hub import errors
from tests.fakes import Probe, eventually
from tests.modules.cloudhub.harness import RawEdge, object_message, operations, start_cloud
from tests.modules.cloudhub.tls_harness import connect, node_pair, start_secure_cloud

pytestmark = pytest.mark.integration


def notice(probe: Probe, node: str, operation: str) -> dict[str, Any]:
    """The content of the node's last notice of `operation` (waited for)."""

    def found() -> list[Message]:
        return [m for m in probe.messages(contract.EDGECONTROLLER)
                if m.route.operation == operation and m.route.resource == f"node/{node}"]  # fmt: skip

    assert eventually(lambda: bool(found()))
    content = found()[-1].content
    assert isinstance(content, dict)
    return content


def test_a_close_frame_from_the_edge_is_a_close(make_hive, probe, world):
    _cloud, port = start_cloud(make_hive, probe, world)
    edge = RawEdge(port, "edge-c")
    assert eventually(lambda: "connected" in operations(probe, "edge-c"))
    edge.close()
    ended = notice(probe, "edge-c", "disconnected")
    assert (ended["reason"], ended["message"]) == ("closed", "close code 1000")


def test_a_connection_cut_without_a_close_frame_was_lost(make_hive, probe, world):
    _cloud, port = start_cloud(make_hive, probe, world)
    edge = RawEdge(port, "edge-l")
    assert eventually(lambda: "connected" in operations(probe, "edge-l"))
    sock = edge.ws.sock
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)  # no close frame
    edge.ws.shutdown()
    ended = notice(probe, "edge-l", "disconnected")
    assert (ended["reason"], ended["message"]) == (
        "lost", "the connection broke without a close frame")  # fmt: skip


def test_a_node_that_reads_nothing_ended_on_its_write_buffer(make_hive, probe, world):
    cloud, port = start_cloud(make_hive, probe, world, max_write_buffer=65536, window=64)
    slow = RawEdge(port, "edge-slow")  # reads nothing: the socket's buffers fill, then ours
    assert eventually(lambda: "connected" in operations(probe, "edge-slow"))
    big = "x" * 512 * 1024
    for i in range(48):  # 24 MiB: more than TCP buffers on both ends take
        meta = {"name": f"cm{i}", "namespace": "default", "uid": f"u{i}",
                "resourceVersion": str(10 + i)}  # fmt: skip
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": big}}
        cloud.send("cloudhub", object_message("edge-slow", configmap))
    ended = notice(probe, "edge-slow", "disconnected")
    assert ended["reason"] == "write_buffer"
    assert ended["message"] == "more than max_write_buffer bytes waited for it"
    slow.ws.close()


def test_a_bad_request_naming_a_valid_node_is_a_refusal_of_that_node(make_hive, probe, world):
    _cloud, port = start_cloud(make_hive, probe, world)
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(f"ws://127.0.0.1:{port}/p/edge-other/events",
                                    header=["node_id: edge-b", "project_id: p"], timeout=3)  # fmt: skip
    refused = notice(probe, "edge-b", "refused")
    assert (refused["reason"], refused["message"]) == (
        "bad_request", "bad connection request: path names node 'edge-other', header 'edge-b'")  # fmt: skip


def test_a_request_naming_no_valid_node_is_no_refusal_of_any(make_hive, probe, world):
    cloud, port = start_cloud(make_hive, probe, world)
    for header in ("node_id: Not_A_Node", "project_id: p"):
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(f"ws://127.0.0.1:{port}/p/x/events", header=[header],
                                        timeout=3)  # fmt: skip
    assert eventually(lambda: _refusals(cloud) == 2)
    assert not [
        m for m in probe.messages(contract.EDGECONTROLLER) if m.route.operation == "refused"
    ]


def _refusals(cloud: Any) -> int:
    refused = cloud.commands["cloudhub.metrics"]()["handshakes"]["refused"]
    return int(refused["bad_request"])


def test_a_certificate_of_another_node_is_a_refusal_of_the_node_claimed(
    make_hive, probe, world, kube
):
    cloud = start_secure_cloud(make_hive, probe, world, kube)
    pair_a = node_pair(cloud.ca(), "edge-a")
    with pytest.raises(errors.HubConnectionError):
        connect(cloud, pair_a, "edge-b")
    refused = notice(probe, "edge-b", "refused")
    assert refused["reason"] == "forbidden"
    assert "the client certificate is for node 'edge-a'" in refused["message"]
