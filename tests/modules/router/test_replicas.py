"""The router with several cloudcore replicas on one API: a REST call that reaches a
replica not serving its node is passed to the router of the replica that does (from
the node's owner Lease and that replica's member Lease), and answered as if it had
gone there; a call already passed on is never passed on again."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beehive import Hive, Message
from modules import contract
from modules.cloudhub import CloudHub, CloudHubSettings
from modules.edgehub import EdgeHub, EdgeHubSettings
from modules.kube.connection import KubeConnection
from modules.metamanager import MetaManager, MetaManagerSettings
from modules.replicas import service
from modules.replicas.settings import ReplicaSettings
from modules.router import forward
from modules.router.module import Router
from modules.router.settings import RouterSettings
from modules.servicebus.module import ServiceBus, ServiceBusSettings
from tests.fakes import Probe, eventually
from tests.modules.cloudhub.harness import ControllerSettings, ScriptedController, World
from tests.modules.router.test_end_to_end import App

pytestmark = pytest.mark.integration
WAIT = 15.0
FAST: dict[str, Any] = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.1}


def rule_messages(app_port: int) -> list[Message]:
    """What edgecontroller hands the router: REST /api -> the local app's /app."""
    objects: list[tuple[str, dict[str, Any]]] = [
        (contract.RULEENDPOINT, {"metadata": {"name": "rest", "namespace": "default"},
                                 "spec": {"ruleEndpointType": "rest"}}),
        (contract.RULEENDPOINT, {"metadata": {"name": "svc", "namespace": "default"},
                                 "spec": {"ruleEndpointType": "servicebus",
                                          "properties": {"service_port": str(app_port)}}}),
        (contract.RULE, {"metadata": {"name": "api", "namespace": "default"},
                         "spec": {"source": "rest", "sourceResource": {"path": "/api"},
                                  "target": "svc", "targetResource": {"path": "/app"}}}),
    ]  # fmt: skip
    return [
        Message.new(source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE,
                    operation="insert", resource=f"{kind}/{obj['metadata']['name']}",
                    content=obj)
        for kind, obj in objects
    ]  # fmt: skip


class Cloud:
    """One replica: cloudhub and the router, with its replica service."""

    def __init__(self, make_hive: Callable[..., Hive], services: dict[str, Any],
                 app_port: int) -> None:  # fmt: skip
        self.hive = make_hive()
        self.hive.add(contract.EDGECONTROLLER, ScriptedController, services=services,
                      settings=ControllerSettings())  # fmt: skip
        self.hive.add(contract.CLOUDHUB, CloudHub, services=services,
                      settings=CloudHubSettings(port=0, tick_interval=0.05))  # fmt: skip
        self.hive.add(contract.ROUTER, Router, services=services,
                      settings=RouterSettings(port=0, rest_timeout=5.0, status_interval=0.05))  # fmt: skip
        self.hive.start()
        assert eventually(lambda: "router.address" in self.hive.commands)
        for message in rule_messages(app_port):
            self.hive.send(contract.ROUTER, message)
        self.hub = int(self.hive.commands["cloudhub.address"]()["port"])
        self.rest = int(self.hive.commands["router.address"]()["port"])

    def call(self, path: str, body: bytes, headers: dict[str, str] | None = None
             ) -> tuple[int, bytes, str]:  # fmt: skip
        """(status, body, the X-App header) of a PUT to this replica's router."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.rest}{path}", data=body,
                                         method="PUT", headers=headers or {})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read(), resp.headers.get("X-App", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), ""


def test_a_call_reaching_another_replica_is_passed_to_the_one_serving_the_node(
    make_hive: Callable[..., Hive], probe: Probe, kube: Any, kube_namespace: str,
    edge_node: str, tmp_path: Path,
) -> None:  # fmt: skip
    app, node = App(), edge_node
    made: list[service.Replica] = []

    def cloud(identity: str, advertise: str) -> Cloud:
        settings = ReplicaSettings(id=identity, namespace=kube_namespace,
                                   advertise_address=advertise, **FAST)  # fmt: skip
        replica = service.Replica(kube.new_client(), settings)
        replica.start()
        made.append(replica)
        services = {"probe": probe, "world": World(), "replica": replica,
                    "kube": KubeConnection(kube.kubeconfig_path)}  # fmt: skip
        return Cloud(make_hive, services, app.port)

    try:
        r1, r2 = cloud("r1", "127.0.0.1"), cloud("r2", "127.0.0.1")
        edge = make_hive()
        edge.add(contract.METAMANAGER, MetaManager,
                 settings=MetaManagerSettings(db_path=str(tmp_path / "e.db"),
                                              report_pod_status=False))  # fmt: skip
        edge.add(contract.EDGEHUB, EdgeHub, settings=EdgeHubSettings(
            server=f"127.0.0.1:{r2.hub}", node_name=node, reconnect_initial=0.02,
            reconnect_max=0.1))  # fmt: skip
        edge.add("servicebus", ServiceBus, settings=ServiceBusSettings(timeout=5))
        edge.start()
        path = f"/{node}/default/api/items"

        def served_at_r2() -> bool:
            return made[1].owner_of(node) == "r2" and r2.call(path, b"x")[0] == 201

        assert eventually(served_at_r2, timeout=WAIT)
        assert eventually(lambda: made[0].peer_annotation("r2", forward.ANNOTATION)
                          == f"http://127.0.0.1:{r2.rest}", timeout=WAIT)  # fmt: skip
        assert r1.call(path, b"hello") == (201, b"PUT /app/items hello", "yes")
        # Passed on once at most: r1 answers a call another replica passed to it itself.
        status, body, _ = r1.call(path, b"hello", {forward.HEADER: "r3"})
        assert (status, body) == (404, f"unknown node {node}".encode())
    finally:
        for replica in made:
            replica.stop()
        app.close()


def test_without_an_advertised_router_the_call_is_answered_where_it_arrived(
    make_hive: Callable[..., Hive], probe: Probe, kube: Any, kube_namespace: str,
    edge_node: str, tmp_path: Path,
) -> None:  # fmt: skip
    """r2 serves the node but tells no address (no advertise_address, no POD_IP)."""
    node = edge_node
    made: list[service.Replica] = []

    def cloud(identity: str) -> Cloud:
        settings = ReplicaSettings(id=identity, namespace=kube_namespace, **FAST)
        replica = service.Replica(kube.new_client(), settings)
        replica.start()
        made.append(replica)
        services = {"probe": probe, "world": World(), "replica": replica,
                    "kube": KubeConnection(kube.kubeconfig_path)}  # fmt: skip
        return Cloud(make_hive, services, 1)

    try:
        r1, r2 = cloud("r1"), cloud("r2")
        made[1].owners.claim(node)
        assert made[0].owner_of(node) == "r2"
        assert made[0].peer_annotation("r2", forward.ANNOTATION) == ""
        status, body, _ = r1.call(f"/{node}/default/api/items", b"hello")
        assert (status, body) == (404, f"unknown node {node}".encode())
        assert r2.rest  # started, serving nothing for the node here either
    finally:
        for replica in made:
            replica.stop()
