"""Which objects each node holds or is being sent, and the ObjectSync work that follows.

Input: downstream messages as cloudhub queues them and acks as the edge sends
them (from `modules.cloudhub.records`), and ObjectSync records read at start.
Output: `ObjectRef` facts for building deletes at resync, and `SyncOp`s for the
ObjectSync writer (`modules.cloudhub.objectsync`).

Records follow KubeEdge (cloud/pkg/cloudhub/dispatcher/message_dispatcher.go,
notes 4.9): one per node and object UID, named ``<node>.<uid>``, an ObjectSync in
the object's namespace or a ClusterObjectSync for namespace ``null``.
"""

from __future__ import annotations

import dataclasses

from beehive.message import JsonValue, Message, Operation
from modules import contract
from modules.cloudhub import classify

# Kind of a resource type token, for the deletes a resync builds (types the
# edge stores; anything else falls back to the record's own kind).
_KINDS = {
    contract.POD: "Pod",
    contract.CONFIGMAP: "ConfigMap",
    contract.SECRET: "Secret",
    contract.NODE: "Node",
    "service": "Service",
    "endpoints": "Endpoints",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object as a node knows it: enough to name its record and build a delete."""

    uid: str
    namespace: str  # "null" for cluster-scoped objects
    type: str  # resource type token, e.g. "pod"
    name: str
    api_version: str
    kind: str

    def record_name(self, node_id: str) -> str:
        """``<node>.<uid>``, the (Cluster)ObjectSync name."""
        return f"{node_id}.{self.uid}"

    @property
    def cluster_scoped(self) -> bool:
        return self.namespace == contract.NULL_NAMESPACE

    def resource(self, node_id: str) -> str:
        return contract.build_resource(node_id, self.namespace, self.type, self.name)

    def delete_message(self, node_id: str) -> Message:
        """A delete for this object (content: the minimal object, as synccontroller sends)."""
        metadata: dict[str, JsonValue] = {"name": self.name, "uid": self.uid}
        if not self.cluster_scoped:
            metadata["namespace"] = self.namespace
        content: JsonValue = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": metadata,
        }
        return Message.new(
            source=contract.CLOUDHUB,
            group=contract.GROUP_RESOURCE,
            operation=Operation.DELETE,
            resource=self.resource(node_id),
            content=content,
        )


def ref_of(message: Message) -> ObjectRef | None:
    """The object a downstream message carries, or None if it has no UID or name."""
    uid = classify.object_uid(message)
    try:
        res = contract.parse_resource(message.route.resource)
    except ValueError:
        return None
    content = message.content if isinstance(message.content, dict) else {}
    metadata = content.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    name = name if isinstance(name, str) and name else res.name
    if not uid or not name or not res.type:
        return None
    api_version = content.get("apiVersion")
    kind = content.get("kind")
    return ObjectRef(
        uid=uid,
        namespace=res.namespace or contract.NULL_NAMESPACE,
        type=res.type,
        name=name,
        api_version=api_version if isinstance(api_version, str) else "v1",
        kind=kind if isinstance(kind, str) and kind else _KINDS.get(res.type, res.type),
    )


def type_of_kind(kind: str) -> str:
    """The resource type token of a kind (``ConfigMap`` -> ``configmap``)."""
    return kind.lower()


@dataclasses.dataclass(frozen=True, slots=True)
class Ensure:
    """The object was first queued for the node: its record must exist."""

    node_id: str
    ref: ObjectRef


@dataclasses.dataclass(frozen=True, slots=True)
class Acked:
    """The edge stored `resource_version`: the record's status moves to it."""

    node_id: str
    ref: ObjectRef
    resource_version: int


@dataclasses.dataclass(frozen=True, slots=True)
class Deleting:
    """A delete of the object is queued for the node: status writes are moot from now on
    (a UID is never reused, so the record only waits for `Forget`)."""

    node_id: str
    ref: ObjectRef


@dataclasses.dataclass(frozen=True, slots=True)
class Forget:
    """The edge acked a delete (or the node was deleted): the record goes."""

    node_id: str
    ref: ObjectRef


SyncOp = Ensure | Acked | Deleting | Forget


@dataclasses.dataclass(frozen=True, slots=True)
class Restored:
    """One record read at start: what the node was sent and, if acked, which version."""

    node_id: str
    ref: ObjectRef
    resource_version: int | None  # None: queued but never acked
