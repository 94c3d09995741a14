"""The Kubernetes resources the controller watches, and how to list/watch each as raw JSON.

Input: an official-client ApiClient; output: list/watch callables returning the raw
urllib3 response (``_preload_content=False``), which the reflector parses itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kubernetes import client

from modules import contract

Lister = Callable[..., Any]  # list/watch call with the client's keyword arguments


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    """One watched resource: its contract type and its API coordinates."""

    rtype: str  # contract resource type (token 3 of a cloud resource)
    plural: str  # API plural, also the watch's name in `beehive debug watches`
    api_version: str  # filled into objects, which lists return without it
    kind: str
    group: str = ""  # "" for the core API; custom resources are listed cluster-wide
    optional: bool = False  # a CRD that may be absent

    def lister(self, api_client: client.ApiClient, *, label_selector: str = "") -> Lister:
        """A function taking list/watch keyword arguments, returning the raw response."""
        if self.group:
            custom: Any = client.CustomObjectsApi(api_client)
            version = self.api_version.split("/", 1)[1]
            return _bind(custom.list_cluster_custom_object, self.group, version, self.plural)
        core: Any = client.CoreV1Api(api_client)
        method = {
            contract.POD: core.list_pod_for_all_namespaces,
            contract.CONFIGMAP: core.list_config_map_for_all_namespaces,
            contract.SECRET: core.list_secret_for_all_namespaces,
            contract.NODE: core.list_node,
        }[self.rtype]
        if label_selector:
            return _bind(method, label_selector=label_selector)
        return _bind(method)


def _bind(method: Callable[..., Any], *args: Any, **fixed: Any) -> Lister:
    def call(**kwargs: Any) -> Any:
        return method(*args, _preload_content=False, **fixed, **kwargs)

    return call


PODS = Kind(contract.POD, "pods", "v1", "Pod")
CONFIGMAPS = Kind(contract.CONFIGMAP, "configmaps", "v1", "ConfigMap")
SECRETS = Kind(contract.SECRET, "secrets", "v1", "Secret")
NODES = Kind(contract.NODE, "nodes", "v1", "Node")
RULES = Kind(
    contract.RULE, "rules", "rules.kubeedge.io/v1", "Rule", group="rules.kubeedge.io", optional=True
)
RULE_ENDPOINTS = Kind(
    contract.RULEENDPOINT,
    "ruleendpoints",
    "rules.kubeedge.io/v1",
    "RuleEndpoint",
    group="rules.kubeedge.io",
    optional=True,
)
ALL = (NODES, PODS, CONFIGMAPS, SECRETS, RULES, RULE_ENDPOINTS)
BY_TYPE = {k.rtype: k for k in ALL}
