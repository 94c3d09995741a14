"""The edge nodes' Events end to end, against the API (embedded, or the real cluster of
BEEHIVE_TEST_KUBECONFIG): edges connect to cloudhub, leave, are refused at the node limit,
time out, and get certificates; the Events are listed as ``kubectl describe node``
lists them (all namespaces, field selector on the involved object) and, when a kubectl
is at hand, read in its Events section."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from beehive import Hive
from modules import contract
from modules.certs import enroll, token
from modules.certs.module import ADMIN_COMMAND, CertServer
from modules.certs.settings import CertSettings
from modules.certs.store import SecretStore
from modules.cloudhub import CloudHub, CloudHubSettings
from modules.edgecontroller import EdgeController
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube.connection import KubeConnection
from tests.fakes import eventually
from tests.kube_fixtures import KubeTestCluster, delete_if_present, kube, unique
from tests.modules.cloudhub.harness import RawEdge
from tests.modules.edgecontroller.helpers import edge_node

__all__ = ["kube"]

pytestmark = pytest.mark.integration
WAIT = 15.0
KUBECTL = next(
    (p for p in (shutil.which("kubectl"), "/work/real/bin/kubectl") if p and os.access(p, os.X_OK)),
    None,
)


class Fleet:
    """Nodes made for one test (Node objects, Events), all deleted after it."""

    def __init__(self, kube: KubeTestCluster) -> None:
        self.kube = kube
        self.nodes: list[str] = []

    def node(self) -> str:
        name = unique("edge")
        self.kube.core.create_node(edge_node(name))
        self.nodes.append(name)
        return name

    def events(self, node: str) -> list[Any]:
        """The node's Events as ``kubectl describe node`` finds them: in every namespace,
        by the involved object's kind and name."""
        selector = f"involvedObject.kind=Node,involvedObject.name={node}"
        found = self.kube.core.list_event_for_all_namespaces(field_selector=selector).items
        return sorted(found, key=lambda e: (e.first_timestamp, e.metadata.name))

    def reasons(self, node: str) -> list[str]:
        return [e.reason for e in self.events(node)]

    def close(self) -> None:
        for node in self.nodes:
            for event in self.events(node):
                delete_if_present(self.kube.core.delete_namespaced_event, event.metadata.name,
                                  event.metadata.namespace)  # fmt: skip
            delete_if_present(self.kube.core.delete_node, node)


@pytest.fixture
def fleet(kube: KubeTestCluster) -> Iterator[Fleet]:
    made = Fleet(kube)
    yield made
    made.close()


def start_cloud(make_hive: Callable[..., Hive], kube: KubeTestCluster, **hub: Any) -> int:
    """edgecontroller and cloudhub (plain websocket) on the API; cloudhub's port once every
    watch has listed (the nodes made before are in the node watch's cache)."""
    hive = make_hive()
    services = {"kube": KubeConnection(kube.kubeconfig_path)}
    hive.add(contract.EDGECONTROLLER, EdgeController, services=services,
             settings=EdgeControllerSettings())  # fmt: skip
    hive.add(contract.CLOUDHUB, CloudHub, services=services,
             settings=CloudHubSettings(port=0, tick_interval=0.05, object_sync=False, **hub))  # fmt: skip
    hive.start()
    assert eventually(lambda: "edgecontroller.ready" in hive.commands)
    assert eventually(lambda: hive.commands["edgecontroller.ready"]() == [], timeout=WAIT)
    return int(hive.commands["cloudhub.address"]()["port"])


def describe(kube: KubeTestCluster, node: str) -> str:
    """The Events section of ``kubectl describe node``."""
    assert KUBECTL is not None
    shown = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kube.kubeconfig_path), "describe", "node", node],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return shown[shown.index("\nEvents:") :]


def test_connects_disconnects_and_refusals_are_the_nodes_events(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, fleet: Fleet
) -> None:
    first, second = fleet.node(), fleet.node()
    port = start_cloud(make_hive, kube, node_limit=1)
    edge = RawEdge(port, first)
    refused = RawEdge(port, second)
    try:
        assert refused.close_status()[0] == 1013
    finally:
        refused.close()
    edge.close()  # a close frame: closed by the edge

    assert eventually(lambda: fleet.reasons(first) == ["EdgeConnected", "EdgeDisconnected"],
                      timeout=WAIT)  # fmt: skip
    assert eventually(lambda: fleet.reasons(second) == ["EdgeRefused"], timeout=WAIT)
    uid = kube.core.read_node(first).metadata.uid
    connected, disconnected = fleet.events(first)
    assert connected.type == disconnected.type == "Normal"
    assert connected.message.startswith("Connected to cloudcore ")
    assert disconnected.message == "Disconnected: closed by the edge (close code 1000)"
    assert (connected.involved_object.kind, connected.involved_object.uid) == ("Node", uid)
    assert (connected.source.component, connected.reporting_component) == ("cloudcore",) * 2
    assert connected.count == 1 and connected.metadata.namespace == "default"
    [refusal] = fleet.events(second)
    assert refusal.type == "Warning"
    assert refusal.message == "Connection refused: over the node limit (node limit of 1 reached)"

    if KUBECTL is None:
        pytest.skip("no kubectl on PATH or at /work/real/bin/kubectl: describe not checked")
    shown = describe(kube, first)
    assert "EdgeConnected" in shown and "EdgeDisconnected" in shown, shown
    assert "closed by the edge" in shown
    shown = describe(kube, second)
    assert "Warning" in shown and "EdgeRefused" in shown and "node limit" in shown, shown


def test_a_keepalive_timeout_is_a_warning_and_a_repeat_counts(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, fleet: Fleet
) -> None:
    node = fleet.node()
    port = start_cloud(make_hive, kube, keepalive_timeout=0.3)
    for expected in (1, 2):  # the same connect and timeout again: counted, one Event each
        edge = RawEdge(port, node)  # sends no keepalive
        try:
            assert edge.close_status()[0] == 1008
        finally:
            edge.close()

        def counted(n: int = expected) -> bool:
            return [(e.reason, e.count) for e in fleet.events(node)] == [
                ("EdgeConnected", n), ("EdgeDisconnected", n)]  # fmt: skip

        assert eventually(counted, timeout=WAIT)
    disconnected = fleet.events(node)[1]
    assert disconnected.type == "Warning"
    assert disconnected.message == (
        "Disconnected: keepalive timeout (no keepalive within keepalive_timeout (0.3 s))"
    )


def test_a_certificate_issued_is_the_nodes_event_with_its_expiry(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, fleet: Fleet, tmp_path: Path
) -> None:
    node = fleet.node()
    namespace = unique("kubeedge")
    hive = make_hive()
    hive.add("certserver", CertServer, services={"kube": KubeConnection(kube.kubeconfig_path)},
             settings=CertSettings(address="127.0.0.1", port=0, namespace=namespace,
                                   advertise_addresses=["127.0.0.1"]))  # fmt: skip
    hive.start()
    try:
        assert eventually(lambda: ADMIN_COMMAND in hive.commands, timeout=WAIT)
        port = hive.commands[ADMIN_COMMAND]()["port"]
        join_token = token.read_token(SecretStore(kube.core, namespace))
        assert join_token is not None
        paths = enroll.EdgeCertPaths.in_directory(tmp_path)
        enroll.enroll(f"127.0.0.1:{port}", join_token, node, paths)
        assert eventually(lambda: fleet.reasons(node) == ["CertificateIssued"], timeout=WAIT)
        [issued] = fleet.events(node)
        assert issued.type == "Normal"
        assert issued.message.startswith("Issued a certificate (join token), expires ")
        assert issued.involved_object.uid == node  # as the kubelet: describe finds it
        if KUBECTL is not None:
            assert "CertificateIssued" in describe(kube, node)
    finally:
        hive.stop()
        delete_if_present(kube.core.delete_namespace, namespace)
