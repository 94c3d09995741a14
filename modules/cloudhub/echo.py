"""Status echoes: a node's own Node, changed only in status since the version it acked.

Input: the Node updates cloudhub queues for a node (`queued`), the versions the node
acks (`acked`), and each Node update before it is queued (`is_echo`). Output: whether
that update is an echo, with nothing in it the node lacks.

An edge reports its Node's status itself; every report gives the Node a new
resourceVersion. edgecontroller does not send such status-only changes back (as
KubeEdge's downstream does not), but its resync answer on every reconnect carries
the Node as it is now (contract item 5), which by then is newer than what the node
acked. Without this filter each reconnect of each node costs a delivery, an ack and
an ObjectSync write that change nothing the edge uses. An update is an echo only
when no other version of the Node is queued or in flight, so a change that is
still on its way is never skipped in favour of what was acked before it.
"""

from __future__ import annotations

from beehive.message import JsonValue, Message, Operation
from modules import contract
from modules.cloudhub import classify

Shape = tuple[JsonValue, dict[str, JsonValue]]  # (spec, contract.lasting_metadata)


def _shape(content: JsonValue) -> Shape | None:
    """What of a Node the edge uses besides its status, or None if it has no metadata."""
    if not isinstance(content, dict):
        return None
    metadata = content.get("metadata")
    if not isinstance(metadata, dict):
        return None
    return content.get("spec"), contract.lasting_metadata(content)


def _is_node_update(message: Message) -> bool:
    return (
        message.route.operation == Operation.UPDATE
        and classify.resource_type(message.route.resource) == contract.NODE
    )


class NodeEchoes:
    """Per node: the shape of the Node version it acked, and of the one on its way."""

    def __init__(self) -> None:
        self._queued: dict[str, tuple[str, int, Shape]] = {}  # node -> (uid, rv, shape)
        self._acked: dict[str, tuple[str, Shape]] = {}  # node -> (uid, shape) it acked
        self.skipped = 0  # echoes not sent

    def is_echo(self, node_id: str, message: Message) -> bool:
        """A Node update that differs from the version the node acked only in status."""
        if not _is_node_update(message) or node_id in self._queued:
            return False
        acked = self._acked.get(node_id)
        if acked is None or classify.object_uid(message) != acked[0]:
            return False
        if _shape(message.content) != acked[1]:
            return False
        self.skipped += 1
        return True

    def queued(self, node_id: str, message: Message) -> None:
        """A message for the node was queued: remember it if it is a Node update."""
        if not _is_node_update(message):
            return
        rv = classify.parse_rv(classify.resource_version(message))
        shape = _shape(message.content)
        if rv is None or shape is None:
            self._queued.pop(node_id, None)
            self._acked.pop(node_id, None)  # unknown shape: compare with nothing
            return
        self._queued[node_id] = (classify.object_uid(message), rv, shape)

    def acked(self, node_id: str, uid: str, resource_version: int) -> None:
        """The node acked a version of object `uid`."""
        queued = self._queued.get(node_id)
        if queued is not None and queued[:2] == (uid, resource_version):
            self._acked[node_id] = (uid, queued[2])
            del self._queued[node_id]

    def forget(self, node_id: str) -> None:
        """The node was deleted."""
        self._queued.pop(node_id, None)
        self._acked.pop(node_id, None)
