"""The embedded server asks for its bearer token, as kube-apiserver asks for credentials:
401 with a `Status` without it, the token in an owner-only kubeconfig, owner-only data."""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from modules.kubeapi import EmbeddedKubeAPI, cli
from tests.fakes import eventually
from tests.filemodes import mode, sqlite_modes, umask
from tests.kube_fixtures import WAIT_SECONDS, core_api, manifest
from tests.modules.kubeapi.helpers import address, tls_context

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "reason": "Unauthorized",
    "code": 401,
    "message": "Unauthorized",
}


@pytest.fixture
def server() -> Iterator[EmbeddedKubeAPI]:
    with EmbeddedKubeAPI() as running:
        yield running


def request(
    server: EmbeddedKubeAPI, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One GET on a fresh connection: (status, body)."""
    host, port = address(server)
    conn = http.client.HTTPSConnection(
        host, port, timeout=WAIT_SECONDS, context=tls_context(server)
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def token_in(kubeconfig: Path) -> str:
    document: Any = yaml.safe_load(kubeconfig.read_text())
    token: str = document["users"][0]["user"]["token"]
    return token


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/v1/namespaces/kubeedge/secrets/casecret", id="a secret"),
        pytest.param("/api/v1/secrets", id="every secret"),
        pytest.param("/api/v1", id="discovery"),
        pytest.param("/openid/v1/jwks", id="the service account keys"),
        pytest.param("/api/v1/secrets?watch=true", id="a watch"),
        pytest.param("/api/v1/watch/secrets", id="a legacy watch path"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no credentials"),
        pytest.param({"Authorization": "Bearer wrong"}, id="a wrong token"),
        pytest.param({"Authorization": "Bearer "}, id="an empty token"),
        pytest.param({"Authorization": "Basic YWRtaW46YWRtaW4="}, id="basic auth"),
        pytest.param({"Authorization": "Bearer \xe9t\xe9"}, id="a token that is not ascii"),
    ],
)
def test_requests_without_the_token_get_401_unauthorized(
    server: EmbeddedKubeAPI, path: str, headers: dict[str, str]
) -> None:
    status, body = request(server, path, headers)
    assert (status, json.loads(body)) == (401, UNAUTHORIZED)


def test_a_prefix_or_extension_of_the_token_is_refused(server: EmbeddedKubeAPI) -> None:
    token = server.token
    for wrong in (token[:-1], token + "x", token.upper() if token != token.upper() else "x"):
        status, _ = request(server, "/api/v1/secrets", {"Authorization": f"Bearer {wrong}"})
        assert status == 401


def test_the_token_opens_the_api_with_either_case_of_bearer(server: EmbeddedKubeAPI) -> None:
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {server.token}"}
        status, body = request(server, "/api/v1/namespaces/default", headers)
        assert (status, json.loads(body)["metadata"]["name"]) == (200, "default")


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version"])
def test_health_and_version_are_open_as_on_a_real_apiserver(
    server: EmbeddedKubeAPI, path: str
) -> None:
    assert request(server, path)[0] == 200


def test_the_kubeconfig_is_owner_only_and_carries_the_token(
    server: EmbeddedKubeAPI, tmp_path: Path
) -> None:
    with umask(0o000):
        path = server.write_kubeconfig(tmp_path / "new" / "kubeconfig")
    assert mode(path) == 0o600
    assert token_in(path) == server.token
    api_client = config.new_client_from_config(str(path))
    try:
        assert core_api(api_client).read_namespace("default").metadata.name == "default"
    finally:
        api_client.close()


def test_an_existing_readable_kubeconfig_is_replaced_owner_only(
    server: EmbeddedKubeAPI, tmp_path: Path
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("old")
    path.chmod(0o644)
    with umask(0o022):
        server.write_kubeconfig(path)
    assert (mode(path), token_in(path)) == (0o600, server.token)


def test_a_client_from_the_servers_kubeconfig_document_is_authenticated(
    server: EmbeddedKubeAPI,
) -> None:
    api_client = config.new_client_from_config_dict(server.kubeconfig())
    try:
        assert core_api(api_client).read_namespace("default").metadata.name == "default"
    finally:
        api_client.close()


def test_servers_without_a_data_file_each_have_their_own_token() -> None:
    with EmbeddedKubeAPI() as first, EmbeddedKubeAPI() as second:
        assert first.token != second.token and len(first.token) >= 32
        status, _ = request(second, "/api/v1/secrets", {"Authorization": f"Bearer {first.token}"})
        assert status == 401


def test_the_token_is_kept_in_the_data_file_so_a_kubeconfig_survives_a_restart(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "kube.db")
    with EmbeddedKubeAPI(data_path=data) as server:
        path = server.write_kubeconfig(tmp_path / "kubeconfig")
        port = int(server.url.rsplit(":", 1)[1])
    with EmbeddedKubeAPI(port=port, data_path=data) as server:
        assert server.token == token_in(path)
        api_client = config.new_client_from_config(str(path))
        try:
            core_api(api_client).create_namespaced_config_map(
                "default", manifest({"metadata": {"name": "after-restart"}})
            )
        finally:
            api_client.close()


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_the_data_file_and_its_sidecars_are_owner_only(tmp_path: Path, mask: int) -> None:
    data = tmp_path / "kube.db"
    with umask(mask), EmbeddedKubeAPI(data_path=str(data)) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        api_client = config.new_client_from_config(str(kubeconfig))
        try:
            core_api(api_client).create_namespaced_secret(
                "default", manifest({"metadata": {"name": "s"}, "stringData": {"k": "v"}})
            )
        finally:
            api_client.close()
        modes = sqlite_modes(data)
        assert {"kube.db", "kube.db-wal", "kube.db-shm"} <= set(modes)
        assert set(modes.values()) == {0o600}, modes
    assert set(sqlite_modes(data).values()) == {0o600}


def test_an_existing_readable_data_file_is_made_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "kube.db"
    sqlite3.connect(data).close()
    data.chmod(0o644)
    with umask(0o022), EmbeddedKubeAPI(data_path=str(data)):
        assert set(sqlite_modes(data).values()) == {0o600}


def test_the_kube_api_command_writes_an_owner_only_kubeconfig_with_the_token(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    args = argparse.Namespace(port=0, host="127.0.0.1", data="", kubeconfig=str(kubeconfig))
    stop = threading.Event()
    codes: list[int] = []
    with umask(0o000):
        thread = threading.Thread(target=lambda: codes.append(cli.run(args, stop)))
        thread.start()
        try:
            assert eventually(kubeconfig.exists, timeout=WAIT_SECONDS)
            assert mode(kubeconfig) == 0o600
            api_client = config.new_client_from_config(str(kubeconfig))
            anonymous = client.Configuration(host=api_client.configuration.host)
            anonymous.ssl_ca_cert = api_client.configuration.ssl_ca_cert
            unauthenticated = client.ApiClient(anonymous)
            try:
                assert core_api(api_client).read_namespace("default").metadata.name == "default"
                with pytest.raises(client.ApiException) as info:
                    core_api(unauthenticated).list_secret_for_all_namespaces()
                assert info.value.status == 401
            finally:
                api_client.close()
                unauthenticated.close()
        finally:
            stop.set()
            thread.join(WAIT_SECONDS)
    assert codes == [0]


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_sends_the_token_from_the_kubeconfig(
    server: EmbeddedKubeAPI, tmp_path: Path
) -> None:
    """client-go sends a kubeconfig's credentials only over TLS: the reason for HTTPS."""
    path = server.write_kubeconfig(tmp_path / "kubeconfig")
    listed = subprocess.run(
        ["kubectl", "--kubeconfig", str(path), "get", "namespace", "default", "-o", "name"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (listed.returncode, listed.stdout.strip()) == (0, "namespace/default"), listed.stderr
