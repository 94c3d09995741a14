"""Objects at the edges of what the API accepts: a configmap near the 1 MiB limit, a pod
missing the fields edgecontroller reads, an object refused by the API (against the API,
cloudhub recorded)."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.kube_fixtures import manifest
from tests.modules.edgecontroller.helpers import WAIT, Cloud, body, configmap, env_from, pod


def test_a_configmap_near_the_size_limit_reaches_the_node_whole(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node = cloud.node()
    big = "x" * (1024 * 1024 - 4096)  # just under the 1 MiB a ConfigMap's data may hold
    core.create_namespaced_config_map(ns, configmap("big", blob=big))
    core.create_namespaced_pod(ns, pod("reader", node, containers=env_from(configmaps=("big",))))
    cm = f"node/{node}/{ns}/configmap/big"
    cloud.wait_ops(node, [("insert", cm)], rtype="configmap")
    assert body(cloud.last(cm))["data"]["blob"] == big


def test_a_configmap_over_the_limit_is_refused_by_the_api_and_nothing_is_sent(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node = cloud.node()
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_config_map(ns, configmap("huge", blob="x" * (1024 * 1024 + 1)))
    assert info.value.status in (413, 422)
    core.create_namespaced_pod(ns, pod("reader", node, containers=env_from(configmaps=("huge",))))
    cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/pod/reader")], rtype="pod")
    assert cloud.ops(node, rtype="configmap") == []


def test_pods_without_a_node_or_containers_details_are_handled(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node = cloud.node()
    core.create_namespaced_pod(ns, pod("unscheduled"))  # no spec.nodeName: nobody needs it
    core.create_namespaced_pod(
        ns,
        manifest(
            {
                "metadata": {"name": "bare"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            }
        ),
    )
    cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/pod/bare")], rtype="pod")
    assert not any("unscheduled" in m.route.resource for m in cloud.sent())
    assert cloud.probe.wait_for(
        lambda: cloud.hive.module("edgecontroller").state == "running", WAIT
    )
