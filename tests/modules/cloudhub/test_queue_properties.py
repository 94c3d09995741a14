"""Properties of NodeQueue under any interleaving of updates, deletes, acks and drops."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from modules.cloudhub.queue import NodeQueue, Version
from tests.modules.cloudhub.helpers import obj

UIDS = ("a", "b", "c")

enqueue_op = st.tuples(st.just("enqueue"), st.sampled_from(UIDS), st.integers(1, 20), st.booleans())
deliver_op = st.tuples(st.just("deliver"), st.booleans())  # True: the edge acks what it got
ack_op = st.tuples(st.just("ack"), st.integers(0, 10))  # ack the n-th in-flight id, or unknown
misc_op = st.sampled_from([("tick",), ("disconnect",), ("bogus_ack",)])
operations = st.lists(st.one_of(enqueue_op, deliver_op, ack_op, misc_op), max_size=60)


@dataclass
class Edge:
    """A perfect edge: keeps the newest version per object, acks on request."""

    state: dict[str, Version] = field(default_factory=dict)
    unacked: list[str] = field(default_factory=list)

    def store(self, uid: str, version: Version) -> None:
        self.state[uid] = max(version, self.state.get(uid, (False, -1)))


def version_of(rv: int, delete: bool) -> Version:
    return (delete, rv)


def run(ops: list[tuple[object, ...]], queue: NodeQueue, edge: Edge) -> dict[str, Version]:
    """Apply ops; return the newest version enqueued per uid; check invariants throughout."""
    newest: dict[str, Version] = {}
    now = 0.0
    acked_seen: dict[str, int] = {}
    for op in ops:
        now += 100.0 if op[0] == "tick" else 1.0
        step(op, queue, edge, now, newest)
        check_invariants(queue)
        for record in queue.take_acked():
            if not record.deleted:
                assert record.resource_version >= acked_seen.get(record.uid, -1)
                acked_seen[record.uid] = record.resource_version
    return newest


def step(
    op: tuple[object, ...], queue: NodeQueue, edge: Edge, now: float, newest: dict[str, Version]
) -> None:
    kind = op[0]
    if kind == "enqueue":
        _, uid, rv, delete = op
        assert isinstance(uid, str) and isinstance(rv, int) and isinstance(delete, bool)
        queue.enqueue(obj(uid, str(rv), operation="delete" if delete else "update"))
        newest[uid] = max(version_of(rv, delete), newest.get(uid, (False, -1)))
    elif kind == "deliver":
        deliver(queue, edge, now, ack=bool(op[1]))
    elif kind == "ack" and edge.unacked:
        index = int(str(op[1])) % len(edge.unacked)
        queue.ack(edge.unacked.pop(index), now)
    elif kind == "tick":
        queue.next_delivery(now)  # may resend; the edge misses it
    elif kind == "disconnect":
        queue.requeue_in_flight()
        edge.unacked.clear()
    elif kind == "bogus_ack":
        assert not queue.ack("not-a-message", now)


def deliver(queue: NodeQueue, edge: Edge, now: float, *, ack: bool) -> None:
    delivery = queue.next_delivery(now)
    if delivery is None:
        return
    message = delivery.message
    edge.store(
        delivery.key, (message.route.operation == "delete", int(message.header.resource_version))
    )
    if ack:
        queue.ack(message.msg_id, now)
    else:
        edge.unacked.append(message.msg_id)


def check_invariants(queue: NodeQueue) -> None:
    waiting = [m.content["metadata"]["uid"] for m in queue.peek()]  # type: ignore[call-overload,index]
    assert len(waiting) == len(set(waiting)), "two waiting entries for one object"
    flying = list(queue._flying)
    assert len(flying) == len(set(flying)) == len(queue._flights) <= queue.window


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(1, 4))
def test_any_interleaving_converges_to_the_newest_state(
    ops: list[tuple[object, ...]], window: int
) -> None:
    queue = NodeQueue("n1", window=window)
    edge = Edge()
    newest = run(ops, queue, edge)
    now = 1_000.0
    for _ in range(200):  # a reconnect, then a healthy edge acks everything
        now += 1_000.0
        deliver(queue, edge, now, ack=True)
    queue.requeue_in_flight()
    for _ in range(50):
        deliver(queue, edge, now, ack=True)
    assert queue.peek() == []
    assert edge.state == newest


@settings(max_examples=200, deadline=None)
@given(operations)
def test_the_acked_version_never_moves_backwards(ops: list[tuple[object, ...]]) -> None:
    queue = NodeQueue("n1", window=3)
    edge = Edge()
    last: dict[str, int] = {}
    for i, op in enumerate(ops):
        step(op, queue, edge, 100.0 * i, {})
        for uid in UIDS:
            acked = queue.acked_version(uid)
            if acked is not None:
                assert acked >= last.get(uid, -1)
                last[uid] = acked


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from((*UIDS, "d", "e")), st.integers(1, 9)), max_size=40))
def test_the_bound_is_on_distinct_objects(updates: list[tuple[str, int]]) -> None:
    queue = NodeQueue("n1", max_objects=3)
    for uid, rv in updates:
        queue.enqueue(obj(uid, str(rv)))
        assert len(queue.peek()) <= 3
