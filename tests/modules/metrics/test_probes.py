"""/healthz and /readyz: 503 with the reasons, 200 ok once they are gone."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beehive import Hive, Module, RestartPolicy, RestartSpec
from modules import contract
from modules.cloudhub import CloudHub, CloudHubSettings
from modules.edgecontroller import EdgeController
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.edgehub import EdgeHub, EdgeHubSettings
from modules.kube.connection import KubeConnection
from modules.metamanager import MetaManager, MetaManagerSettings
from modules.metrics import Metrics, MetricsSettings
from tests.fakes import WAIT, Probe, eventually, free_port
from tests.modules.cloudhub.harness import World, start_cloud
from tests.modules.metrics.helpers import get, metrics_port, scrape

pytestmark = pytest.mark.integration


class GatedKube:
    """The kube service, but the watches' clients (built with ``retries=0``) wait for
    `gate`: edgecontroller runs and its watches have not listed until the test says."""

    def __init__(self, kube: KubeConnection, gate: threading.Event) -> None:
        self._kube = kube
        self._gate = gate

    def api_client(self, **overrides: Any) -> Any:
        if overrides.get("retries") == 0:
            self._gate.wait(WAIT)
        return self._kube.api_client(**overrides)


class Broken(Module):
    def on_start(self) -> None:
        raise RuntimeError("the disk is on fire")


def test_readyz_is_503_until_every_watch_has_listed_then_200(
    make_hive: Callable[..., Hive], kube: Any
) -> None:
    gate = threading.Event()
    services = {"kube": GatedKube(KubeConnection(kube.kubeconfig_path), gate)}
    hive = make_hive()
    hive.add("metrics", Metrics, settings=MetricsSettings(port=0))
    hive.add(contract.EDGECONTROLLER, EdgeController, services=services,
             settings=EdgeControllerSettings())  # fmt: skip
    hive.add(contract.CLOUDHUB, CloudHub, settings=CloudHubSettings(port=0, object_sync=False))
    try:
        hive.start()
        port = metrics_port(hive)
        status, body = get(port, "/readyz")
        assert status == 503
        assert "edgecontroller: pods not listed yet\n" in body
        assert get(port, "/healthz") == (200, "ok\n")  # not ready is not unhealthy
        assert scrape(port).value("beehive_edgecontroller_watch_synced", resource="pods") == 0
    finally:
        gate.set()
    assert eventually(lambda: get(port, "/readyz") == (200, "ok\n"))
    assert scrape(port).value("beehive_edgecontroller_watch_synced", resource="pods") == 1


def test_healthz_is_503_naming_a_module_that_failed(make_hive: Callable[..., Hive]) -> None:
    hive = make_hive()
    hive.add("metrics", Metrics, settings=MetricsSettings(port=0))
    hive.add("broken", Broken, restart=RestartSpec(policy=RestartPolicy.NEVER))
    hive.start()
    port = metrics_port(hive)
    assert eventually(lambda: hive.module("broken").state == "failed")
    status, body = get(port, "/healthz")
    assert status == 503
    assert body == "broken: failed: start: RuntimeError: the disk is on fire\n"
    assert get(port, "/readyz") == (503, "broken: failed\n")
    scraped = scrape(port)
    assert scraped.value("beehive_module_state", module="broken", state="failed") == 1
    assert scraped.value("beehive_module_failures_total", module="broken") == 1


def test_the_edge_is_healthy_while_its_loop_runs_and_ready_once_connected(
    make_hive: Callable[..., Hive], tmp_path: Path
) -> None:
    cloud_port = free_port()
    edge = make_hive()
    edge.add("metrics", Metrics, settings=MetricsSettings(port=0))
    edge.add(contract.METAMANAGER, MetaManager,
             settings=MetaManagerSettings(db_path=str(tmp_path / "e.db"), report_pod_status=False))  # fmt: skip
    edge.add(contract.EDGEHUB, EdgeHub, settings=EdgeHubSettings(
        server=f"127.0.0.1:{cloud_port}", node_name="edge-p", reconnect_initial=0.02,
        reconnect_max=0.1,
    ))  # fmt: skip
    edge.start()
    port = metrics_port(edge)
    status, body = get(port, "/readyz")
    assert status == 503 and body.startswith(f"edgehub: not connected to 127.0.0.1:{cloud_port}")
    assert get(port, "/healthz") == (200, "ok\n")
    assert scrape(port).value("beehive_edgehub_connected", module="edgehub", node="edge-p") == 0

    start_cloud(make_hive, Probe(), World(), port=cloud_port)
    assert eventually(lambda: get(port, "/readyz") == (200, "ok\n"))
    scraped = scrape(port)
    assert scraped.value("beehive_edgehub_connected", module="edgehub", node="edge-p") == 1
    assert scraped.value("beehive_edgehub_connects_total", module="edgehub", node="edge-p") == 1
    assert not scraped.has("beehive_cloudhub_nodes_connected")  # no cloudhub in this process
