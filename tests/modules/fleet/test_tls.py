"""The fleet over mutual TLS: nodes join with the token (certserver), connect to
cloudhub with their certificates and receive pods, as KubeEdge edges do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modules.certs import token
from modules.certs.store import SecretStore
from modules.fleet import FleetOptions
from tests.fakes import eventually
from tests.modules.fleet.conftest import WAIT, FleetThread, cloudcore
from tests.modules.fleet.helpers import create_pods

pytestmark = pytest.mark.integration

CONFIG = """
kube: {{mode: embedded}}
hive: {{admin: {{address: "off"}}}}
modules:
  certserver:
    settings: {{address: 127.0.0.1, port: 0, advertise_addresses: [127.0.0.1]}}
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}, tls: true}}
"""


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with cloudcore(tmp_path, CONFIG) as running:
        assert eventually(lambda: "certserver" in running.hive.commands, timeout=WAIT)
        join_token = token.read_token(SecretStore(running.core, "kubeedge"))
        yield {"cloud": running.address, "core": running.core, "token": join_token,
               "cert_port": running.hive.commands["certserver"]()["port"]}  # fmt: skip


def test_nodes_join_with_the_token_and_receive_pods_over_tls(
    secure: dict[str, Any], tmp_path: Path
) -> None:
    options = FleetOptions(
        cloud=secure["cloud"], nodes=2, prefix="tls", token=secure["token"],
        certs=tmp_path / "certs", cert_server=f"127.0.0.1:{secure['cert_port']}",
        heartbeat=1.0, status_interval=0.5,
    )  # fmt: skip
    fleet = FleetThread(options)
    try:
        assert fleet.wait_connected()
        assert fleet.counter("enrolled") == 2
        expected = create_pods(secure["core"], options.node_names, per_node=1)
        assert fleet.holds(expected)
    finally:
        summary = fleet.stop()
    assert summary["connect_failures"] == 0 and summary["acks"] >= 2
    assert not [t for t in threading.enumerate() if t.name == "fleet-test"]
