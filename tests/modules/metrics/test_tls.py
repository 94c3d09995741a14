"""Over mutual TLS: certificate and join token expiry on the cloud and the edge, and a
certificate for another node counted as a refused handshake."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beehive import Hive
from modules.hub import errors
from modules.metrics import Metrics, MetricsSettings
from tests.fakes import Probe, eventually
from tests.modules.cloudhub.harness import World, start_edge
from tests.modules.cloudhub.tls_harness import connect, edge_tls, node_pair, start_secure_cloud
from tests.modules.metrics.helpers import metrics_port, scrape

pytestmark = pytest.mark.integration
EXPIRY = "beehive_certificate_expiry_timestamp_seconds"


def test_certificate_expiry_and_a_forbidden_handshake_are_exported(
    make_hive: Callable[..., Hive], kube: Any, tmp_path: Path
) -> None:
    cloud = start_secure_cloud(make_hive, Probe(), World(), kube)
    cloud.hive.add("metrics", Metrics, settings=MetricsSettings(port=0))
    assert eventually(lambda: "metrics.address" in cloud.hive.commands)
    port = metrics_port(cloud.hive)
    now = time.time()
    scraped = scrape(port)
    for module in ("certserver", "cloudhub"):
        for certificate in ("ca", "server"):
            assert scraped.value(EXPIRY, module=module, certificate=certificate) > now
    token_expiry = scraped.value("beehive_join_token_expiry_timestamp_seconds", module="certserver")
    assert now < token_expiry < now + 2 * 86400  # twice the 12 h refresh

    refused = {"result": "refused", "reason": "forbidden"}
    before = scraped.value("beehive_cloudhub_handshakes_total", **refused)
    with pytest.raises(errors.HubConnectionError, match="HTTP 403"):
        connect(cloud, node_pair(cloud.ca(), "edge-a"), "edge-b")
    assert eventually(
        lambda: scrape(port).value("beehive_cloudhub_handshakes_total", **refused) == before + 1
    )

    edge = start_edge(make_hive, cloud.port, "edge-t", tmp_path / "e.db",
                      **edge_tls(cloud, tmp_path / "certs"))  # fmt: skip
    edge.add("metrics", Metrics, settings=MetricsSettings(port=0))
    assert eventually(lambda: "metrics.address" in edge.commands)
    edge_port = metrics_port(edge)
    connected = {"module": "edgehub", "node": "edge-t"}
    assert eventually(
        lambda: scrape(edge_port).value("beehive_edgehub_connected", **connected) == 1
    )
    assert scrape(edge_port).value(EXPIRY, module="edgehub", certificate="node") > now
