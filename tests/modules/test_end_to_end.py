"""The whole chain in one hive, as config/local.yaml runs it: Kubernetes API ->
edgecontroller -> cloudhub -> websocket -> edgehub -> metamanager (sqlite) -> ack ->
the record of what the node acked; and the edge's registration, status and lease going the other way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from beehive import Hive
from beehive.config import build_hive
from modules.cli import APP, services
from modules.cloudhub import objectsync
from tests.fakes import eventually, free_port
from tests.kube_fixtures import pod_manifest

pytestmark = pytest.mark.integration
WAIT = 15.0

CONFIG = """
kube: {{mode: embedded}}
modules:
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}}}
  metamanager:
    settings: {{db_path: "{db}"}}
  edgehub:
    settings: {{server: "127.0.0.1:{port}", node_name: edge-e2e, heartbeat: 1, status_interval: 1, reconnect_initial: 0.05, reconnect_max: 0.2}}
"""


class Stack:
    def __init__(self, hive: Hive, kube: Any) -> None:
        self.hive = hive
        self.kube = kube
        self.api = kube.api_client()
        from kubernetes import client

        self.core: Any = client.CoreV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.leases: Any = client.CoordinationV1Api(self.api)

    def stored(self) -> dict[tuple[str, str], str]:
        """(type, name) -> resourceVersion of what the edge has in sqlite."""
        rows = self.hive.commands["metamanager.store"]()
        return {(r["type"], r["name"]): str(r["resource_version"]) for r in rows}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    path = tmp_path / "e2e.yaml"
    path.write_text(CONFIG.format(port=free_port(), db=tmp_path / "edge.db"))
    cfg = APP.load(str(path))
    with services(cfg) as shared:
        hive = build_hive(cfg, services=shared)
        hive.start()
        s = Stack(hive, shared["kube"])
        try:
            yield s
        finally:
            hive.stop(timeout=5)
            s.api.close()


def test_an_edge_registers_its_node_and_keeps_a_lease(stack: Stack) -> None:
    def node() -> Any:
        nodes = stack.core.list_node(label_selector="node-role.kubernetes.io/edge").items
        return nodes[0] if nodes else None

    assert eventually(lambda: node() is not None, timeout=WAIT)
    assert node().metadata.name == "edge-e2e"
    assert eventually(
        lambda: any(
            c.type == "Ready" and c.status == "True" for c in node().status.conditions or []
        ),
        timeout=WAIT,
    )
    assert eventually(
        lambda: bool(stack.leases.list_namespaced_lease("kube-node-lease").items), timeout=WAIT
    )
    assert (
        stack.leases.read_namespaced_lease("edge-e2e", "kube-node-lease").spec.holder_identity
        == "edge-e2e"
    )


def test_pods_and_configmaps_reach_the_edge_are_acked_and_recorded(
    stack: Stack,
) -> None:
    assert eventually(lambda: ("node", "edge-e2e") in stack.stored(), timeout=WAIT)
    stack.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "e2e-config"}, "data": {"a": "1"}}
    )
    volumes = [{"name": "c", "configMap": {"name": "e2e-config"}}]
    created = stack.core.create_namespaced_pod(
        "default", pod_manifest("e2e-pod", nodeName="edge-e2e", volumes=volumes)
    )
    rv = created.metadata.resource_version
    assert eventually(lambda: stack.stored().get(("pod", "e2e-pod")) == rv, timeout=WAIT)
    assert ("configmap", "e2e-config") in stack.stored()

    patched = stack.core.patch_namespaced_pod(
        "e2e-pod", "default", {"metadata": {"labels": {"v": "2"}}}
    )
    new_rv = patched.metadata.resource_version
    assert eventually(lambda: stack.stored().get(("pod", "e2e-pod")) == new_rv, timeout=WAIT)

    def acked() -> str:  # written off the delivery path: may not be there yet
        held = objectsync.read_acked(stack.api, "edge-e2e").get(created.metadata.uid)
        return str(held.rv) if held is not None else ""

    assert eventually(lambda: acked() == new_rv, timeout=WAIT)

    stack.core.delete_namespaced_pod("e2e-pod", "default", grace_period_seconds=0)
    assert eventually(lambda: ("pod", "e2e-pod") not in stack.stored(), timeout=WAIT)


def test_a_pod_deleted_as_kubectl_does_it_is_stopped_by_the_edge_and_gone_everywhere(
    stack: Stack,
) -> None:
    assert eventually(lambda: ("node", "edge-e2e") in stack.stored(), timeout=WAIT)
    created = stack.core.create_namespaced_pod("default", pod_manifest("bye", nodeName="edge-e2e"))
    rv = created.metadata.resource_version
    assert eventually(lambda: stack.stored().get(("pod", "bye")) == rv, timeout=WAIT)
    stack.core.delete_namespaced_pod("bye", "default")  # graceful: the node must confirm

    def gone_from_the_api() -> bool:
        try:
            stack.core.read_namespaced_pod("bye", "default")
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    assert eventually(gone_from_the_api, timeout=WAIT)
    assert eventually(lambda: ("pod", "bye") not in stack.stored(), timeout=WAIT)
