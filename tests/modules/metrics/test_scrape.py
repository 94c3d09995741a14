"""A running local cloud and edges scraped over HTTP: values move as objects are delivered
and acked, refused handshakes are counted, per-node series only for the listed nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from kubernetes import client

from beehive import Hive
from beehive.config import build_hive
from modules.cli import APP, services
from tests.fakes import eventually, free_port
from tests.kube_fixtures import pod_manifest
from tests.modules.metrics.helpers import Scrape, count, get, metrics_port, scrape

pytestmark = pytest.mark.integration
WAIT = 15.0

CONFIG = """
kube: {{mode: embedded}}
modules:
  metrics:
    settings: {{port: 0, per_node: [edge-m1, edge-absent]}}
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}}}
  metamanager-1:
    impl: modules.metamanager:MetaManager
    settings: {{db_path: "{db1}", node_name: edge-m1, hub_module: edgehub-1}}
  edgehub-1:
    impl: modules.edgehub:EdgeHub
    settings: {{server: "127.0.0.1:{port}", node_name: edge-m1, store_module: metamanager-1, reconnect_initial: 0.05, reconnect_max: 0.2}}
  metamanager-2:
    impl: modules.metamanager:MetaManager
    settings: {{db_path: "{db2}", node_name: edge-m2, hub_module: edgehub-2}}
  edgehub-2:
    impl: modules.edgehub:EdgeHub
    settings: {{server: "127.0.0.1:{port}", node_name: edge-m2, store_module: metamanager-2, reconnect_initial: 0.05, reconnect_max: 0.2}}
"""


class Cloud:
    def __init__(self, hive: Hive, kube: Any, hub_port: int) -> None:
        self.hive = hive
        self.hub_port = hub_port
        self.port = metrics_port(hive)
        self.api = kube.api_client()
        self.core: Any = client.CoreV1Api(self.api)

    def scrape(self) -> Scrape:
        return scrape(self.port)

    def stored(self, store: str) -> dict[tuple[str, str], str]:
        rows = self.hive.commands[f"{store}.store"]()
        return {(r["type"], r["name"]): str(r["resource_version"]) for r in rows}


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    hub_port = free_port()
    path = tmp_path / "metrics.yaml"
    path.write_text(
        CONFIG.format(port=hub_port, db1=tmp_path / "edge1.db", db2=tmp_path / "edge2.db")
    )
    cfg = APP.load(str(path))
    with services(cfg) as shared:
        hive = build_hive(cfg, services=shared)
        hive.start()
        c = Cloud(hive, shared["kube"], hub_port)
        try:
            yield c
        finally:
            hive.stop(timeout=5)
            c.api.close()


def test_a_delivered_pod_moves_sent_acked_and_the_latency_histograms(cloud: Cloud) -> None:
    assert eventually(lambda: ("node", "edge-m1") in cloud.stored("metamanager-1"), timeout=WAIT)
    before = cloud.scrape()
    created = cloud.core.create_namespaced_pod(
        "default", pod_manifest("metrics-pod", nodeName="edge-m1")
    )
    rv = created.metadata.resource_version
    assert eventually(
        lambda: cloud.stored("metamanager-1").get(("pod", "metrics-pod")) == rv, timeout=WAIT
    )

    def moved() -> bool:
        after = cloud.scrape()
        return after.value("beehive_cloudhub_messages_acked_total") > before.value(
            "beehive_cloudhub_messages_acked_total"
        ) and count(after, "beehive_end_to_end_latency_seconds") > count(
            before, "beehive_end_to_end_latency_seconds"
        )

    assert eventually(moved, timeout=WAIT)
    after = cloud.scrape()
    for name in ("sent", "acked"):
        total = f"beehive_cloudhub_messages_{name}_total"
        assert after.value(total) > before.value(total)
        node = f"beehive_cloudhub_node_messages_{name}_total"
        assert after.value(node, node="edge-m1") > before.value(node, node="edge-m1")
    delivery = "beehive_cloudhub_delivery_latency_seconds"
    assert count(after, delivery) > count(before, delivery)
    assert after.value(f"{delivery}_bucket", le="+Inf") == count(after, delivery)
    assert after.value("beehive_cloudhub_nodes_connected") == 2
    assert after.value("beehive_cloudhub_node_connected", node="edge-m1") == 1
    # The edges' own view, and edgecontroller's: reports and API requests counted.
    assert after.value("beehive_edgehub_connected", module="edgehub-1", node="edge-m1") == 1
    assert (
        after.value("beehive_edgecontroller_reports_total", type="nodestatus", result="applied")
        + after.value("beehive_edgecontroller_reports_total", type="node", result="applied")
        > 0
    )
    assert after.value(
        "beehive_kube_requests_total", module="edgecontroller", verb="list", resource="pods",
        code="200",
    ) >= 1  # fmt: skip
    assert after.value("beehive_edgecontroller_watch_synced", resource="pods") == 1
    assert after.value("beehive_metrics_source_up", module="cloudhub") == 1


def test_per_node_series_are_only_for_the_nodes_the_config_lists(cloud: Cloud) -> None:
    assert eventually(lambda: cloud.scrape().value("beehive_cloudhub_nodes_connected") == 2,
                      timeout=WAIT)  # fmt: skip
    scraped = cloud.scrape()
    for name in scraped.names():
        if name.startswith("beehive_cloudhub_node_"):
            assert scraped.label_values(name, "node") <= {"edge-m1", "edge-absent"}, name
    assert scraped.value("beehive_cloudhub_node_connected", node="edge-absent") == 0
    assert not any("edge-m2" in line for line in scraped.text.splitlines()
                   if line.startswith("beehive_cloudhub"))  # fmt: skip


def test_a_refused_handshake_is_counted_by_its_reason(cloud: Cloud) -> None:
    reason = {"result": "refused", "reason": "bad_request"}
    before = cloud.scrape().value("beehive_cloudhub_handshakes_total", **reason)
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(
            f"ws://127.0.0.1:{cloud.hub_port}/e632aba927ea4ac2b575ec1603d56f10/x/events", timeout=5
        )  # fmt: skip  (no node_id header: 400)
    assert eventually(
        lambda: cloud.scrape().value("beehive_cloudhub_handshakes_total", **reason) == before + 1,
        timeout=WAIT,
    )
    scraped = cloud.scrape()
    assert scraped.value("beehive_cloudhub_handshakes_total", result="accepted", reason="ok") >= 2


def test_the_cloud_is_healthy_and_ready_once_everything_listed(cloud: Cloud) -> None:
    assert eventually(lambda: get(cloud.port, "/readyz") == (200, "ok\n"), timeout=WAIT)
    assert get(cloud.port, "/healthz") == (200, "ok\n")
    assert get(cloud.port, "/nothing")[0] == 404
