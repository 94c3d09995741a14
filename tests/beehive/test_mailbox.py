"""The bounded mailbox on its own: policies, ordering, stats, pykka's inbox interface."""

from __future__ import annotations

import threading

import pytest

from beehive import MailboxFullError, Message, ModuleStoppedError, WhenFull
from beehive.mailbox import Mailbox
from tests.fakes import FakeClock, msg


class Control:
    """A control envelope as pykka puts one in (a stop, a proxy call)."""

    def __init__(self, message: object) -> None:
        self.message = message
        self.reply_to = None


def test_messages_come_out_in_the_order_they_went_in() -> None:
    box = Mailbox("m", capacity=10)
    sent = [msg(content=i) for i in range(5)]
    for m in sent:
        box.offer(m)
    assert [box.take(0) for _ in sent] == sent


def test_reject_policy_raises_at_once_and_counts_the_drop() -> None:
    box = Mailbox("m", capacity=1, when_full=WhenFull.REJECT)
    box.offer(msg())
    with pytest.raises(MailboxFullError, match=r"mailbox of 'm' is full \(1 messages\)$"):
        box.offer(msg())
    assert box.stats().dropped == 1 and box.depth == 1


def test_block_policy_waits_for_the_timeout_then_raises() -> None:
    box = Mailbox("m", capacity=1, when_full=WhenFull.BLOCK, timeout=0.05)
    box.offer(msg())
    with pytest.raises(MailboxFullError, match=r"after waiting 0\.05s"):
        box.offer(msg())
    assert box.stats().dropped == 1


def test_block_policy_proceeds_as_soon_as_there_is_room() -> None:
    box = Mailbox("m", capacity=1, timeout=10)
    first, second = msg(), msg()
    box.offer(first)
    done = threading.Event()

    def sender() -> None:
        box.offer(second)
        done.set()

    thread = threading.Thread(target=sender)
    thread.start()
    assert box.take(1) == first
    assert done.wait(5)
    thread.join(5)
    assert box.take(0) == second


def test_drop_oldest_evicts_the_oldest_and_reports_it() -> None:
    dropped: list[tuple[Message, str]] = []
    box = Mailbox(
        "m",
        capacity=2,
        when_full=WhenFull.DROP_OLDEST,
        on_drop=lambda m, why: dropped.append((m, why)),
    )
    a, b, c = msg(content="a"), msg(content="b"), msg(content="c")
    for m in (a, b, c):
        box.offer(m)
    assert [box.take(0), box.take(0)] == [b, c]
    assert dropped == [(a, "evicted: mailbox full (drop-oldest)")]
    assert box.stats().dropped == 1


def test_a_closed_mailbox_refuses_data_and_wakes_blocked_senders() -> None:
    box = Mailbox("m", capacity=1, timeout=30)
    box.offer(msg())
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            box.offer(msg())
        except ModuleStoppedError as exc:
            errors.append(exc)

    thread = threading.Thread(target=sender)
    thread.start()
    box.close()
    thread.join(5)
    # Whether the sender was already waiting or not, it gets the same error at once.
    assert len(errors) == 1 and "module 'm' is not running: mailbox closed" in str(errors[0])
    with pytest.raises(ModuleStoppedError, match="mailbox closed"):
        box.offer(msg())


def test_take_returns_none_on_timeout_and_raises_once_closed_and_empty() -> None:
    box = Mailbox("m", capacity=1)
    assert box.take(0.01) is None
    queued = msg()
    box.offer(queued)
    box.close()
    assert box.take(0) == queued  # what was queued before closing is still handed out
    with pytest.raises(ModuleStoppedError, match="stopping"):
        box.take(1)


def test_control_envelopes_bypass_capacity_and_come_first() -> None:
    box = Mailbox("m", capacity=1, when_full=WhenFull.REJECT)
    data = msg()
    box.offer(data)
    control = Control("stop")
    box.put(control)
    assert box.get() is control
    assert box.get().message == data
    assert box.empty()


def test_stats_show_depth_counts_and_age_of_the_oldest() -> None:
    clock = FakeClock()
    box = Mailbox("m", capacity=5, clock=clock)
    box.offer(msg())
    clock.advance(2.5)
    box.offer(msg())
    box.take(0)
    stats = box.stats()
    assert (stats.depth, stats.capacity, stats.received, stats.delivered) == (1, 5, 2, 1)
    assert stats.oldest_age == 0.0  # the older one left; the remaining one is brand new
    clock.advance(1.0)
    assert box.stats().oldest_age == 1.0


def test_peek_shows_messages_without_consuming_them() -> None:
    clock = FakeClock()
    box = Mailbox("m", capacity=5, clock=clock)
    sent = [msg(content=i) for i in range(3)]
    for m in sent:
        box.offer(m)
    clock.advance(1)
    assert box.peek(2) == [(sent[0], 1.0), (sent[1], 1.0)]
    assert box.depth == 3


def test_offer_some_queues_a_batch_in_order_up_to_capacity() -> None:
    box = Mailbox("m", capacity=3, when_full=WhenFull.REJECT)
    first = msg(content=0)
    box.offer(first)
    batch = [msg(content=i) for i in range(1, 5)]
    assert box.offer_some(batch) == 2  # room for two; the caller handles the rest
    assert [box.take(0) for _ in range(3)] == [first, *batch[:2]]
    assert box.stats().received == 3 and box.stats().dropped == 0


def test_offer_some_under_drop_oldest_takes_all_and_evicts_the_oldest() -> None:
    dropped: list[Message] = []
    box = Mailbox(
        "m", capacity=3, when_full=WhenFull.DROP_OLDEST, on_drop=lambda m, _: dropped.append(m)
    )
    queued = [msg(content=i) for i in range(2)]
    for m in queued:
        box.offer(m)
    batch = [msg(content=i) for i in range(2, 7)]  # five more: overflows even on its own
    assert box.offer_some(batch) == 5
    assert [box.take(0) for _ in range(3)] == batch[2:]
    assert dropped == queued + batch[:2]
    assert box.stats().dropped == 4 and box.depth == 0


def test_offer_some_to_a_closed_mailbox_queues_nothing() -> None:
    box = Mailbox("m", capacity=3)
    box.close()
    with pytest.raises(ModuleStoppedError):
        box.offer_some([msg()])
    assert box.stats().received == 0


def test_next_data_never_blocks_and_yields_to_a_waiting_control_envelope() -> None:
    box = Mailbox("m", capacity=10)
    assert box.next_data() is None  # empty: no wait
    first, second = msg(content=1), msg(content=2)
    box.offer(first)
    box.offer(second)
    assert box.next_data() == first
    control = Control("stop")
    box.put(control)
    assert box.next_data() is None  # the stop goes first
    assert box.get() is control
    assert box.next_data() == second
    assert box.stats().delivered == 2


def test_an_attached_reader_is_woken_once_per_batch_it_has_not_taken() -> None:
    box = Mailbox("m", capacity=10)
    wakes: list[int] = []
    box.attach_reader(lambda: wakes.append(box.depth))
    box.offer(msg(content=1))
    box.offer_some([msg(content=2), msg(content=3)])
    assert wakes == [1]  # the first message woke it; the others wait for its take
    assert [m.content for m in box.take_ready(2)] == [1, 2]
    box.offer(msg(content=4))
    assert wakes == [1]  # one still queued: the reader has not taken all, so no wake-up
    assert [m.content for m in box.take_ready(10)] == [3, 4]
    assert box.take_ready(10) == []
    box.offer(msg(content=5))
    assert wakes == [1, 1]  # emptied: the next message wakes it again
    assert box.stats().delivered == 4


def test_a_reader_attached_to_a_mailbox_with_messages_takes_them_without_a_wake_up() -> None:
    box = Mailbox("m", capacity=10)
    box.offer(msg(content=1))
    wakes: list[int] = []
    box.attach_reader(lambda: wakes.append(1))
    box.offer(msg(content=2))
    assert wakes == []
    assert [m.content for m in box.take_ready(10)] == [1, 2]
    box.offer(msg(content=3))
    assert wakes == [1]


def test_while_a_reader_is_attached_the_actor_gets_only_control_envelopes() -> None:
    box = Mailbox("m", capacity=10)
    box.attach_reader(lambda: None)
    data = msg()
    box.offer(data)
    assert box.empty()  # for pykka's loop: nothing of its own to handle
    stop = Control("stop")
    box.put(stop)
    assert box.get() is stop and box.depth == 1
    box.detach_reader()
    assert not box.empty() and box.get().message is data


def test_take_ready_makes_room_for_a_blocked_sender() -> None:
    box = Mailbox("m", capacity=1, timeout=10)
    box.attach_reader(lambda: None)
    box.offer(msg(content=1))
    done = threading.Event()

    def sender() -> None:
        box.offer(msg(content=2))
        done.set()

    thread = threading.Thread(target=sender)
    thread.start()
    assert [m.content for m in box.take_ready(5)] == [1]
    assert done.wait(5)
    thread.join(5)
    assert [m.content for m in box.take_ready(5)] == [2]
