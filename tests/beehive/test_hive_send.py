"""Hive operations without replies: send, groups, routing, receive, dead letters."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from beehive import (
    BeehiveError,
    DuplicateModuleError,
    GroupSendError,
    Hive,
    MailboxFullError,
    MailboxSpec,
    Message,
    Module,
    ModuleStoppedError,
    UnknownGroupError,
    UnknownModuleError,
    WhenFull,
)
from tests.fakes import Probe, PullRecorder, RecordingModule, RecordingSettings, msg

MakeHive = Callable[..., Hive]


def test_send_delivers_to_the_named_module_in_order(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    hive.add("a", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    sent = [msg(content=i) for i in range(100)]
    for m in sent:
        hive.send("a", m)
    assert probe.wait_for(lambda: probe.count("a") == 100)
    assert probe.messages("a") == sent


def test_send_to_an_unknown_module_raises_and_keeps_a_dead_letter(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.start()
    m = msg()
    with pytest.raises(UnknownModuleError, match="unknown module 'nope'"):
        hive.send("nope", m)
    [letter] = hive.dead_letters.recent()
    assert (letter.module, letter.reason, letter.msg_id) == ("nope", "unknown module", m.msg_id)


def test_registering_a_name_twice_is_refused(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("a", RecordingModule, settings=RecordingSettings())
    with pytest.raises(DuplicateModuleError, match="'a' is already registered"):
        hive.add("a", RecordingModule, settings=RecordingSettings())


def busy(hive: Hive, probe: Probe, first: Message, mailbox: MailboxSpec) -> None:
    """Start `hive` with a gated module "slow" that is busy with `first` (the rest queue)."""
    probe.gate.clear()
    hive.add(
        "slow",
        RecordingModule,
        settings=RecordingSettings(gated=True),
        services={"probe": probe},
        mailbox=mailbox,
    )
    hive.start()
    hive.send("slow", first)
    assert probe.wait_entered("slow", first)


def test_a_full_mailbox_rejects_and_the_message_becomes_a_dead_letter(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    first = msg()
    busy(hive, probe, first, MailboxSpec(size=2, when_full=WhenFull.REJECT))
    hive.send("slow", msg())
    hive.send("slow", msg())
    refused = msg()
    with pytest.raises(MailboxFullError):
        hive.send("slow", refused)
    assert hive.dead_letters.recent()[-1].msg_id == refused.msg_id
    assert hive.module("slow").mailbox.dropped == 1
    probe.gate.set()
    assert probe.wait_for(lambda: probe.count("slow") == 3)


def test_drop_oldest_keeps_the_newest_and_every_drop_is_a_dead_letter(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    first = msg(content=0)
    busy(hive, probe, first, MailboxSpec(size=2, when_full=WhenFull.DROP_OLDEST))
    rest = [msg(content=i) for i in range(1, 6)]
    for m in rest:
        hive.send("slow", m)
    probe.gate.set()
    assert probe.wait_for(lambda: probe.count("slow") == 3)
    assert [m.content for m in probe.messages("slow")] == [0, 4, 5]
    assert [d.msg_id for d in hive.dead_letters.recent()] == [m.msg_id for m in rest[:3]]


def test_group_members_each_get_every_message_in_send_order(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    for name in ("a", "b", "c"):
        hive.add(
            name,
            RecordingModule,
            group="g",
            settings=RecordingSettings(),
            services={"probe": probe},
        )
    hive.start()
    sent = [msg(content=i) for i in range(200)]
    for m in sent:
        hive.send_to_group("g", m)
    assert probe.wait_for(lambda: all(probe.count(n) == 200 for n in "abc"))
    for name in "abc":
        assert probe.messages(name) == sent


def test_send_to_an_unknown_group_raises(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.start()
    with pytest.raises(UnknownGroupError, match="unknown group 'g'"):
        hive.send_to_group("g", msg())
    assert hive.dead_letters.recent()[0].reason == "unknown group"


def test_a_group_member_that_cannot_take_a_message_does_not_stop_the_others(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    probe.gate.clear()
    hive.add(
        "ok", RecordingModule, group="g", settings=RecordingSettings(), services={"probe": probe}
    )
    hive.add(
        "full",
        RecordingModule,
        group="g",
        settings=RecordingSettings(gated=True),
        services={"probe": probe},
        mailbox=MailboxSpec(size=1, when_full=WhenFull.REJECT),
    )
    hive.start()
    first = msg()
    hive.send("full", first)
    assert probe.wait_entered("full", first)
    hive.send("full", msg())
    with pytest.raises(
        GroupSendError,
        match="group 'g': 1 member\\(s\\) not reached: full: mailbox of 'full' is full",
    ):
        hive.send_to_group("g", msg())
    assert probe.wait_for(lambda: probe.count("ok") == 1)
    probe.gate.set()


def test_deliver_routes_by_destination_then_by_group(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    hive.add(
        "a", RecordingModule, group="g", settings=RecordingSettings(), services={"probe": probe}
    )
    hive.add(
        "b", RecordingModule, group="g", settings=RecordingSettings(), services={"probe": probe}
    )
    hive.start()
    hive.deliver(Message.new(destination="b", group="g"))
    hive.deliver(Message.new(group="g"))
    assert probe.wait_for(lambda: probe.count("a") == 1 and probe.count("b") == 2)
    with pytest.raises(UnknownModuleError, match="'resource'"):
        hive.deliver(Message.new(group="resource"))
    with pytest.raises(UnknownModuleError):
        hive.deliver(Message.new(destination="zzz"))


def test_pull_style_modules_receive_in_their_own_loop(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    hive.add("puller", PullRecorder, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    sent = [msg(content=i) for i in range(50)]
    for m in sent:
        hive.send("puller", m)
    assert probe.wait_for(lambda: probe.count("puller") == 50)
    assert probe.messages("puller") == sent
    assert hive.module("puller").style == "pull"


def test_receive_is_refused_for_push_style_and_unknown_modules(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("push", RecordingModule, settings=RecordingSettings())
    with pytest.raises(BeehiveError, match="receive\\(\\) is for pull-style modules"):
        hive.receive("push", timeout=0)
    with pytest.raises(UnknownModuleError):
        hive.receive("nope", timeout=0)


def test_messages_sent_before_start_are_delivered_after_start(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    hive.add("a", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    early = msg()
    hive.send("a", early)
    hive.start()
    assert probe.wait_for(lambda: probe.messages("a") == [early])


def test_stop_drains_mailboxes_and_then_refuses_new_messages(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    hive.add("a", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    for i in range(500):
        hive.send("a", msg(content=i))
    report = hive.stop(timeout=5)
    assert report.count == 0 and probe.count("a") == 500
    assert probe.events[-1] == "stop:a"
    with pytest.raises(ModuleStoppedError):
        hive.send("a", msg())


def test_stop_reports_what_it_could_not_deliver(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    probe.gate.clear()
    hive.add(
        "stuck", RecordingModule, settings=RecordingSettings(gated=True), services={"probe": probe}
    )
    hive.start()
    first, second = msg(), msg()
    hive.send("stuck", first)
    assert probe.wait_entered("stuck", first)
    hive.send("stuck", second)
    report = hive.stop(timeout=0.2)
    probe.gate.set()
    assert report.undelivered == {"stuck": [second]}
    assert hive.dead_letters.recent()[-1].reason == "undelivered at stop"


def test_modules_stop_in_reverse_order_of_registration(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    for name in ("first", "second", "third"):
        hive.add(name, RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    assert probe.wait_for(lambda: len(probe.events) == 3)
    hive.stop()
    assert [e for e in probe.events if e.startswith("stop:")] == [
        "stop:third",
        "stop:second",
        "stop:first",
    ]


def test_two_hives_are_independent(make_hive: MakeHive, probe: Probe) -> None:
    one, two = make_hive(), make_hive()
    one.add("a", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    two.add("a", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    one.start()
    two.start()
    two.stop()
    one.send("a", msg())
    assert probe.wait_for(lambda: probe.count("a") == 1)


def test_send_many_delivers_a_batch_in_order(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    hive.add("a", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    sent = [msg(content=i) for i in range(100)]
    hive.send_many("a", sent[:60])
    hive.send_many("a", sent[60:])
    assert probe.wait_for(lambda: probe.count("a") == 100)
    assert probe.messages("a") == sent


def test_send_many_past_capacity_fails_at_the_first_refused_and_keeps_the_rest_as_dead_letters(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    first = msg()
    busy(hive, probe, first, MailboxSpec(size=2, when_full=WhenFull.REJECT))
    batch = [msg(content=i) for i in range(5)]
    with pytest.raises(MailboxFullError):
        hive.send_many("slow", batch)
    assert [d.msg_id for d in hive.dead_letters.recent()] == [m.msg_id for m in batch[2:]]
    probe.gate.set()
    assert probe.wait_for(lambda: probe.count("slow") == 3)
    assert probe.messages("slow") == [first, *batch[:2]]


def test_send_many_to_an_unknown_module_keeps_every_message_as_a_dead_letter(
    make_hive: MakeHive,
) -> None:
    hive = make_hive()
    hive.start()
    batch = [msg(), msg()]
    with pytest.raises(UnknownModuleError):
        hive.send_many("nope", batch)
    assert [d.msg_id for d in hive.dead_letters.recent()] == [m.msg_id for m in batch]


@pytest.mark.parametrize("when_full", [WhenFull.BLOCK, WhenFull.REJECT])
def test_send_all_waits_for_room_and_delivers_everything_in_order(
    make_hive: MakeHive, probe: Probe, when_full: WhenFull
) -> None:
    hive = make_hive()
    first = msg()
    busy(hive, probe, first, MailboxSpec(size=2, when_full=when_full, timeout=0.02))
    batch = [msg(content=i) for i in range(6)]
    done = threading.Event()

    def send() -> None:
        assert hive.send_all("slow", batch, stop=threading.Event())
        done.set()

    sender = threading.Thread(target=send)
    sender.start()
    assert not done.wait(0.1)  # the mailbox stays full: the sender waits, drops nothing
    probe.gate.set()
    sender.join(5)
    assert done.is_set()
    assert probe.wait_for(lambda: probe.count("slow") == 7)
    assert probe.messages("slow") == [first, *batch]
    assert len(hive.dead_letters) == 0


def test_send_all_gives_up_only_when_told_to_stop(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    busy(hive, probe, msg(), MailboxSpec(size=1, when_full=WhenFull.REJECT, timeout=0.02))
    stop = threading.Event()
    stop.set()
    assert hive.send_all("slow", [msg(), msg()], stop=stop) is False
    assert len(hive.dead_letters) == 0
    probe.gate.set()


class _LoopReader(Module):
    """Takes its messages on a thread of its own, as cloudhub's event loop does."""

    def on_start(self) -> None:
        self.wake = threading.Event()
        self.done = threading.Event()
        self.take = self.hive.attach_reader(self.module_name, self.wake.set)
        self.thread = threading.Thread(target=self._loop)
        self.thread.start()

    def _loop(self) -> None:
        probe: Probe = self.context.services["probe"]
        while not self.done.is_set():
            self.wake.wait(0.05)
            self.wake.clear()
            while batch := self.take(7):
                for message in batch:
                    probe.record(self.module_name, message)

    def on_message(self, message: Message) -> None:
        raise AssertionError("a reader is attached: nothing may reach on_message")

    def on_stop(self) -> None:
        self.hive.detach_reader(self.module_name)
        self.done.set()
        self.thread.join(5)


def test_a_module_can_take_its_messages_on_its_own_thread(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    hive.add("loop", _LoopReader, services={"probe": probe}, mailbox=MailboxSpec(size=5))
    early = msg(content="early")
    hive.send("loop", early)
    hive.start()
    sent = [early, *(msg(content=i) for i in range(100))]
    hive.send_all("loop", sent[1:], stop=threading.Event())  # waits for room: size 5
    assert probe.wait_for(lambda: probe.count("loop") == len(sent))
    assert probe.messages("loop") == sent
    assert hive.module("loop").failures == 0
    with pytest.raises(UnknownModuleError):
        hive.attach_reader("nope", lambda: None)
