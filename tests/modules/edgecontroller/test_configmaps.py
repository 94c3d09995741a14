"""ConfigMaps and secrets follow the pods that reference them, and stop following them
(against the API, cloudhub recorded)."""

from __future__ import annotations

from tests.kube_fixtures import manifest
from tests.modules.edgecontroller.helpers import (
    WAIT,
    Cloud,
    body,
    configmap,
    env_from,
    pod,
    secret,
)


def test_a_landing_pod_brings_its_configmap_and_secret_then_updates_follow(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node = cloud.node()
    core.create_namespaced_config_map(ns, configmap("conf", a="1"))
    core.create_namespaced_secret(ns, secret("creds", p="x"))
    core.create_namespaced_config_map(ns, configmap("unused", a="1"))
    containers = env_from(configmaps=("conf",), secrets=("creds",))
    core.create_namespaced_pod(ns, pod("app", node, containers=containers))
    cm, sec, p = (f"node/{node}/{ns}/{t}" for t in ("configmap/conf", "secret/creds", "pod/app"))
    assert cloud.probe.wait_for(lambda: len(cloud.ops(node)) >= 4, WAIT)  # node + 3
    # Dependencies before the pod; KubeEdge sends a secret's first delivery as `update`.
    ops = cloud.ops(node)
    assert ops[0] == ("update", f"node/{node}/null/node/{node}")
    assert sorted(ops[1:3]) == [("insert", cm), ("update", sec)]
    assert ops[3:] == [("insert", p)]

    core.patch_namespaced_config_map("conf", ns, manifest({"data": {"a": "2"}}))
    cloud.wait_ops(node, [*ops, ("update", cm)])
    assert body(cloud.last(cm, "update"))["data"] == {"a": "2"}
    assert (body(cloud.last(cm, "update"))["kind"], body(cloud.last(sec))["kind"]) == (
        "ConfigMap",
        "Secret",
    )


def test_a_node_forgets_a_configmap_when_its_last_referencing_pod_leaves(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node = cloud.node()
    cm = f"node/{node}/{ns}/configmap/shared"
    volumes = [{"name": "v", "projected": {"sources": [{"configMap": {"name": "shared"}}]}}]
    core.create_namespaced_config_map(ns, configmap("shared", a="1"))
    core.create_namespaced_pod(ns, pod("one", node, volumes=volumes))
    core.create_namespaced_pod(ns, pod("two", node, volumes=volumes))
    cloud.wait_ops(node, [("insert", cm)], rtype="configmap")

    core.delete_namespaced_pod("one", ns, grace_period_seconds=0)
    core.patch_namespaced_config_map("shared", ns, manifest({"data": {"a": "2"}}))
    cloud.wait_ops(node, [("insert", cm), ("update", cm)], rtype="configmap")

    core.delete_namespaced_pod("two", ns, grace_period_seconds=0)
    cloud.wait_ops(node, [("insert", cm), ("update", cm), ("delete", cm)], rtype="configmap")
    core.patch_namespaced_config_map("shared", ns, manifest({"data": {"a": "3"}}))
    # A later change to an object the node needs is the barrier: "shared" is not sent.
    core.create_namespaced_config_map(ns, configmap("other"))
    core.create_namespaced_pod(ns, pod("three", node, volumes=[_cm_volume("other")]))
    other = f"node/{node}/{ns}/configmap/other"
    expected = [("insert", cm), ("update", cm), ("delete", cm), ("insert", other)]
    cloud.wait_ops(node, expected, rtype="configmap")


def test_configmap_delete_reaches_every_node_that_needs_it_and_only_those(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    a, b, c = cloud.node(), cloud.node(), cloud.node()
    core.create_namespaced_config_map(ns, configmap("cfg"))
    for name, node in (("pa", a), ("pb", b)):
        core.create_namespaced_pod(ns, pod(name, node, volumes=[_cm_volume("cfg")]))
    core.create_namespaced_pod(ns, pod("pc", c))
    for node in (a, b):
        cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/configmap/cfg")], rtype="configmap")
    core.delete_namespaced_config_map("cfg", ns)
    for node in (a, b):
        res = f"node/{node}/{ns}/configmap/cfg"
        cloud.wait_ops(node, [("insert", res), ("delete", res)], rtype="configmap")
    assert cloud.ops(c, rtype="configmap") == []


def _cm_volume(name: str) -> dict[str, object]:
    return {"name": "v", "configMap": {"name": name}}
