"""The watch survives the API server going away: unreachable at start, 410 Gone after a
restart (relist differences only), and resyncs wait for the first lists.

These restart the embedded API server (with sqlite persistence), so they do not run
against a real cluster.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from beehive import Hive
from modules import contract
from modules.edgecontroller import EdgeController, EdgeControllerSettings
from modules.kube.connection import KubeConnection
from modules.kubeapi import EmbeddedKubeAPI
from tests.fakes import Probe, RecordingModule, RecordingSettings, eventually
from tests.kube_fixtures import ENV, manifest
from tests.modules.edgecontroller.helpers import WAIT, body, configmap, edge_node, env_from, pod

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get(ENV)), reason="restarts the embedded server"),
]
FAST = EdgeControllerSettings(backoff_initial=0.05, backoff_max=0.2)


class Env:
    """An embedded server that can be restarted on its port, and a client for it."""

    def __init__(self, tmp_path: Path) -> None:
        self.data = str(tmp_path / "kube.db")
        self.server = EmbeddedKubeAPI(data_path=self.data).start()
        self.port = int(self.server.url.rsplit(":", 1)[1])
        self.kubeconfig = self.server.write_kubeconfig(tmp_path / "kubeconfig")

    def core(self, server: EmbeddedKubeAPI | None = None) -> tuple[Any, client.ApiClient]:
        if server is None:
            api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        else:
            api_client = config.new_client_from_config_dict(server.kubeconfig())
        return client.CoreV1Api(api_client), api_client

    def restart(self) -> None:
        self.server = EmbeddedKubeAPI(port=self.port, data_path=self.data).start()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    env = Env(tmp_path)
    yield env
    env.server.stop()


def start_hive(env: Env, probe: Probe) -> Hive:
    hive = Hive()
    hive.add("cloudhub", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    services = {"kube": KubeConnection(env.kubeconfig)}
    hive.add("edgecontroller", EdgeController, settings=FAST, services=services)
    hive.start()
    return hive


def ops(probe: Probe, node: str) -> list[tuple[str, str]]:
    return [
        (m.route.operation, m.route.resource)
        for m in probe.messages("cloudhub")
        if m.route.resource.startswith(f"node/{node}")
    ]


def phases(hive: Hive) -> set[str]:
    command = hive.commands.get("watches")
    return {w["phase"] for w in command()["watches"]} if command else set()


def test_a_relist_after_410_sends_only_what_changed_while_the_watch_was_down(
    env: Env, probe: Probe
) -> None:
    core, api_client = env.core()
    core.create_namespace(manifest({"metadata": {"name": "ns"}}))
    core.create_node(edge_node("n1"))
    core.create_namespaced_config_map("ns", configmap("conf", a="1"))
    containers = env_from(configmaps=("conf",))
    for name in ("keep", "gone"):
        core.create_namespaced_pod("ns", pod(name, "n1", containers=containers))
    api_client.close()
    hive = start_hive(env, probe)
    try:
        keep, gone, conf = (f"node/n1/ns/{t}" for t in ("pod/keep", "pod/gone", "configmap/conf"))
        first = {("insert", gone), ("insert", keep), ("insert", conf)}
        assert probe.wait_for(lambda: first <= set(ops(probe, "n1")), WAIT)
        assert eventually(lambda: "listing" not in phases(hive), WAIT)
        env.server.stop()
        assert eventually(lambda: "backoff" in phases(hive), WAIT)
        side = EmbeddedKubeAPI(data_path=env.data).start()  # changes the watch cannot see
        side_core, side_client = env.core(side)
        side_core.delete_namespaced_pod("gone", "ns", grace_period_seconds=0)
        side_core.patch_namespaced_config_map("conf", "ns", manifest({"data": {"a": "2"}}))
        side_client.close()
        side.stop()
        env.restart()

        expected = {("delete", gone), ("update", conf)}
        ok = probe.wait_for(lambda: expected <= set(ops(probe, "n1")), WAIT)
        assert ok, (ops(probe, "n1"), hive.commands["watches"]())
        assert body([m for m in probe.messages("cloudhub") if m.route.resource == conf][-1])[
            "data"
        ] == {"a": "2"}
        watches = hive.commands["watches"]()["watches"]
        pods = next(w for w in watches if w["resource"] == "pods")
        assert pods["relists"] >= 1 and pods["restarts"] >= 1
        assert ops(probe, "n1").count(("insert", keep)) == 1
        assert [op for op in ops(probe, "n1") if op[1] == keep] == [("insert", keep)]
    finally:
        hive.stop()


def test_an_api_unreachable_at_start_is_logged_and_retried(
    env: Env, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    env.server.stop()
    caplog.set_level(logging.WARNING, logger="modules.edgecontroller")
    hive = start_hive(env, probe)
    try:
        assert eventually(lambda: phases(hive) == {"backoff"}, WAIT)
        assert f"Kubernetes API at https://127.0.0.1:{env.port} failed" in caplog.text
        env.restart()
        core, api_client = env.core()
        core.create_node(edge_node("late"))
        api_client.close()
        assert probe.wait_for(lambda: ("update", "node/late/null/node/late") in ops(probe, "late"))
    finally:
        hive.stop()


def test_a_resync_that_arrives_before_the_first_lists_waits_for_them(
    env: Env, probe: Probe
) -> None:
    core, api_client = env.core()
    core.create_namespace(manifest({"metadata": {"name": "ns"}}))
    core.create_node(edge_node("n1"))
    uid = core.create_namespaced_pod("ns", pod("p", "n1")).metadata.uid
    api_client.close()
    env.server.stop()  # lists cannot complete until it is back
    hive = start_hive(env, probe)
    try:
        hive.send(
            contract.EDGECONTROLLER,
            _notice("n1", contract.RESYNC),
        )
        env.restart()
        done = ("resynced", "node/n1")
        assert probe.wait_for(lambda: done in ops(probe, "n1"), WAIT)
        resynced = [m for m in probe.messages("cloudhub") if m.route.operation == "resynced"]
        assert uid in body(resynced[0])["uids"]
    finally:
        hive.stop()


def _notice(node: str, operation: str) -> Any:
    from beehive import Message

    return Message.new(
        source=contract.CLOUDHUB,
        group=contract.GROUP_RESOURCE,
        operation=operation,
        resource=contract.build_resource(node),
    )
