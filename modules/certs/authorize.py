"""Per-node authorization of upstream messages, as pure functions.

Input: the node a connection is authenticated as (its certificate, see
`modules.certs.tls.check_peer`), one upstream `beehive.Message` whose resource
cloudhub has prefixed with ``node/<node>/`` (`modules.contract`), and a `NodeView`
of what that node owns; output: a `Decision`. cloudhub or edgecontroller turn a
refusal into an ``error`` reply and a log line with node and message id.

The rules are those of Kubernetes' Node authorizer and NodeRestriction admission,
which KubeEdge's cloudhub authorization (cloud/pkg/cloudhub/authorization) applies
only when enabled and not in debug mode; here they always apply:

- the resource must name the node itself (``node/<node>/...``), never another;
- node, nodestatus: only the node's own Node object;
- lease: only its own Lease in ``kube-node-lease``;
- pod, podstatus: only pods bound to the node (a new pod must be bound to it);
- configmap, secret: query only, and only those its pods reference;
- responses and errors (acks, replies) pass once the resource names the node;
- anything else (unknown types or operations) is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from beehive import Message, Operation
from modules import contract

NameKey = tuple[str, str]  # (namespace, name)
_WRITE = frozenset({Operation.INSERT, Operation.UPDATE, Operation.PATCH, Operation.QUERY})
_POD_OPS = frozenset({*_WRITE, Operation.DELETE})
_PASS = frozenset({Operation.RESPONSE, Operation.ERROR, Operation.KEEPALIVE})


@dataclasses.dataclass(frozen=True)
class NodeView:
    """What one node owns: its pods and the configmaps and secrets they reference."""

    node: str
    pods: frozenset[NameKey] = frozenset()
    configmaps: frozenset[NameKey] = frozenset()
    secrets: frozenset[NameKey] = frozenset()

    @classmethod
    def from_pods(cls, node: str, pods: Iterable[Mapping[str, Any]]) -> NodeView:
        """The view from pod objects (JSON form); pods bound to other nodes are ignored."""
        owned, configmaps, secrets = set(), set(), set()
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            meta = pod.get("metadata") or {}
            namespace = meta.get("namespace") or "default"
            owned.add((namespace, meta.get("name", "")))
            cms, secs = references(pod.get("spec") or {})
            configmaps |= {(namespace, name) for name in cms}
            secrets |= {(namespace, name) for name in secs}
        return cls(node, frozenset(owned), frozenset(configmaps), frozenset(secrets))


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def references(spec: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Names of the configmaps and secrets a pod spec references (volumes, projected
    sources, env, envFrom, image pull secrets), as the Node authorizer's graph."""
    configmaps: set[str] = set()
    secrets = {s.get("name", "") for s in spec.get("imagePullSecrets") or []}
    for volume in spec.get("volumes") or []:
        configmaps.add((volume.get("configMap") or {}).get("name", ""))
        secrets.add((volume.get("secret") or {}).get("secretName", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            configmaps.add((source.get("configMap") or {}).get("name", ""))
            secrets.add((source.get("secret") or {}).get("name", ""))
    containers = [
        *(spec.get("containers") or []),
        *(spec.get("initContainers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]
    for container in containers:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            configmaps.add((source.get("configMapKeyRef") or {}).get("name", ""))
            secrets.add((source.get("secretKeyRef") or {}).get("name", ""))
        for env_from in container.get("envFrom") or []:
            configmaps.add((env_from.get("configMapRef") or {}).get("name", ""))
            secrets.add((env_from.get("secretRef") or {}).get("name", ""))
    return configmaps - {""}, secrets - {""}


def authorize(node: str, message: Message, view: NodeView) -> Decision:
    """Whether `node` may send `message` (see the module docstring for the rules)."""
    try:
        resource = contract.parse_resource(message.route.resource)
    except ValueError:
        return _deny("the resource is not node/<node>/<namespace>/<type>/<name>")
    if resource.node != node or view.node != node:
        return _deny(f"node {node!r} may not name another node in a resource")
    if "/" in resource.name:
        return _deny("the resource name may not contain '/'")
    operation = message.route.operation
    if operation in _PASS:
        return ALLOW
    rule = _RULES.get(resource.type)
    if rule is None:
        return _deny(f"resource type {resource.type[:64]!r} is not allowed from an edge")
    return rule(node, operation, resource, message.content, view)


def _node_rule(
    node: str, op: str, res: contract.Resource, content: Any, view: NodeView
) -> Decision:
    if op not in _WRITE:
        return _deny(f"operation {op[:32]!r} on {res.type} is not allowed")
    if res.name != node or _content_name(content) not in (None, node):
        return _deny(f"node {node!r} may only report its own node object")
    return ALLOW


def _lease_rule(
    node: str, op: str, res: contract.Resource, content: Any, view: NodeView
) -> Decision:
    if op not in _WRITE:
        return _deny(f"operation {op[:32]!r} on lease is not allowed")
    if res.namespace != contract.LEASE_NAMESPACE or res.name != node:
        return _deny(f"node {node!r} may only renew its own lease in {contract.LEASE_NAMESPACE}")
    return ALLOW


def _pod_rule(node: str, op: str, res: contract.Resource, content: Any, view: NodeView) -> Decision:
    if op not in _POD_OPS:
        return _deny(f"operation {op[:32]!r} on {res.type} is not allowed")
    if not res.name or _content_name(content) not in (None, res.name):
        return _deny(f"{res.type} must name one pod, the one its content is about")
    if op == Operation.INSERT and res.type == contract.POD:
        bound = isinstance(content, dict) and (content.get("spec") or {}).get("nodeName") == node
        return ALLOW if bound else _deny(f"a pod created by node {node!r} must be bound to it")
    if (res.namespace, res.name) not in view.pods:
        return _deny(f"pod {res.namespace}/{res.name} is not bound to node {node!r}")
    return ALLOW


def _referenced_rule(
    node: str, op: str, res: contract.Resource, content: Any, view: NodeView
) -> Decision:
    if op != Operation.QUERY:
        return _deny(f"node {node!r} may only query a {res.type}, not {op[:32]!r} it")
    owned = view.configmaps if res.type == contract.CONFIGMAP else view.secrets
    if (res.namespace, res.name) not in owned:
        return _deny(f"no pod of node {node!r} references {res.type} {res.namespace}/{res.name}")
    return ALLOW


def _content_name(content: Any) -> str | None:
    """metadata.name of an object content, None when the content carries none."""
    if isinstance(content, dict) and isinstance(content.get("metadata"), dict):
        name = content["metadata"].get("name")
        return name if isinstance(name, str) else ""
    return None


_RULES = {
    contract.NODE: _node_rule,
    contract.NODESTATUS: _node_rule,
    contract.LEASE: _lease_rule,
    contract.POD: _pod_rule,
    contract.PODSTATUS: _pod_rule,
    contract.CONFIGMAP: _referenced_rule,
    contract.SECRET: _referenced_rule,
}
