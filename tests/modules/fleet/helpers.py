"""Pods for fleet nodes, and what each node should then hold."""

from __future__ import annotations

from typing import Any

from tests.kube_fixtures import pod_manifest

Expected = dict[str, dict[str, int | None]]


def create_pods(core: Any, nodes: list[str], per_node: int, namespace: str = "default") -> Expected:
    """Create `per_node` pods on each node; node -> key -> the created resourceVersion."""
    expected: Expected = {}
    for node in nodes:
        for i in range(per_node):
            pod = core.create_namespaced_pod(namespace, pod_manifest(f"{node}-p{i}", nodeName=node))
            key = f"{namespace}/pod/{pod.metadata.name}"
            expected.setdefault(node, {})[key] = int(pod.metadata.resource_version)
    return expected


def patch_pods(core: Any, expected: Expected, label: str) -> Expected:
    """Label every pod; the new expectations."""
    updated: Expected = {}
    for node, keys in expected.items():
        for key in keys:
            namespace, _, name = key.split("/", 2)
            pod = core.patch_namespaced_pod(name, namespace, {"metadata": {"labels": {"v": label}}})
            updated.setdefault(node, {})[key] = int(pod.metadata.resource_version)
    return updated
