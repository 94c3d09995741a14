"""The fleet over mutual TLS: nodes join with the token (certserver), connect to
cloudhub with their certificates and receive pods, as KubeEdge edges do."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def secure_cloud(tmp_path: Path, config: str = CONFIG) -> Iterator[dict[str, Any]]:
    with cloudcore(tmp_path, config) as running:
        assert eventually(lambda: "certserver" in running.hive.commands, timeout=WAIT)
        join_token = token.read_token(SecretStore(running.core, "kubeedge"))
        yield {"cloud": running.address, "core": running.core, "token": join_token,
               "cert_port": running.hive.commands["certserver"]()["port"]}  # fmt: skip


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with secure_cloud(tmp_path) as cloud:
        yield cloud


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


def test_nodes_connect_to_a_cloud_named_by_a_dns_name_its_certificate_names(
    tmp_path: Path,
) -> None:
    """The server's name is checked against its certificate's DNS SANs (an IP address
    against its IP SANs: the other tests), as an edge checks it."""
    config = CONFIG.replace("advertise_addresses: [127.0.0.1]",
                            "advertise_addresses: [127.0.0.1], dns_names: [localhost]")  # fmt: skip
    assert "dns_names" in config
    with secure_cloud(tmp_path, config) as cloud:
        port = cloud["cloud"].rsplit(":", 1)[1]
        options = FleetOptions(
            cloud=f"localhost:{port}", nodes=2, prefix="dns", token=cloud["token"],
            certs=tmp_path / "certs", cert_server=f"127.0.0.1:{cloud['cert_port']}",
            heartbeat=1.0, status_interval=0.5,
        )  # fmt: skip
        fleet = FleetThread(options)
        try:
            assert fleet.wait_connected()
        finally:
            summary = fleet.stop()
    assert summary["connect_failures"] == 0


def test_nodes_connecting_at_once_each_present_their_own_certificate(
    secure: dict[str, Any], tmp_path: Path
) -> None:
    """The nodes share one client context (`modules.fleet.nodetls`), each connection with
    its own node's certificate: cloudhub refuses a certificate for another node (403),
    which would count as a failed connection, here or when all reconnect at once."""
    options = FleetOptions(
        cloud=secure["cloud"], nodes=12, prefix="many", token=secure["token"],
        certs=tmp_path / "certs", cert_server=f"127.0.0.1:{secure['cert_port']}",
        heartbeat=1.0, status_interval=0.5, connect_concurrency=12, handshake_threads=2,
    )  # fmt: skip
    fleet = FleetThread(options)
    try:
        assert fleet.wait_connected()
        credentials = fleet.call(lambda: [s._tls for s in fleet.fleet.sessions])
        assert len({id(c.context) for c in credentials if c is not None}) == 1
        assert fleet.call(fleet.fleet.storm) == 12
        assert eventually(lambda: fleet.counter("connects") >= 24, timeout=WAIT)
        assert fleet.wait_connected()
    finally:
        summary = fleet.stop()
    assert summary["connect_failures"] == 0


def test_what_a_storm_dropped_is_collected_once_every_node_is_back(
    secure: dict[str, Any], tmp_path: Path
) -> None:
    """As on the command line (`owns_process`): what the sessions hold is frozen once
    they are connected; a dropped TLS connection's objects refer to each other, so only
    the full collection when the next wave is up frees them."""
    options = FleetOptions(
        cloud=secure["cloud"], nodes=3, prefix="gc", token=secure["token"],
        certs=tmp_path / "certs", cert_server=f"127.0.0.1:{secure['cert_port']}",
        heartbeat=1.0, status_interval=0.5,
    )  # fmt: skip
    fleet = FleetThread(options, owns_process=True)
    try:
        assert fleet.wait_connected()
        assert eventually(lambda: fleet.call(lambda: fleet.fleet.waves) == 1, timeout=WAIT)
        assert gc.get_freeze_count() > 0
        dropped = fleet.call(lambda: [weakref.ref(s._ws) for s in fleet.fleet.sessions if s._ws])
        assert len(dropped) == 3 and fleet.call(fleet.fleet.storm) == 3
        assert eventually(lambda: fleet.counter("connects") == 6, timeout=WAIT)
        assert eventually(lambda: fleet.call(lambda: fleet.fleet.waves) == 2, timeout=WAIT)
        assert [ref() for ref in dropped] == [None] * 3
    finally:
        fleet.stop()
    assert gc.get_freeze_count() == 0
