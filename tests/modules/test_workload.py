"""The demo workload changes pods and a configmap through the Kubernetes API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from beehive import Hive
from modules.kube.connection import KubeConnection
from modules.workload import Workload, WorkloadSettings
from tests.fakes import eventually
from tests.kube_fixtures import KubeTestCluster, kube  # noqa: F401

MakeHive = Callable[..., Hive]


@pytest.mark.integration
def test_workload_creates_updates_and_deletes_pods_on_the_given_nodes(
    make_hive: MakeHive,
    kube: KubeTestCluster,  # noqa: F811
) -> None:
    namespace = kube.namespace()
    hive = make_hive()
    settings = WorkloadSettings(
        nodes=["edge-a"], namespace=namespace, pods_per_node=2, interval=0.01, delete_every=3
    )
    hive.add(
        "workload",
        Workload,
        settings=settings,
        services={"kube": KubeConnection(kube.kubeconfig_path)},
    )
    hive.start()

    def pods() -> list[Any]:
        return list(kube.core.list_namespaced_pod(namespace).items)

    assert eventually(lambda: len(pods()) == 2, timeout=10)
    assert {p.spec.node_name for p in pods()} == {"edge-a"}
    assert eventually(
        lambda: any(int(p.metadata.annotations["demo/tick"]) > 5 for p in pods()), timeout=10
    )
    assert kube.core.read_namespaced_config_map("demo-config", namespace).data["tick"]
    hive.stop()
