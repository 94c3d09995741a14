"""A demo workload: keeps pods and a configmap changing on edge nodes, through the API.

For the local demo, where nobody is at a kubectl: every `interval` seconds it
creates, updates (an annotation) or deletes one pod bound to one of `nodes`, each
pod mounting the configmap `demo-config`, whose data it also bumps now and then.
It writes only through the Kubernetes API (the ``kube`` service), so what reaches
the edges is exactly what edgecontroller and cloudhub make of real API changes.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from beehive import Module

log = logging.getLogger("modules.workload")

CONFIGMAP = "demo-config"


@dataclasses.dataclass(frozen=True)
class WorkloadSettings:
    nodes: list[str] = dataclasses.field(default_factory=lambda: ["edge-1"])
    namespace: str = "default"
    pods_per_node: int = dataclasses.field(default=3, metadata={"min": 1})
    interval: float = dataclasses.field(default=1.0, metadata={"min": 0.01})
    delete_every: int = dataclasses.field(default=7, metadata={"min": 0})  # 0 = never delete


class Workload(Module):
    """Pull-style loop that changes one object per tick (see the module docstring)."""

    settings_type = WorkloadSettings

    def on_start(self) -> None:
        self.api_client = self.context.services["kube"].api_client()
        self.core: Any = client.CoreV1Api(self.api_client)

    def on_stop(self) -> None:
        self.api_client.close()

    def run(self) -> None:
        s: WorkloadSettings = self.settings
        names = [(n, f"demo-{n}-{i}") for n in s.nodes for i in range(s.pods_per_node)]
        for tick in itertools.count(1):
            if self.stopping.wait(s.interval):
                return
            node, pod = names[tick % len(names)]
            try:
                self._step(tick, node, pod)
            except ApiException as exc:
                log.warning("workload: %s on %s: %s %s", pod, node, exc.status, exc.reason)

    def _step(self, tick: int, node: str, pod: str) -> None:
        s: WorkloadSettings = self.settings
        if tick % 5 == 0:
            self._upsert_configmap(tick)
        elif s.delete_every and tick % s.delete_every == 0:
            self.core.delete_namespaced_pod(pod, s.namespace, grace_period_seconds=0)
        elif not self._patch_pod(pod, tick):
            self.core.create_namespaced_pod(s.namespace, _pod(pod, node, tick))

    def _patch_pod(self, pod: str, tick: int) -> bool:
        body = {"metadata": {"annotations": {"demo/tick": str(tick)}}}
        try:
            self.core.patch_namespaced_pod(pod, self.settings.namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _upsert_configmap(self, tick: int) -> None:
        body = {"metadata": {"name": CONFIGMAP}, "data": {"tick": str(tick)}}
        try:
            self.core.patch_namespaced_config_map(CONFIGMAP, self.settings.namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(self.settings.namespace, body)


def _pod(name: str, node: str, tick: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {"demo/tick": str(tick)}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "registry.invalid/demo:1"}],
            "volumes": [{"name": "config", "configMap": {"name": CONFIGMAP}}],
        },
    }
