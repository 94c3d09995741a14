"""Fair delivery across nodes: round-robin over connected nodes with something to send.

Input: messages for nodes, connects and disconnects, acks and error replies
(from cloudhub's dispatcher and sessions), and the time, passed in.
Output: `next_delivery`, one message at a time, taken from each ready node in
turn, up to `burst` messages per turn, so one node's backlog or reconnect never
delays another node's messages by more than `burst` messages per ready node
(KubeEdge's single dispatch loop does not, issues 3567 and 6876). A burst of a few
lets the transport write a node's messages in one go and the edge ack them in one.
"""

from __future__ import annotations

import collections
import heapq
import math

from beehive.message import Message
from modules.cloudhub import queue, totals


class FairScheduler:
    """The per-node queues of all nodes and the turn order between them."""

    def __init__(
        self,
        *,
        window: int = 32,
        max_objects: int = 4096,
        retry: queue.RetryPolicy | None = None,
        burst: int = 1,
        sums: totals.Totals | None = None,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be positive: {burst}")
        self.window = window  # per node, see NodeQueue
        self.burst = burst  # most messages a node gets per turn
        self.max_objects = max_objects  # per node, see NodeQueue
        self.retry = retry or queue.RetryPolicy()  # per node, see NodeQueue
        self.totals = sums or totals.Totals()  # over every node's queue, kept running
        self._queues: dict[str, queue.NodeQueue] = {}  # node -> its queue (kept while offline)
        self._connected: set[str] = set()  # nodes with a live session
        self._ring: collections.deque[str] = collections.deque()  # ready nodes, next turn first
        self._in_ring: set[str] = set()  # members of _ring
        self._timers: list[tuple[float, str]] = []  # heap of (resend due, node)
        self._armed: dict[str, float] = {}  # node -> earliest due time it has in _timers
        self._turn: str | None = None  # the node whose turn it is, while it has burst left
        self._turn_left = 0  # messages the node of `_turn` may still take this turn

    def node_queue(self, node_id: str) -> queue.NodeQueue:
        """The queue of a node, created on first use."""
        found = self._queues.get(node_id)
        if found is None:
            found = queue.NodeQueue(
                node_id, window=self.window, max_objects=self.max_objects, retry=self.retry,
                sums=self.totals,
            )  # fmt: skip
            self._queues[node_id] = found
        return found

    def nodes(self) -> list[str]:
        return sorted(self._queues)

    @property
    def node_count(self) -> int:
        """Nodes with a queue (connected now or earlier, not removed)."""
        return len(self._queues)

    def has_node(self, node_id: str) -> bool:
        """Whether the node has a queue (connected now or earlier, not removed)."""
        return node_id in self._queues

    def is_connected(self, node_id: str) -> bool:
        return node_id in self._connected

    def sent(self, node_id: str) -> int:
        """Messages written to a node so far (0 for an unknown node)."""
        found = self._queues.get(node_id)
        return found.sent if found is not None else 0

    def enqueue(
        self,
        node_id: str,
        message: Message,
        *,
        needs_ack: bool | None = None,
        uid: str | None = None,
    ) -> queue.Outcome:
        """Queue a message for a node (connected or not); `needs_ack` and `uid` as
        NodeQueue.enqueue."""
        outcome = self.node_queue(node_id).enqueue(message, needs_ack=needs_ack, uid=uid)
        self._wake(node_id)
        return outcome

    def connect(self, node_id: str) -> None:
        """A session for the node is up: its queue takes part in turns."""
        self.node_queue(node_id)
        self._connected.add(node_id)
        self._wake(node_id)

    def disconnect(self, node_id: str) -> None:
        """The node's session ended: unacked messages wait for the next one."""
        self._connected.discard(node_id)
        if self._turn == node_id:
            self._turn = None
        if node_id in self._in_ring:
            self._ring.remove(node_id)
            self._in_ring.discard(node_id)
        if node_id in self._queues:
            self._queues[node_id].requeue_in_flight()

    def remove(self, node_id: str) -> None:
        """The node was deleted: forget its queue."""
        self.disconnect(node_id)
        removed = self._queues.pop(node_id, None)
        if removed is not None:
            removed.discard()
        self._armed.pop(node_id, None)

    def ack(self, node_id: str, msg_id: str, now: float) -> bool:
        """An ack from a node; False if unknown (counted on the node's queue)."""
        known = node_id in self._queues and self._queues[node_id].ack(msg_id, now)
        self._wake(node_id)
        return known

    def nack(self, node_id: str, msg_id: str, now: float) -> bool:
        """An error reply from a node: that message is resent after the backoff."""
        known = node_id in self._queues and self._queues[node_id].nack(msg_id, now)
        self._arm(node_id)
        return known

    def next_delivery(self, now: float) -> queue.Delivery | None:
        """The next message to write, taking ready nodes in turn; None if none is ready."""
        self._wake_due(now)
        if self._turn is not None and self._turn_left > 0:
            node_id = self._turn  # its turn goes on (it is back in the ring already)
            delivery = self._queues[node_id].next_delivery(now)
            if delivery is not None:
                self._turn_left -= 1
                self._arm(node_id)
                return delivery
        self._turn = None
        for _ in range(len(self._ring)):
            node_id = self._ring.popleft()
            delivery = self._queues[node_id].next_delivery(now)
            if delivery is None:
                self._in_ring.discard(node_id)  # back in line on its next enqueue/ack/timer
                self._arm(node_id)  # its next resend, if any, is in the future now
                continue
            self._ring.append(node_id)
            self._arm(node_id)
            self._turn, self._turn_left = node_id, self.burst - 1
            return delivery
        return None

    def next_deadline(self) -> float | None:
        """When a resend next falls due (call `next_delivery` then), or None."""
        return self._timers[0][0] if self._timers else None

    def _wake(self, node_id: str) -> None:
        if node_id in self._connected and node_id not in self._in_ring:
            self._ring.append(node_id)
            self._in_ring.add(node_id)

    def _arm(self, node_id: str) -> None:
        """Make sure the node's earliest resend time is in the heap."""
        node_queue = self._queues.get(node_id)
        due = node_queue.next_deadline() if node_queue else None
        if due is not None and due < self._armed.get(node_id, math.inf):
            self._armed[node_id] = due
            heapq.heappush(self._timers, (due, node_id))

    def _wake_due(self, now: float) -> None:
        """Put nodes whose resend is due in line; each is re-armed only when it next
        yields nothing (or after its delivery), so an overdue node costs one pop and
        one push per delivery, not one per call for every overdue node."""
        while self._timers and self._timers[0][0] <= now:
            due, node_id = heapq.heappop(self._timers)
            if self._armed.get(node_id) == due:
                del self._armed[node_id]
            self._wake(node_id)
