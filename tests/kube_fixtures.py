"""Fixtures for tests that talk to Kubernetes: a fresh embedded API server per test, or
the real cluster that `BEEHIVE_TEST_KUBECONFIG` names.

Import the fixture names explicitly in a conftest:
    from tests.kube_fixtures import kube, kube_namespace  # noqa: F401

`kube` yields a `KubeTestCluster` (`api_client`, `kubeconfig_path`, `namespace()` for a
unique namespace that is deleted afterwards); `kube_namespace` is one such namespace.
Tests must only rely on what a real API server does, so they pass either way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from modules.kubeapi import EmbeddedKubeAPI

ENV = "BEEHIVE_TEST_KUBECONFIG"
WAIT_SECONDS = 5  # bound for every wait on the API


def unique(prefix: str = "t") -> str:
    """A DNS-1123 name unlikely to clash with another test run on a shared cluster."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def delete_if_present(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """A delete that finds nothing to delete (404) is no failure; any other is."""
    try:
        call(*args, **kwargs)
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def core_api(api_client: client.ApiClient) -> Any:
    """CoreV1Api typed Any, as `KubeTestCluster.core`."""
    return client.CoreV1Api(api_client)


def manifest(obj: object) -> Any:
    """A plain dict as a request body (the typed client accepts dicts for models)."""
    return obj


def pod_manifest(name: str, **spec: Any) -> Any:
    containers = [{"name": "main", "image": "registry.invalid/app:1"}]
    return {"metadata": {"name": name}, "spec": {"containers": containers, **spec}}


class KubeTestCluster:
    """A Kubernetes API for one test: clients and unique namespaces."""

    def __init__(self, kubeconfig_path: Path, *, embedded: bool) -> None:
        self.kubeconfig_path = kubeconfig_path  # kubeconfig for the API under test
        self.embedded = embedded  # True when the API is this project's embedded server
        self.api_client = self.new_client()  # shared client for the test
        self._namespaces: list[str] = []  # created here, deleted at teardown
        self._clients = [self.api_client]  # closed at teardown

    def new_client(self) -> client.ApiClient:
        """Another ApiClient (own connection pool), closed at teardown."""
        api_client: client.ApiClient = config.new_client_from_config(
            config_file=str(self.kubeconfig_path)
        )
        if hasattr(self, "_clients"):
            self._clients.append(api_client)
        return api_client

    # The API groups, typed Any: the generated models make every field Optional, which
    # would bury the assertions under None checks.
    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api_client)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api_client)

    @property
    def coordination(self) -> Any:
        return client.CoordinationV1Api(self.api_client)

    @property
    def extensions(self) -> Any:
        return client.ApiextensionsV1Api(self.api_client)

    def namespace(self, prefix: str = "bh-test") -> str:
        """Create a namespace with a unique name and its ServiceAccount ``default`` (which
        a real API server's admission requires of every pod, and kube-controller-manager
        would create); it is deleted after the test."""
        name = unique(prefix)
        self.core.create_namespace(manifest({"metadata": {"name": name}}))
        self._namespaces.append(name)
        try:
            self.core.create_namespaced_service_account(
                name, manifest({"metadata": {"name": "default"}})
            )
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        return name

    def wait_for_crd(self, name: str) -> None:
        """Wait (bounded) until the CRD reports Established, as clients must."""
        stream = watch.Watch().stream(
            self.extensions.list_custom_resource_definition,
            field_selector=f"metadata.name={name}",
            timeout_seconds=WAIT_SECONDS,
        )
        for event in stream:
            conditions = event["object"].status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
        raise AssertionError(f"CRD {name} not established within {WAIT_SECONDS}s")

    def close(self) -> None:
        for name in self._namespaces:
            delete_if_present(self.core.delete_namespace, name)
        for api_client in self._clients:
            api_client.close()


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeTestCluster]:
    """The API under test: a fresh embedded server, or $BEEHIVE_TEST_KUBECONFIG's cluster."""
    real = os.environ.get(ENV)
    if real:
        cluster = KubeTestCluster(Path(real), embedded=False)
        yield cluster
        cluster.close()
        return
    with EmbeddedKubeAPI() as server:
        cluster = KubeTestCluster(server.write_kubeconfig(tmp_path / "kubeconfig"), embedded=True)
        yield cluster
        cluster.close()


@pytest.fixture
def kube_namespace(kube: KubeTestCluster) -> str:
    """A unique, existing namespace, deleted after the test."""
    return kube.namespace()


@pytest.fixture
def edge_node(kube: KubeTestCluster) -> Iterator[str]:
    """A Node that exists (records of nodes that do not are dropped at start), deleted
    after the test."""
    name = unique("edge-r")
    kube.core.create_node(manifest({"metadata": {"name": name}}))
    yield name
    delete_if_present(kube.core.delete_node, name)
