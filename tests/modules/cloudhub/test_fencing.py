"""A replica that cannot be sure it holds its Lease (fenced) closes every edge session and
refuses upgrades with 503 until it holds it again: its edges go to another replica."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import websocket

from modules.replicas.leases import LeaseAPI
from modules.replicas.owners import OwnerLeases
from modules.replicas.settings import ReplicaSettings
from tests.fakes import eventually
from tests.modules.cloudhub.harness import RawEdge, node_row, pod, start_cloud

pytestmark = pytest.mark.integration


class StandInReplica:
    """The ``replica`` service as cloudhub sees it: listeners, why it is fenced (told by
    the test), and real owner Leases in the API under test."""

    def __init__(self, kube: Any, namespace: str, identity: str = "r1") -> None:
        self.listeners: list[Callable[[str], None]] = []
        self.reason: str | None = None
        self.owners = OwnerLeases(LeaseAPI(kube.api_client, namespace, timeout=10), identity)
        self.settings = ReplicaSettings(id=identity, namespace=namespace)
        self.identity = identity
        self.member_term = 1  # times the member Lease was taken

    def is_leader(self) -> bool:
        return False

    def members(self) -> list[str]:
        return [self.owners.identity]

    def add_listener(self, listener: Callable[[str], None]) -> None:
        self.listeners.append(listener)

    def fenced(self) -> str | None:
        return self.reason

    def tell(self, reason: str | None) -> None:
        self.reason = reason
        for listener in self.listeners:
            listener("fenced" if reason else "member")


def test_a_fenced_replica_closes_its_sessions_and_refuses_until_it_holds_its_lease(
    make_hive, probe, world, kube, kube_namespace
):
    replica, cloud, port, edge = serving(make_hive, probe, world, kube, kube_namespace, "edge-f")
    replica.tell("renewal overdue")
    try:
        code, reason = edge.close_status()
    finally:
        edge.close()
    assert code == 1001 and "fenced: renewal overdue" in reason
    assert upgrade_status(port, "edge-g") == 503
    assert cloud.commands["cloudhub.ready"]() == ["renewal overdue"]  # /readyz says why
    replica.tell(None)
    assert cloud.commands["cloudhub.ready"]() == []
    again = RawEdge(port, "edge-f")
    try:
        assert eventually(lambda: node_row(cloud, "edge-f").get("connected", False))
    finally:
        again.close()


def serving(
    make_hive: Any, probe: Any, world: Any, kube: Any, namespace: str, node: str
) -> tuple[StandInReplica, Any, int, RawEdge]:
    """A cloudhub with a stand-in replica service, and an edge `node` it serves."""
    replica = StandInReplica(kube, namespace)
    cloud, port = start_cloud(make_hive, probe, world, services={"replica": replica})
    edge = RawEdge(port, node)
    assert eventually(lambda: node_row(cloud, node).get("connected", False))
    return replica, cloud, port, edge


def until_closed(edge: RawEdge) -> tuple[list[bytes], tuple[int, str]]:
    """The frames the edge got before its close frame, and that frame's code and reason."""
    frames: list[bytes] = []
    try:
        while True:
            opcode, data = edge.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return frames, (int.from_bytes(data[:2], "big"), data[2:].decode())
            frames.append(data)
    finally:
        edge.close()


def upgrade_status(port: int, node: str) -> int:
    """The status cloudhub answers an upgrade request for `node` with."""
    request = (f"GET /p/{node}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Sec-WebSocket-Version: 13\r\nnode_id: {node}\r\nproject_id: p\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(request.encode())
        return int(sock.recv(1024).split(b" ")[1])


def test_a_lapse_no_listener_reports_still_closes_the_sessions_before_anything_is_sent(
    make_hive, probe, world, kube, kube_namespace
):
    # A replica resumed after a pause (SIGSTOP) may renew its Lease before its keeper
    # reports the lapse: cloudhub asks before every round of delivery.
    replica, cloud, port, edge = serving(make_hive, probe, world, kube, kube_namespace, "edge-z")
    replica.reason = "renewal overdue"  # the keeper has not told anyone
    cloud.send("cloudhub", world.put("edge-z", pod("p", "uid-p", rv=5)))
    frames, (code, reason) = until_closed(edge)
    assert frames == []  # closed, and not sent the pod first
    assert code == 1001 and "fenced: renewal overdue" in reason
    assert upgrade_status(port, "edge-z") == 503
    replica.reason = None  # renewed, again without a word to the listeners
    again = RawEdge(port, "edge-z")
    try:
        assert eventually(lambda: node_row(cloud, "edge-z").get("connected", False))
    finally:
        again.close()


def test_a_lapse_renewed_before_cloudhub_asked_still_ends_the_sessions_before_anything_is_sent(
    make_hive, probe, world, kube, kube_namespace
):
    # A replica resumed after a pause longer than its renew deadline may take its member
    # Lease again before cloudhub's loop runs: `fenced` says None whenever it is asked,
    # and only the Lease's new term shows that the sessions were served by a zombie.
    replica, cloud, port, edge = serving(make_hive, probe, world, kube, kube_namespace, "edge-t")
    replica.member_term += 1  # lapsed and taken again, and cloudhub never saw it fenced
    cloud.send("cloudhub", world.put("edge-t", pod("p", "uid-p", rv=5)))
    frames, (code, reason) = until_closed(edge)
    assert frames == []  # closed, and not sent the pod first
    assert code == 1001 and "member Lease lapsed" in reason
    again = RawEdge(port, "edge-t")  # the new term serves the edges that come back
    try:
        assert eventually(lambda: node_row(cloud, "edge-t").get("connected", False))
        assert again.ws.connected
    finally:
        again.close()


def test_a_clean_stop_hands_the_sessions_over_in_batches_and_refuses_new_ones(
    make_hive, probe, world, kube, kube_namespace
):
    # hand_over_seconds: a replica stopping closes its sessions a batch at a time (here
    # three every 0.5 s), and from the start refuses upgrades and reports not ready, so
    # that the balancer sends the edges to the other replicas.
    replica = StandInReplica(kube, kube_namespace)
    cloud, port = start_cloud(make_hive, probe, world, services={"replica": replica},
                              hand_over_seconds=4.0)  # fmt: skip
    edges = [RawEdge(port, f"edge-h{i}") for i in range(20)]
    closed: list[tuple[int, str]] = []
    try:
        assert eventually(lambda: cloud.commands["cloudhub.ready"]() == [])
        assert eventually(lambda: all(node_row(cloud, e.node).get("connected") for e in edges))
        stopper = threading.Thread(target=cloud.stop, kwargs={"timeout": 10.0})
        stopper.start()
        closed.append(edges[0].close_status())  # the first batch
        still_open = [e for e in edges[1:] if node_row(cloud, e.node).get("connected")]
        assert upgrade_status(port, "edge-new") == 503
        assert len(still_open) >= 10  # not all at once
        closed += [e.close_status() for e in edges[1:]]
        stopper.join(15)
        assert not stopper.is_alive()
    finally:
        for edge in edges:
            edge.close()
    assert {code for code, _ in closed} == {1001}
    assert all("stopping" in reason for _, reason in closed)
