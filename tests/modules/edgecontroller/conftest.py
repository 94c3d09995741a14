"""Fixtures: edgecontroller in a hive built from config/edgecontroller-recording.yaml,
cloudhub recorded, against the `kube` fixture's API (embedded or a real cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from beehive.config import build_hive
from modules.cli import APP
from modules.kube.connection import KubeConnection
from tests.fakes import Probe
from tests.kube_fixtures import KubeTestCluster, kube, kube_namespace  # noqa: F401
from tests.modules.edgecontroller.helpers import Cloud

CONFIG = Path(__file__).resolve().parents[3] / "config" / "edgecontroller-recording.yaml"


@pytest.fixture
def cloud(kube: KubeTestCluster, probe: Probe) -> Iterator[Cloud]:  # noqa: F811
    """A started hive: edgecontroller plus a recording cloudhub."""
    config = APP.load(str(CONFIG))
    connection = KubeConnection(kube.kubeconfig_path)
    hive = build_hive(config, services={"kube": connection, "probe": probe})
    hive.start()
    cloud = Cloud(hive, probe, kube)
    try:
        cloud.wait_synced()
        yield cloud
    finally:
        hive.stop(timeout=5)
        cloud.close()
