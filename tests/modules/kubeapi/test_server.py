"""The embedded server itself: discovery, persistence across restarts, the standalone command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from modules.kube import KubeSettings, open_kube
from modules.kubeapi import EmbeddedKubeAPI
from tests.kube_fixtures import WAIT_SECONDS, KubeTestCluster, core_api, manifest


def test_discovery_lists_core_and_group_resources(kube: KubeTestCluster) -> None:
    assert "v1" in client.CoreApi(kube.api_client).get_api_versions().versions
    core = client.CoreV1Api(kube.api_client).get_api_resources()
    names = {r.name for r in core.resources}
    assert {"pods", "pods/status", "configmaps", "secrets", "nodes", "namespaces"} <= names
    groups = {g.name for g in client.ApisApi(kube.api_client).get_api_versions().groups}
    assert {"coordination.k8s.io", "apiextensions.k8s.io"} <= groups
    assert client.VersionApi(kube.api_client).get_code().major == "1"


def test_state_and_resource_versions_survive_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "state.db")
    with EmbeddedKubeAPI(data_path=data) as server:
        api = core_api(config.new_client_from_config(str(server.write_kubeconfig(tmp_path / "kc"))))
        cm = api.create_namespaced_config_map(
            "default", manifest({"metadata": {"name": "keep"}, "data": {"a": "1"}})
        )
        api.create_namespaced_config_map("default", manifest({"metadata": {"name": "drop"}}))
        api.delete_namespaced_config_map("drop", "default")
        before = int(api.list_namespaced_config_map("default").metadata.resource_version)
        api.api_client.close()
    with EmbeddedKubeAPI(data_path=data) as server:
        api = core_api(config.new_client_from_config(str(server.write_kubeconfig(tmp_path / "kc"))))
        kept = api.read_namespaced_config_map("keep", "default")
        assert (kept.data, kept.metadata.uid) == ({"a": "1"}, cm.metadata.uid)
        assert kept.metadata.resource_version == cm.metadata.resource_version
        assert [c.metadata.name for c in api.list_namespaced_config_map("default").items] == [
            "keep"
        ]
        later = api.create_namespaced_config_map("default", manifest({"metadata": {"name": "new"}}))
        assert int(later.metadata.resource_version) > before
        api.api_client.close()


def test_watch_from_before_a_restart_is_gone(tmp_path: Path) -> None:
    data = str(tmp_path / "state.db")
    with EmbeddedKubeAPI(data_path=data) as server:
        api = core_api(config.new_client_from_config(str(server.write_kubeconfig(tmp_path / "kc"))))
        old = api.create_namespaced_config_map("default", manifest({"metadata": {"name": "a"}}))
        api.create_namespaced_config_map("default", manifest({"metadata": {"name": "b"}}))
        api.api_client.close()
    with EmbeddedKubeAPI(data_path=data) as server:
        api = core_api(config.new_client_from_config(str(server.write_kubeconfig(tmp_path / "kc"))))
        stream = watch.Watch().stream(
            api.list_namespaced_config_map,
            "default",
            resource_version=old.metadata.resource_version,
            timeout_seconds=WAIT_SECONDS,
        )
        with pytest.raises(client.ApiException) as info:
            next(iter(stream))
        assert info.value.status == 410
        api.api_client.close()


def test_open_kube_embedded_serves_until_the_block_ends() -> None:
    with open_kube(KubeSettings()) as kube:
        with kube.api_client() as api_client:
            assert core_api(api_client).read_namespace("default").metadata.name == "default"
        path = kube.kubeconfig_path
    assert not path.exists()


@pytest.mark.integration
def test_standalone_command_writes_a_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modules.kubeapi.cli",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--data",
            str(tmp_path / "db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONWARNINGS="error"),
    )
    try:
        ready: list[str] = []
        reader = threading.Thread(
            target=lambda: ready.append(proc.stdout.readline() if proc.stdout else "")
        )
        reader.start()
        reader.join(WAIT_SECONDS * 2)
        assert ready and "serving at" in ready[0]
        api_client = config.new_client_from_config(str(kubeconfig))
        api = core_api(api_client)
        api.create_namespaced_config_map("default", manifest({"metadata": {"name": "hello"}}))
        raw = api.read_namespaced_config_map("hello", "default", _preload_content=False).read()
        assert json.loads(raw)["metadata"]["name"] == "hello"
        api_client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_SECONDS) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
