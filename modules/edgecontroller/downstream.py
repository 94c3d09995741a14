"""Downstream logic: watch events in, (node, operation, object) sends out. No I/O.

Input: the reflectors' events (ADDED / MODIFIED / DELETED with the object), one at a
time on the downstream thread; output: `Send` items that `build_message` turns into
messages for cloudhub (contract item 1), and resync answers (contract item 5).

Level-based: the operation comes from what this node was last sent, not from the
event type, so events collapsed by the keyed queue (an ADDED then MODIFIED becomes
one MODIFIED) still yield ``insert`` for a first delivery, and an object added and
deleted before it was processed yields nothing. Behaviour follows
cloud/pkg/edgecontroller/controller/downstream.go, except where noted.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from beehive import Message, message
from modules import contract
from modules.edgecontroller.location import LocationCache, PodKey, Ref, pod_refs

log = logging.getLogger("modules.edgecontroller.downstream")

Obj = dict[str, Any]
INSERT, UPDATE, DELETE = "insert", "update", "delete"
ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class Send(NamedTuple):
    """One object to deliver to one node."""

    node: str
    operation: str
    rtype: str
    obj: Obj


def build_message(send: Send, *, stamp: int = 0) -> Message:
    """The downstream message of contract item 1 for `send`; its header timestamp is
    `stamp` (epoch ms: when the watch event came, for the end-to-end latency), else now."""
    m = contract.metadata(send.obj)
    namespace = m.get("namespace") or contract.NULL_NAMESPACE
    resource = f"node/{send.node}/{namespace}/{send.rtype}/{m.get('name', '')}"
    return message.assemble(
        (message.new_id(), "", stamp or message.now_ms(), str(m.get("resourceVersion", "")),
         False, ""),
        (contract.EDGECONTROLLER, "", contract.GROUP_RESOURCE, send.operation, resource),
        send.obj,
    )  # fmt: skip


def _ref(rtype: str, obj: Obj) -> Ref:
    m = contract.metadata(obj)
    return (rtype, m.get("namespace", ""), m.get("name", ""))


class Downstream:
    """What each edge node has been sent, and what an event changes about that."""

    def __init__(self, location: LocationCache) -> None:
        self.location = location  # shared with upstream queries
        self.edge_nodes: dict[str, Obj] = {}  # edge node name -> its Node
        self.pods: dict[PodKey, Obj] = {}  # every pod seen, by (namespace, name)
        self.objects: dict[Ref, Obj] = {}  # configmaps and secrets, by ref

    def apply(self, rtype: str, event: str, obj: Obj) -> list[Send]:
        """The sends one watch event causes (KubeEdge's per-manager handlers)."""
        if rtype == contract.POD:
            return self._pod(event, obj)
        if rtype in (contract.CONFIGMAP, contract.SECRET):
            return self._object(rtype, event, obj)
        if rtype == contract.NODE:
            return self._node(event, obj)
        # Rules and ruleendpoints go to the router module (the edgecontroller module
        # hands them over before this), never to nodes.
        return []

    def resync(self, node: str, fresh: Fresh | None = None) -> list[Send]:
        """Contract item 5: an ``update`` for every object `node` should have now.

        `fresh`: the node and its pods as just read from the API (a replica took the
        node over, and our caches may lag the replica it came from): its pods are the
        ones the node should have, each the newer of the read and the cached version.
        """
        known = self.edge_nodes.get(node)
        if known is None or (fresh is not None and fresh.node is None):
            return []  # not an edge node (as far as the caches know), or gone
        own = newer(known, fresh.node) if fresh is not None else known
        sends = [Send(node, UPDATE, contract.NODE, own)]
        sends += self._refs_to(node, self.location.refs_for_node(node), UPDATE)
        if fresh is None:
            pods = [self.pods[key] for key in self.location.pods_on(node)]
        else:
            pods = [newer(self.pods.get(_pod_key(pod)), pod) for pod in fresh.pods]
            read = {_pod_key(pod) for pod in fresh.pods}
            pods += [self.pods[key] for key in self.location.pods_on(node)
                     if key not in read and _after(self.pods[key], fresh.list_rv)]  # fmt: skip
        sends += [Send(node, UPDATE, contract.POD, pod) for pod in pods]
        return sends

    # --- pods ------------------------------------------------------------------------

    def _pod(self, event: str, pod: Obj) -> list[Send]:
        m = contract.metadata(pod)
        key: PodKey = (m.get("namespace", ""), m.get("name", ""))
        old = self.pods.get(key)
        if event == DELETED:
            return self._pod_gone(key) if old is not None else []
        sends: list[Send] = []
        if old is not None and contract.metadata(old).get("uid") != m.get("uid"):
            sends, old = self._pod_gone(key), None  # deleted and recreated under one name
        node = _node_name(pod)
        self.pods[key] = pod
        old_node = _node_name(old) if old is not None else ""
        if old is not None and old_node == node and contract.only_status_changed(old, pod):
            return sends
        change = self.location.update_pod(key, node, pod_refs(pod))
        for gone_node, ref in change.removed:
            sends += self._ref_sends(gone_node, ref, DELETE)
        for new_node, ref in change.added:
            sends += self._ref_sends(new_node, ref, INSERT)
        if node in self.edge_nodes:
            # pod.go re-labels an ADDED pod that is already being deleted MODIFIED.
            first = old_node != node and not m.get("deletionTimestamp")
            sends.append(Send(node, INSERT if first else UPDATE, contract.POD, pod))
        return sends

    def _pod_gone(self, key: PodKey) -> list[Send]:
        old = self.pods.pop(key)
        node = self.location.node_of(key)
        change = self.location.remove_pod(key)
        sends = []
        if node in self.edge_nodes:
            sends.append(Send(node, DELETE, contract.POD, old))
        for gone_node, ref in change.removed:
            sends += self._ref_sends(gone_node, ref, DELETE)
        return sends

    # --- configmaps and secrets ----------------------------------------------------

    def _object(self, rtype: str, event: str, obj: Obj) -> list[Send]:
        ref = _ref(rtype, obj)
        old = self.objects.get(ref)
        nodes = [n for n in self.location.nodes_for(ref) if n in self.edge_nodes]
        if event == DELETED:
            if old is None:
                return []
            del self.objects[ref]
            return [Send(n, DELETE, rtype, old) for n in nodes]
        self.objects[ref] = obj
        sends = []
        uid = contract.metadata(obj).get("uid")
        if old is not None and contract.metadata(old).get("uid") != uid:
            sends = [Send(n, DELETE, rtype, old) for n in nodes]
            old = None
        # KubeEdge sends a secret's ADDED as `update` (downstream.go syncSecret).
        operation = UPDATE if old is not None or rtype == contract.SECRET else INSERT
        return sends + [Send(n, operation, rtype, obj) for n in nodes]

    def _ref_sends(self, node: str, ref: Ref, operation: str) -> list[Send]:
        return self._refs_to(node, [ref], operation) if node in self.edge_nodes else []

    def _refs_to(self, node: str, refs: list[Ref], operation: str) -> list[Send]:
        sends = []
        for ref in refs:
            obj = self.objects.get(ref)
            if obj is not None:
                op = UPDATE if operation == INSERT and ref[0] == contract.SECRET else operation
                sends.append(Send(node, op, ref[0], obj))
        return sends

    # --- nodes -----------------------------------------------------------------------

    def _node(self, event: str, node_obj: Obj) -> list[Send]:
        name = contract.metadata(node_obj).get("name", "")
        old = self.edge_nodes.get(name)
        if event == DELETED:
            if old is None:
                return []
            del self.edge_nodes[name]
            return [Send(name, DELETE, contract.NODE, old)]
        self.edge_nodes[name] = node_obj
        if old is not None:
            # KubeEdge sends every MODIFIED; status-only changes (mostly the edge's own
            # reports coming back) are not echoed to the edge here.
            if contract.only_status_changed(old, node_obj):
                return []
            return [Send(name, UPDATE, contract.NODE, node_obj)]
        # A node that just became an edge node gets what its pods need, then its pods.
        sends = [Send(name, UPDATE, contract.NODE, node_obj)]
        sends += self._refs_to(name, self.location.refs_for_node(name), INSERT)
        for key in self.location.pods_on(name):
            sends.append(Send(name, INSERT, contract.POD, self.pods[key]))
        return sends


class Fresh(NamedTuple):
    """A node and its pods as read from the API (quorum reads) for a takeover resync.

    The resync is answered later than the read, after the watch events queued before
    it: a pod the caches got after the read (newer than `list_rv`) was sent to the
    node meanwhile, and is among what it should have; an older one missing from the
    read is gone."""

    node: Obj | None  # None: the Node is gone
    pods: list[Obj]
    list_rv: int | None = None  # the pod list's resourceVersion (None: unknown)


def _after(obj: Obj, list_rv: int | None) -> bool:
    """Whether `obj` changed after a list at `list_rv` (True when either is unknown)."""
    rv = contract.resource_version(str(contract.metadata(obj).get("resourceVersion", "")))
    return list_rv is None or rv is None or rv > list_rv


def newer(cached: Obj | None, read: Obj | None) -> Obj:
    """The newer of two versions of one object (by numeric resourceVersion, the read
    one when they differ in UID or cannot be compared)."""
    if cached is None:
        assert read is not None
        return read
    if read is None:
        return cached
    have, got = contract.metadata(cached), contract.metadata(read)
    if have.get("uid") != got.get("uid"):
        return read
    old = contract.resource_version(str(have.get("resourceVersion", "")))
    new = contract.resource_version(str(got.get("resourceVersion", "")))
    return cached if old is not None and new is not None and old > new else read


def _pod_key(pod: Obj) -> PodKey:
    m = contract.metadata(pod)
    return (m.get("namespace", ""), m.get("name", ""))


def _node_name(pod: Obj) -> str:
    spec = pod.get("spec")
    name = spec.get("nodeName") if isinstance(spec, dict) else None
    return name if isinstance(name, str) else ""


def uids(sends: list[Send]) -> list[str]:
    """The object UIDs among `sends`, in order, without repeats."""
    seen: dict[str, None] = {}
    for send in sends:
        uid = contract.metadata(send.obj).get("uid")
        if isinstance(uid, str) and uid:
            seen.setdefault(uid, None)
    return list(seen)
