"""Joining with a token through KubeEdge's flow against the certserver module:
certificates are enrolled once and reused from the directory on the next run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beehive import Hive
from modules.certs import token
from modules.certs.module import ADMIN_COMMAND, CertServer
from modules.certs.settings import CertSettings
from modules.certs.store import SecretStore
from modules.fleet import FleetOptions, join
from modules.fleet.stats import Counters
from modules.kube.connection import KubeConnection
from tests.fakes import eventually
from tests.kube_fixtures import KubeTestCluster, kube, unique

__all__ = ["kube"]

pytestmark = pytest.mark.integration


def start_certserver(make_hive: Callable[..., Hive], kube: KubeTestCluster) -> tuple[Hive, str]:
    namespace = unique("kubeedge")
    hive = make_hive()
    settings = CertSettings(
        address="127.0.0.1", port=0, namespace=namespace, advertise_addresses=["127.0.0.1"]
    )
    hive.add("certserver", CertServer, settings=settings,
             services={"kube": KubeConnection(kube.kubeconfig_path)})  # fmt: skip
    hive.start()
    assert eventually(lambda: ADMIN_COMMAND in hive.commands, timeout=5)
    join_token = token.read_token(SecretStore(kube.core, namespace))
    assert join_token is not None
    return hive, join_token


def enroll(options: FleetOptions) -> tuple[list[Any], Counters]:
    counters = Counters(nodes=options.nodes)
    contexts = asyncio.run(join.enroll_all(options, counters))
    return contexts, counters


def test_nodes_enrol_with_the_token_once_and_reuse_their_certificates(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, tmp_path: Path
) -> None:
    hive, join_token = start_certserver(make_hive, kube)
    port = hive.commands[ADMIN_COMMAND]()["port"]
    options = FleetOptions(
        cloud="127.0.0.1:1", nodes=3, token=join_token, certs=tmp_path / "certs",
        cert_server=f"127.0.0.1:{port}", enroll_concurrency=2,
    )  # fmt: skip
    contexts, counters = enroll(options)
    assert len(contexts) == 3 and counters.enrolled == 3
    assert hive.commands[ADMIN_COMMAND]()["certificates_issued"] == 3
    assert (tmp_path / "certs" / "fleet-2" / "node.crt").exists()

    again, counters = enroll(options)  # second run: from the directory, nothing requested
    assert len(again) == 3 and counters.enrolled == 3
    assert hive.commands[ADMIN_COMMAND]()["certificates_issued"] == 3


def test_a_wrong_token_stops_the_join_naming_the_node(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, tmp_path: Path
) -> None:
    hive, join_token = start_certserver(make_hive, kube)
    port = hive.commands[ADMIN_COMMAND]()["port"]
    wrong = "0" * 64 + "." + join_token.split(".", 1)[1]
    options = FleetOptions(cloud="127.0.0.1:1", nodes=1, token=wrong, certs=tmp_path,
                           cert_server=f"127.0.0.1:{port}")  # fmt: skip
    with pytest.raises(join.JoinError, match="fleet-0"):
        enroll(options)
    assert not (tmp_path / "fleet-0" / "node.crt").exists()
