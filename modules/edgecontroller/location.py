"""Location cache: which nodes need which configmaps and secrets, and which pods sit where.

Input: pods (from the downstream thread, as the pod watch reports them); output: the
(node, object) pairs that start or stop being needed, for the downstream to send or
delete, and look-ups for upstream queries (from worker threads, hence the lock).

Mirrors cloud/pkg/edgecontroller/manager/location.go (references from volumes,
projected sources, envFrom, env valueFrom and imagePullSecrets), and unlike it also
forgets: a node stops needing an object when the last pod referencing it leaves, and
init containers count too.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, NamedTuple

from modules import contract

Ref = tuple[str, str, str]  # (contract.CONFIGMAP or contract.SECRET, namespace, name)
PodKey = tuple[str, str]  # (namespace, name)
_DEPARTED = 4096  # pods remembered after they left (a kubelet reports on them a little longer)


class Change(NamedTuple):
    """(node, ref) pairs that became needed and that stopped being needed."""

    added: tuple[tuple[str, Ref], ...] = ()
    removed: tuple[tuple[str, Ref], ...] = ()


def pod_refs(pod: dict[str, Any]) -> frozenset[Ref]:
    """The configmaps and secrets a pod references, by (type, namespace, name).

    Plain loops with the type checks inline: it runs for every pod event.
    """
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return _NO_REFS
    found: list[tuple[str, Any]] = []
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        for volume in volumes:
            if isinstance(volume, dict):
                _source_refs(volume, found)
                projected = volume.get("projected")
                if isinstance(projected, dict):
                    for source in dicts(projected.get("sources")):
                        _source_refs(source, found)
    for key in _CONTAINER_KEYS:
        containers = spec.get(key)
        if isinstance(containers, list):
            for container in containers:
                if isinstance(container, dict) and ("envFrom" in container or "env" in container):
                    _container_refs(container, found)
    pull_secrets = spec.get("imagePullSecrets")
    if pull_secrets:
        for secret in dicts(pull_secrets):
            found.append((contract.SECRET, secret.get("name")))
    if not found:
        return _NO_REFS
    meta = pod.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    namespace = namespace if isinstance(namespace, str) else ""
    return frozenset(
        [(rtype, namespace, name) for rtype, name in found if isinstance(name, str) and name]
    )


_NO_REFS: frozenset[Ref] = frozenset()
_CONTAINER_KEYS = ("containers", "initContainers", "ephemeralContainers")


def _source_refs(source: dict[str, Any], found: list[tuple[str, Any]]) -> None:
    config_map = source.get("configMap")
    if isinstance(config_map, dict):
        found.append((contract.CONFIGMAP, config_map.get("name")))
    secret = source.get("secret")
    if isinstance(secret, dict):
        found.append((contract.SECRET, secret.get("secretName", secret.get("name"))))


def _container_refs(container: dict[str, Any], found: list[tuple[str, Any]]) -> None:
    for env_from in dicts(container.get("envFrom")):
        if isinstance(env_from.get("configMapRef"), dict):
            found.append((contract.CONFIGMAP, env_from["configMapRef"].get("name")))
        if isinstance(env_from.get("secretRef"), dict):
            found.append((contract.SECRET, env_from["secretRef"].get("name")))
    for env in dicts(container.get("env")):
        value_from = env.get("valueFrom")
        if not isinstance(value_from, dict):
            continue
        if isinstance(value_from.get("configMapKeyRef"), dict):
            found.append((contract.CONFIGMAP, value_from["configMapKeyRef"].get("name")))
        if isinstance(value_from.get("secretKeyRef"), dict):
            found.append((contract.SECRET, value_from["secretKeyRef"].get("name")))


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects in a JSON array (anything else in it, or a non-array, gives none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class LocationCache:
    """Pods by node and the references they hold; counts per (node, ref)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # writers: downstream thread; readers: upstream workers
        self._pods: dict[PodKey, tuple[str, frozenset[Ref]]] = {}  # pod -> (node, refs)
        self._on_node: dict[str, set[PodKey]] = {}  # node -> pods bound to it
        self._needs: dict[Ref, dict[str, int]] = {}  # ref -> node -> referencing pods
        self._departed: collections.OrderedDict[PodKey, str] = collections.OrderedDict()

    def update_pod(self, key: PodKey, node: str, refs: frozenset[Ref]) -> Change:
        """Record where a pod runs and what it references; what changed per node."""
        with self._lock:
            removed = self._drop(key)
            added = self._add(key, node, refs) if node else []
        if not removed:
            return Change(tuple(added))
        # A ref that left and came back on the same node is no change.
        both = set(added) & set(removed)
        return Change(
            tuple(p for p in added if p not in both), tuple(p for p in removed if p not in both)
        )

    def remove_pod(self, key: PodKey) -> Change:
        """Forget a pod (remembering the node it left); the (node, ref) pairs no pod needs
        any more."""
        with self._lock:
            entry = self._pods.get(key)
            if entry is not None and entry[0]:
                self._departed[key] = entry[0]
                self._departed.move_to_end(key)
                if len(self._departed) > _DEPARTED:
                    self._departed.popitem(last=False)
            return Change(removed=tuple(self._drop(key)))

    def departed_from(self, key: PodKey) -> str:
        """The node a recently deleted pod was bound to, or "" (its kubelet still reports
        on it for a moment: the Events of stopping it come after the delete)."""
        with self._lock:
            return self._departed.get(key, "")

    def nodes_for(self, ref: Ref) -> list[str]:
        """Nodes where some pod references `ref`."""
        with self._lock:
            return list(self._needs.get(ref, ()))

    def needs(self, node: str, ref: Ref) -> bool:
        with self._lock:
            return node in self._needs.get(ref, {})

    def refs_for_node(self, node: str) -> list[Ref]:
        """Every ref some pod on `node` holds (sorted, for a stable resync order)."""
        with self._lock:
            pods = [self._pods[key][1] for key in self._on_node.get(node, ())]
        return sorted(set().union(*pods)) if pods else []

    def pods_on(self, node: str) -> list[PodKey]:
        with self._lock:
            return sorted(self._on_node.get(node, ()))

    def node_of(self, key: PodKey) -> str:
        with self._lock:
            entry = self._pods.get(key)
        return entry[0] if entry else ""

    def _add(self, key: PodKey, node: str, refs: frozenset[Ref]) -> list[tuple[str, Ref]]:
        self._pods[key] = (node, refs)
        self._on_node.setdefault(node, set()).add(key)
        added = []
        for ref in refs:
            counts = self._needs.setdefault(ref, {})
            counts[node] = counts.get(node, 0) + 1
            if counts[node] == 1:
                added.append((node, ref))
        return added

    def _drop(self, key: PodKey) -> list[tuple[str, Ref]]:
        entry = self._pods.pop(key, None)
        if entry is None:
            return []
        node, refs = entry
        pods = self._on_node[node]
        pods.discard(key)
        if not pods:
            del self._on_node[node]
        removed = []
        for ref in refs:
            counts = self._needs[ref]
            counts[node] -= 1
            if counts[node] == 0:
                del counts[node]
                removed.append((node, ref))
                if not counts:
                    del self._needs[ref]
        return removed
