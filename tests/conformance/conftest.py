"""The conformance suite runs only against the real systems, named by the environment:

- ``BEEHIVE_TEST_KUBECONFIG``: a real kube-apiserver (its kubeconfig);
- ``BEEHIVE_TEST_KUBEEDGE``: a folder holding KubeEdge's ``cloudcore`` and ``edgecore``
  binaries (and, optionally, KubeEdge's CRDs under ``crds/``, applied first);
- ``BEEHIVE_TEST_CONTAINERD``: a containerd socket, for edgecore with edged running real
  pods; its images are ``BEEHIVE_TEST_IMAGE`` (a busybox with ``sleep``, default
  ``docker.io/library/busybox:local``) and ``BEEHIVE_TEST_PAUSE_IMAGE`` (default
  ``registry.local/pause:3.9``), imported beforehand (pods use ``imagePullPolicy: Never``).

Without them every test here is skipped, so the ordinary test run stays self-contained.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.kube_fixtures import ENV as KUBECONFIG_ENV
from tests.kube_fixtures import KubeTestCluster

KUBEEDGE_ENV = "BEEHIVE_TEST_KUBEEDGE"
CONTAINERD_ENV = "BEEHIVE_TEST_CONTAINERD"


@pytest.fixture
def real_kube() -> Iterator[KubeTestCluster]:
    path = os.environ.get(KUBECONFIG_ENV)
    if not path:
        pytest.skip(f"{KUBECONFIG_ENV} names no real API server")
    cluster = KubeTestCluster(Path(path), embedded=False)
    yield cluster
    cluster.close()


@pytest.fixture
def kubeedge(real_kube: KubeTestCluster) -> Path:
    folder = os.environ.get(KUBEEDGE_ENV)
    if not folder:
        pytest.skip(f"{KUBEEDGE_ENV} names no folder with KubeEdge's binaries")
    path = Path(folder)
    for binary in ("cloudcore", "edgecore"):
        assert (path / binary).is_file(), f"{KUBEEDGE_ENV}: no {binary} in {path}"
    _apply_crds(real_kube, path / "crds")
    return path


@pytest.fixture
def containerd(kubeedge: Path) -> str:
    socket = os.environ.get(CONTAINERD_ENV)
    if not socket:
        pytest.skip(f"{CONTAINERD_ENV} names no containerd socket")
    assert Path(socket).is_socket(), f"{CONTAINERD_ENV}: {socket} is not a socket"
    return socket


def _apply_crds(kube: KubeTestCluster, folder: Path) -> None:
    if not folder.is_dir():
        return
    api: Any = kube.extensions
    for path in sorted(folder.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            try:
                api.create_custom_resource_definition(doc)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
