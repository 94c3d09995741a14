"""Per node, the objects it was sent and acked, and the ObjectSync ops that follow.

Restored from ObjectSync records at start; `Ensure` when a new object is queued
for a node, `Deleting` when a delete of a known one is (or a resync owes one),
`Acked`/`Forget` as the node acks versions and deletes, `Forget` for every object
of a deleted node. The ops go to the shared `Outputs`.
"""

from __future__ import annotations

from beehive.message import Message, Operation
from modules.cloudhub import objects, queue
from modules.cloudhub.outputs import Outputs

# Operations whose acked messages get an ObjectSync record (not replies); the
# dispatcher checks this inline before calling `queued`.
TRACKED_OPERATIONS = frozenset({Operation.INSERT, Operation.UPDATE, Operation.DELETE})


class ObjectRecords:
    """What each node was sent: node -> uid -> `ObjectRef`."""

    def __init__(self, *, out: Outputs) -> None:
        self._out = out
        # node -> uid -> object; read inline by the dispatcher (the common update of a
        # known object has nothing to record, and costs no call)
        self.by_node: dict[str, dict[str, objects.ObjectRef]] = {}

    def restore(self, record: objects.Restored) -> None:
        """One ObjectSync record read at start."""
        self.by_node.setdefault(record.node_id, {})[record.ref.uid] = record.ref

    def count(self, node_id: str) -> int:
        return len(self.by_node.get(node_id, {}))

    def queued(self, node_id: str, message: Message, *, delete: bool) -> None:
        """A tracked message, not an update of a known object, was queued for the node."""
        ref = objects.ref_of(message)
        if ref is None:
            return
        known = self.by_node.setdefault(node_id, {})
        if delete:
            if ref.uid in known:
                self._out.syncs.append(objects.Deleting(node_id, ref))
            else:
                known[ref.uid] = ref
        elif ref.uid not in known:
            known[ref.uid] = ref
            self._out.syncs.append(objects.Ensure(node_id, ref))

    def acked(self, node_id: str, versions: list[queue.AckedVersion]) -> None:
        """The node acked these versions (and deletes) of objects."""
        known = self.by_node.get(node_id, {})
        syncs = self._out.syncs
        for acked in versions:
            ref = known.get(acked.uid)
            if ref is None:
                continue
            if acked.deleted:
                del known[acked.uid]
                syncs.append(objects.Forget(node_id, ref))
            else:
                syncs.append(objects.Acked(node_id, ref, acked.resource_version))

    def unwanted(self, node_id: str, wanted: set[str]) -> list[objects.ObjectRef]:
        """A resync: the objects the node was sent that are not in `wanted`, each marked
        `Deleting` (the caller queues their deletes)."""
        gone = [ref for uid, ref in self.by_node.get(node_id, {}).items() if uid not in wanted]
        self._out.syncs.extend(objects.Deleting(node_id, ref) for ref in gone)
        return gone

    def reload(self, node_id: str, records: list[objects.Restored]) -> None:
        """The node's records as just read from the API (this replica took the node
        over: what it knew may be stale); no ops, they are what the API holds. What was
        queued here since the read was asked for is kept (its record may not have been
        written in time to be read); a stale extra one at worst costs a delete the edge
        acks for an object it does not have."""
        known = self.by_node.setdefault(node_id, {})
        known.update((r.ref.uid, r.ref) for r in records if r.node_id == node_id)

    def drop(self, node_id: str) -> None:
        """Another replica owns the node now: forget it here, leave its records be."""
        self.by_node.pop(node_id, None)

    def forget(self, node_id: str) -> None:
        """The node was deleted: every record of it goes."""
        for ref in self.by_node.pop(node_id, {}).values():
            self._out.syncs.append(objects.Forget(node_id, ref))
