"""FairScheduler: turns across nodes, connects and disconnects, resend timers."""

from __future__ import annotations

import heapq

import pytest

from modules.cloudhub import scheduler as scheduler_module
from modules.cloudhub.queue import Delivery, Outcome
from modules.cloudhub.scheduler import FairScheduler
from tests.modules.cloudhub.helpers import obj


def take(scheduler: FairScheduler, now: float = 0.0) -> list[Delivery]:
    out = []
    while (delivery := scheduler.next_delivery(now)) is not None:
        out.append(delivery)
    return out


def test_one_nodes_backlog_does_not_delay_another_node() -> None:
    scheduler = FairScheduler(window=1000)
    for node in ("busy", "quiet"):
        scheduler.connect(node)
    for i in range(500):
        scheduler.enqueue("busy", obj(f"u{i}", "1", node="busy"))
    scheduler.enqueue("quiet", obj("q", "1", node="quiet"))
    first_two = [scheduler.next_delivery(0) for _ in range(2)]
    assert {d.node_id for d in first_two if d} == {"busy", "quiet"}


def test_ready_nodes_take_turns_one_message_each() -> None:
    scheduler = FairScheduler()
    for node in ("a", "b", "c"):
        scheduler.connect(node)
        for i in range(2):
            scheduler.enqueue(node, obj(f"{node}{i}", "1", node=node))
    assert [d.node_id for d in take(scheduler)] == ["a", "b", "c"] * 2


def test_a_reconnecting_node_with_a_backlog_waits_its_turn() -> None:
    scheduler = FairScheduler()
    scheduler.connect("steady")
    for i in range(100):
        scheduler.enqueue("back", obj(f"u{i}", "1", node="back"))
    scheduler.connect("back")
    scheduler.enqueue("steady", obj("s", "1", node="steady"))
    assert {d.node_id for d in take(scheduler)[:2]} == {"back", "steady"}


def test_nothing_is_delivered_to_a_disconnected_node() -> None:
    scheduler = FairScheduler()
    assert scheduler.enqueue("n1", obj()) is Outcome.QUEUED
    assert scheduler.next_delivery(0) is None
    assert not scheduler.is_connected("n1")
    scheduler.connect("n1")
    assert [d.node_id for d in take(scheduler)] == ["n1"]


def test_unacked_messages_are_sent_again_after_a_reconnect() -> None:
    scheduler = FairScheduler()
    scheduler.connect("n1")
    message = obj()
    scheduler.enqueue("n1", message)
    take(scheduler)
    scheduler.disconnect("n1")
    assert scheduler.next_delivery(100) is None
    scheduler.connect("n1")
    assert [d.message for d in take(scheduler, 100)] == [message]


def test_a_full_window_parks_the_node_until_an_ack() -> None:
    scheduler = FairScheduler(window=1)
    scheduler.connect("n1")
    scheduler.enqueue("n1", obj("a", "1"))
    scheduler.enqueue("n1", obj("b", "1"))
    [first] = take(scheduler)
    assert scheduler.ack("n1", first.message.msg_id, 1.0)
    assert [d.key for d in take(scheduler, 1.0)] == ["b"]


def test_resends_wake_the_node_when_due() -> None:
    scheduler = FairScheduler()
    scheduler.connect("n1")
    scheduler.enqueue("n1", obj())
    [first] = take(scheduler)
    assert scheduler.next_deadline() == 5.0
    assert take(scheduler, 4.0) == []
    [again] = take(scheduler, 5.0)
    assert (again.message, again.attempt) == (first.message, 2)
    assert scheduler.next_deadline() == 15.0


def test_an_ack_before_the_deadline_leaves_only_a_harmless_wakeup() -> None:
    scheduler = FairScheduler()
    scheduler.connect("n1")
    scheduler.enqueue("n1", obj("a", "1"))
    [first] = take(scheduler)
    scheduler.ack("n1", first.message.msg_id, 1.0)
    scheduler.enqueue("n1", obj("b", "1"))
    [second] = take(scheduler, 2.0)
    assert take(scheduler, 5.0) == []
    assert scheduler.next_deadline() == 7.0
    assert [d.message for d in take(scheduler, 7.0)] == [second.message]


def test_an_error_reply_brings_the_resend_forward_or_back() -> None:
    scheduler = FairScheduler()
    scheduler.connect("n1")
    scheduler.enqueue("n1", obj())
    [first] = take(scheduler)
    assert scheduler.nack("n1", first.message.msg_id, 3.0)
    assert [d.attempt for d in take(scheduler, 8.0)] == [2]
    assert not scheduler.nack("n1", "unknown", 8.0)
    assert not scheduler.ack("ghost", "unknown", 8.0)


def test_a_removed_node_is_forgotten() -> None:
    scheduler = FairScheduler()
    scheduler.connect("n1")
    scheduler.enqueue("n1", obj())
    scheduler.remove("n1")
    assert scheduler.nodes() == []
    assert scheduler.next_delivery(0) is None


class _CountingHeap:
    """heapq with a count of pushes and pops, to measure work without timing."""

    def __init__(self) -> None:
        self.operations = 0

    def heappush(self, heap: list[tuple[float, str]], item: tuple[float, str]) -> None:
        self.operations += 1
        heapq.heappush(heap, item)

    def heappop(self, heap: list[tuple[float, str]]) -> tuple[float, str]:
        self.operations += 1
        return heapq.heappop(heap)


def test_work_per_delivery_stays_bounded_when_many_nodes_are_overdue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nodes, window = 200, 4
    scheduler = FairScheduler(window=window)
    for n in range(nodes):
        scheduler.connect(f"n{n}")
        for i in range(window):
            scheduler.enqueue(f"n{n}", obj(f"u{i}", "1", node=f"n{n}"))
    assert len(take(scheduler)) == nodes * window
    counting = _CountingHeap()
    monkeypatch.setattr(scheduler_module, "heapq", counting)
    resent = take(scheduler, 6.0)  # no acks: every message is overdue
    assert len(resent) == nodes * window
    assert all(d.attempt == 2 for d in resent)
    assert counting.operations <= 3 * len(resent) + nodes


def test_with_a_burst_a_node_takes_up_to_that_many_messages_per_turn() -> None:
    scheduler = FairScheduler(burst=3)
    for node in ("a", "b"):
        scheduler.connect(node)
    for i in range(5):
        scheduler.enqueue("a", obj(f"a{i}", "1", node="a"))
    scheduler.enqueue("b", obj("b0", "1", node="b"))
    assert [d.node_id for d in take(scheduler)] == ["a", "a", "a", "b", "a", "a"]


def test_a_node_that_disconnects_mid_turn_loses_the_rest_of_its_turn() -> None:
    scheduler = FairScheduler(burst=4)
    for node in ("a", "b"):
        scheduler.connect(node)
        for i in range(3):
            scheduler.enqueue(node, obj(f"{node}{i}", "1", node=node))
    first = scheduler.next_delivery(0)
    assert first is not None and first.node_id == "a"
    scheduler.disconnect("a")
    assert [d.node_id for d in take(scheduler)] == ["b", "b", "b"]
