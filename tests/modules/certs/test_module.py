"""The certserver module in a hive: CA and token in Secrets, serving, admin status."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from beehive import Hive
from modules.certs import enroll, token
from modules.certs.module import ADMIN_COMMAND, CertServer
from modules.certs.settings import CertSettings
from modules.kube.connection import KubeConnection
from tests.fakes import eventually


@pytest.mark.integration
def test_module_serves_certificates_and_reports_counts_without_secrets(
    make_hive: Callable[..., Hive], kube, store, tmp_path
) -> None:
    hive = make_hive()
    settings = CertSettings(
        address="127.0.0.1", port=0, namespace=store.namespace, advertise_addresses=["127.0.0.1"]
    )
    hive.add(
        "certserver",
        CertServer,
        settings=settings,
        services={"kube": KubeConnection(kube.kubeconfig_path)},
    )
    hive.start()
    assert eventually(lambda: ADMIN_COMMAND in hive.commands, timeout=5)
    status = hive.commands[ADMIN_COMMAND]()
    join_token = token.read_token(store)
    assert join_token is not None and join_token.startswith(status["ca_sha256"] + ".")

    paths = enroll.EdgeCertPaths.in_directory(tmp_path)
    enroll.enroll(f"127.0.0.1:{status['port']}", join_token, "edge-1", paths)
    status = hive.commands[ADMIN_COMMAND]()
    assert status["certificates_issued"] == 1 and status["requests_refused"] == 0
    assert status["token_expires"]
    text = json.dumps(status)
    assert join_token.split(".", 1)[1] not in text and "PRIVATE" not in text
    hive.stop()
