"""NodeQueue driven directly: enqueue, take deliveries, ack, move the clock by hand."""

from __future__ import annotations

import pytest

from beehive.message import Message
from modules.cloudhub.queue import AckedVersion, NodeQueue, Outcome, RetryPolicy
from tests.modules.cloudhub.helpers import obj


def drain(queue: NodeQueue, now: float = 0.0) -> list[Message]:
    """Every message deliverable now, without acking any."""
    out = []
    while (delivery := queue.next_delivery(now)) is not None:
        out.append(delivery.message)
    return out


def test_a_newer_version_replaces_the_queued_one_in_its_place() -> None:
    queue = NodeQueue("n1")
    assert queue.enqueue(obj("a", "1")) is Outcome.QUEUED
    assert queue.enqueue(obj("b", "1")) is Outcome.QUEUED
    newer = obj("a", "5")
    assert queue.enqueue(newer) is Outcome.REPLACED
    assert [m.content for m in queue.peek()] == [newer.content, obj("b", "1").content]
    assert queue.stats(0).replaced == 1


def test_the_order_of_objects_is_first_queued_first() -> None:
    queue = NodeQueue("n1")
    a1, b1, a2 = obj("a", "1"), obj("b", "1"), obj("a", "2")
    for message in (a1, b1, a2):
        queue.enqueue(message)
    assert drain(queue) == [a2, b1]


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        pytest.param(("5", "update"), ("4", "update"), Outcome.STALE, id="older version dropped"),
        pytest.param(("5", "update"), ("5", "update"), Outcome.STALE, id="equal version dropped"),
        pytest.param(("5", "update"), ("10", "update"), Outcome.REPLACED, id="numeric not text"),
        pytest.param(("5", "update"), ("3", "delete"), Outcome.REPLACED, id="delete beats update"),
        pytest.param(("5", "update"), ("", "delete"), Outcome.REPLACED, id="delete without rv"),
        pytest.param(("5", "delete"), ("9", "update"), Outcome.STALE, id="no update after delete"),
        pytest.param(("5", "delete"), ("5", "delete"), Outcome.STALE, id="duplicate delete"),
    ],
)
def test_versions_of_one_object_are_ordered(
    first: tuple[str, str], second: tuple[str, str], outcome: Outcome
) -> None:
    queue = NodeQueue("n1")
    queue.enqueue(obj("a", first[0], operation=first[1]))
    assert queue.enqueue(obj("a", second[0], operation=second[1])) is outcome
    assert len(queue.peek()) == 1


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(obj("a", "12a"), id="non-numeric rv"),
        pytest.param(obj("a", ""), id="update without rv"),
        pytest.param(obj("a", "x", operation="delete"), id="delete with non-numeric rv"),
    ],
)
def test_updates_without_a_numeric_version_are_dropped_and_counted(message: Message) -> None:
    queue = NodeQueue("n1")
    assert queue.enqueue(message) is Outcome.INVALID
    assert queue.peek() == []
    assert queue.stats(0).invalid == 1


def test_messages_without_uid_are_keyed_by_msg_id_and_never_merged() -> None:
    queue = NodeQueue("n1")
    first = Message.new(source="edgecontroller", operation="update", resource="node/n1/a/b/c")
    second = Message.new(source="edgecontroller", operation="update", resource="node/n1/a/b/c")
    assert queue.enqueue(first) is Outcome.QUEUED
    assert queue.enqueue(second) is Outcome.QUEUED
    assert queue.enqueue(first) is Outcome.STALE  # the same message twice
    assert drain(queue) == [first, second]


def test_a_query_reply_is_not_merged_with_an_update_of_the_same_object() -> None:
    queue = NodeQueue("n1")
    update = obj("c", "5", kind="configmap")
    reply = obj("c", "5", kind="configmap", operation="response")
    queue.enqueue(update)
    assert queue.enqueue(reply) is Outcome.QUEUED
    assert drain(queue) == [update, reply]


def test_delivery_is_pipelined_up_to_the_window() -> None:
    queue = NodeQueue("n1", window=3)
    for i in range(5):
        queue.enqueue(obj(f"u{i}", "1"))
    first = drain(queue)
    assert len(first) == 3
    assert queue.next_delivery(0) is None
    assert queue.ack(first[0].msg_id, 1.0)
    assert len(drain(queue, 1.0)) == 1


def test_one_object_has_at_most_one_message_in_flight() -> None:
    queue = NodeQueue("n1", window=10)
    queue.enqueue(obj("a", "1"))
    [v1] = drain(queue)
    v2 = obj("a", "2")
    assert queue.enqueue(v2) is Outcome.QUEUED
    assert drain(queue) == []  # waits for the ack of v1
    queue.ack(v1.msg_id, 1.0)
    assert drain(queue, 1.0) == [v2]


def test_other_objects_pass_an_object_waiting_behind_its_in_flight_version() -> None:
    queue = NodeQueue("n1", window=10)
    queue.enqueue(obj("a", "1"))
    drain(queue)
    queue.enqueue(obj("a", "2"))
    b = obj("b", "1")
    queue.enqueue(b)
    assert drain(queue) == [b]


def test_an_unacked_message_is_resent_with_the_same_id_and_backoff() -> None:
    queue = NodeQueue("n1", retry=RetryPolicy(initial=5, factor=2, maximum=12))
    message = obj("a", "1")
    queue.enqueue(message)
    assert drain(queue, 0) == [message]
    assert queue.next_deadline() == 5
    assert queue.next_delivery(4.9) is None
    resend = queue.next_delivery(5)
    assert resend is not None
    assert (resend.message, resend.attempt) == (message, 2)
    assert queue.next_deadline() == 15
    assert queue.next_delivery(15) is not None
    assert queue.next_deadline() == 27  # capped at 12 s
    assert queue.stats(27).resends == 2
    assert queue.stats(27).oldest_unacked_age == 27


def test_a_newer_version_supersedes_the_in_flight_one_at_resend_time() -> None:
    queue = NodeQueue("n1")
    v1, v2 = obj("a", "1"), obj("a", "2")
    queue.enqueue(v1)
    drain(queue)
    queue.enqueue(v2)
    delivery = queue.next_delivery(5)
    assert delivery is not None
    assert (delivery.message, delivery.attempt) == (v2, 1)
    assert queue.stats(5).superseded == 1
    assert queue.ack(v1.msg_id, 6) is False  # the abandoned id is no longer tracked


def test_an_error_reply_resends_after_the_backoff() -> None:
    queue = NodeQueue("n1")
    message = obj("a", "1")
    queue.enqueue(message)
    drain(queue)
    assert queue.nack(message.msg_id, 2.0)
    assert queue.next_deadline() == 7.0
    assert queue.nack("nope", 2.0) is False


@pytest.mark.parametrize(
    "msg_id",
    [pytest.param("unknown", id="unknown id"), pytest.param("", id="empty id")],
)
def test_acks_for_unknown_ids_are_counted_and_ignored(msg_id: str) -> None:
    queue = NodeQueue("n1")
    assert queue.ack(msg_id, 0) is False
    assert queue.stats(0).unknown_acks == 1


def test_a_duplicate_ack_is_counted_once_as_acked() -> None:
    queue = NodeQueue("n1")
    message = obj("a", "1")
    queue.enqueue(message)
    drain(queue)
    assert queue.ack(message.msg_id, 1)
    assert not queue.ack(message.msg_id, 2)
    stats = queue.stats(2)
    assert (stats.acked, stats.unknown_acks, stats.last_ack_at) == (1, 1, 1)


def test_acked_versions_are_recorded_and_coalesced() -> None:
    queue = NodeQueue("n1")
    for rv in ("1", "2"):
        message = obj("a", rv)
        queue.enqueue(message)
        drain(queue)
        queue.ack(message.msg_id, 0)
    assert queue.take_acked() == [AckedVersion("a", 2, deleted=False)]
    assert queue.take_acked() == []
    assert queue.acked_version("a") == 2


def test_an_acked_version_is_never_sent_again() -> None:
    queue = NodeQueue("n1")
    message = obj("a", "7")
    queue.enqueue(message)
    drain(queue)
    queue.ack(message.msg_id, 0)
    assert queue.enqueue(obj("a", "7")) is Outcome.STALE
    assert queue.enqueue(obj("a", "6")) is Outcome.STALE


def test_an_acked_delete_ends_the_record_and_blocks_late_updates() -> None:
    queue = NodeQueue("n1")
    delete = obj("a", "9", operation="delete")
    queue.enqueue(delete)
    drain(queue)
    queue.ack(delete.msg_id, 0)
    assert queue.take_acked() == [AckedVersion("a", 9, deleted=True)]
    assert queue.acked_version("a") is None
    assert queue.enqueue(obj("a", "10")) is Outcome.STALE


def test_restored_acked_versions_are_not_sent_again() -> None:
    queue = NodeQueue("n1")
    queue.restore_acked("a", "7")
    queue.restore_acked("a", "3")  # never backwards
    queue.restore_acked("b", "junk")
    assert queue.acked_version("a") == 7
    assert queue.acked_version("b") is None
    assert queue.enqueue(obj("a", "7")) is Outcome.STALE
    assert queue.enqueue(obj("a", "8")) is Outcome.QUEUED
    assert queue.take_acked() == []


def test_at_the_bound_a_new_object_is_refused_and_a_resync_is_owed() -> None:
    queue = NodeQueue("n1", max_objects=2)
    queue.enqueue(obj("a", "1"))
    queue.enqueue(obj("b", "1"))
    assert queue.enqueue(obj("c", "1")) is Outcome.FULL
    assert queue.enqueue(obj("a", "2")) is Outcome.REPLACED  # compaction still works
    stats = queue.stats(0)
    assert (stats.queued, stats.refused_full, stats.needs_resync) == (2, 1, True)
    assert queue.take_resync() is True
    assert queue.take_resync() is False


def test_messages_that_need_no_ack_go_first_once_and_outside_the_window() -> None:
    queue = NodeQueue("n1", window=1)
    queue.enqueue(obj("a", "1"))
    queue.enqueue(obj("b", "1"))
    drain(queue)  # the window is now full
    lease = Message.new(
        source="edgecontroller",
        operation="response",
        resource="node/n1/default/lease/n1",
        content={"metadata": {"uid": "l"}},
    )
    assert queue.enqueue(lease) is Outcome.QUEUED
    delivery = queue.next_delivery(0)
    assert delivery is not None
    assert (delivery.message, delivery.needs_ack) == (lease, False)
    assert queue.next_delivery(0) is None
    assert queue.stats(0).in_flight == 1
    assert queue.enqueue(lease) is Outcome.QUEUED  # not tracked once sent


def test_after_a_disconnect_unacked_messages_go_first() -> None:
    queue = NodeQueue("n1", window=2)
    a, b, c = obj("a", "1"), obj("b", "1"), obj("c", "1")
    for message in (a, b, c):
        queue.enqueue(message)
    drain(queue)
    queue.requeue_in_flight()
    assert queue.next_deadline() is None
    assert drain(queue, 1) == [a, b]


def test_after_a_disconnect_a_newer_waiting_version_wins() -> None:
    queue = NodeQueue("n1")
    queue.enqueue(obj("a", "1"))
    drain(queue)
    newer = obj("a", "2")
    queue.enqueue(newer)
    queue.requeue_in_flight()
    assert drain(queue) == [newer]


def test_tombstones_are_bounded() -> None:
    queue = NodeQueue("n1", max_tombstones=1)
    for uid in ("a", "b"):
        delete = obj(uid, "5", operation="delete")
        queue.enqueue(delete)
        drain(queue)
        queue.ack(delete.msg_id, 0)
    assert queue.enqueue(obj("a", "6")) is Outcome.QUEUED  # forgotten
    assert queue.enqueue(obj("b", "6")) is Outcome.STALE


@pytest.mark.parametrize(
    ("window", "max_objects"),
    [pytest.param(0, 10, id="zero window"), pytest.param(10, 0, id="zero bound")],
)
def test_window_and_bound_must_be_positive(window: int, max_objects: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        NodeQueue("n1", window=window, max_objects=max_objects)
