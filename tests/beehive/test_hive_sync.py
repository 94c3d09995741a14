"""Request/response: send_sync, send_resp, send_to_group_sync."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from beehive import (
    Hive,
    Message,
    Module,
    ModuleStoppedError,
    RestartPolicy,
    RestartSpec,
    SyncTimeoutError,
    UnknownGroupError,
    UnknownModuleError,
)
from tests.fakes import Probe, PullRecorder, RecordingModule, RecordingSettings, eventually, msg

MakeHive = Callable[..., Hive]


def test_send_sync_returns_the_reply_matched_by_parent_id(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("echo", RecordingModule, settings=RecordingSettings())
    hive.start()
    request = msg(operation="query", content={"q": 1})
    reply = hive.send_sync("echo", request, timeout=5)
    assert reply.parent_msg_id == request.msg_id and reply.content == {"q": 1}


def test_the_target_sees_the_request_marked_sync(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    hive.add("echo", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    hive.send_sync("echo", msg(), timeout=5)
    assert probe.messages("echo")[0].header.sync


def test_pull_style_modules_answer_requests_too(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("puller", PullRecorder, settings=RecordingSettings())
    hive.start()
    assert hive.send_sync("puller", msg(content="x"), timeout=5).content == "x"


def test_no_reply_in_time_raises_sync_timeout(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("mute", RecordingModule, settings=RecordingSettings(reply=False))
    hive.start()
    request = msg()
    with pytest.raises(
        SyncTimeoutError,
        match=f"no reply to message {request.msg_id} within 0.1s \\(0 of 1 replies\\)",
    ):
        hive.send_sync("mute", request, timeout=0.1)


def test_a_reply_after_the_caller_gave_up_becomes_a_dead_letter(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("mute", RecordingModule, settings=RecordingSettings(reply=False))
    hive.start()
    request = msg()
    with pytest.raises(SyncTimeoutError):
        hive.send_sync("mute", request, timeout=0.05)
    late = request.reply("late")
    assert hive.send_resp(late) is False
    letter = hive.dead_letters.recent()[-1]
    assert letter.msg_id == late.msg_id and "no waiter" in letter.reason


def test_a_reply_nobody_asked_for_is_a_dead_letter(make_hive: MakeHive) -> None:
    hive = make_hive()
    assert hive.send_resp(Message.new(parent_msg_id="never-sent")) is False
    assert len(hive.dead_letters) == 1


def test_send_sync_to_an_unknown_module_raises(make_hive: MakeHive) -> None:
    hive = make_hive()
    with pytest.raises(UnknownModuleError):
        hive.send_sync("nope", msg(), timeout=1)


def test_a_target_that_stops_fails_its_pending_callers_at_once(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    probe.gate.clear()
    hive.add(
        "stuck", RecordingModule, settings=RecordingSettings(gated=True), services={"probe": probe}
    )
    hive.start()
    first = msg()
    hive.send("stuck", first)
    assert probe.wait_entered("stuck", first)
    outcome: list[BaseException] = []

    def caller() -> None:
        try:
            hive.send_sync("stuck", msg(), timeout=30)
        except ModuleStoppedError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    assert eventually(lambda: hive.module("stuck").mailbox.depth == 1)
    hive.stop(timeout=0.1)
    thread.join(5)
    probe.gate.set()
    assert not thread.is_alive()
    assert [str(e) for e in outcome] == ["module 'stuck' is not running: stopped before replying"]


def test_an_exception_in_the_handler_is_raised_in_the_caller(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add(
        "fails",
        RecordingModule,
        settings=RecordingSettings(fail_on="query"),
        restart=RestartSpec(backoff=0),
    )
    hive.start()
    with pytest.raises(ValueError, match="told to fail on query"):
        hive.send_sync("fails", msg(operation="query"), timeout=5)
    assert hive.send_sync("fails", msg(operation="update"), timeout=5).content is None


def test_a_module_that_gives_up_fails_pending_callers(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add(
        "fails",
        RecordingModule,
        settings=RecordingSettings(fail_on="query"),
        restart=RestartSpec(policy=RestartPolicy.NEVER),
    )
    hive.start()
    with pytest.raises(ValueError):
        hive.send_sync("fails", msg(operation="query"), timeout=5)
    with pytest.raises(ModuleStoppedError):
        hive.send_sync("fails", msg(), timeout=5)


def test_group_sync_collects_one_reply_from_each_member(make_hive: MakeHive) -> None:
    hive = make_hive()
    for name in ("a", "b", "c"):
        hive.add(name, RecordingModule, group="g", settings=RecordingSettings())
    hive.start()
    request = msg(content="hi")
    replies = hive.send_to_group_sync("g", request, timeout=5)
    assert len(replies) == 3
    assert all(r.parent_msg_id == request.msg_id and r.content == "hi" for r in replies)


def test_group_sync_times_out_when_a_member_does_not_reply(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("a", RecordingModule, group="g", settings=RecordingSettings())
    hive.add("mute", RecordingModule, group="g", settings=RecordingSettings(reply=False))
    hive.start()
    with pytest.raises(SyncTimeoutError, match="1 of 2 replies"):
        hive.send_to_group_sync("g", msg(), timeout=0.2)


def test_group_sync_to_an_unknown_group_raises(make_hive: MakeHive) -> None:
    hive = make_hive()
    with pytest.raises(UnknownGroupError):
        hive.send_to_group_sync("g", msg(), timeout=1)


class Relay(Module):
    """Answers a request by asking another module first (sync inside a handler)."""

    def on_message(self, message: Message) -> None:
        inner = self.hive.send_sync("echo", msg(content="inner"), timeout=5)
        self.hive.send_resp(message.reply(f"relayed {inner.content}"))


def test_a_handler_may_itself_wait_on_another_module(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("echo", RecordingModule, settings=RecordingSettings())
    hive.add("relay", Relay)
    hive.start()
    assert hive.send_sync("relay", msg(), timeout=5).content == "relayed inner"


def test_many_concurrent_callers_each_get_their_own_reply(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("echo", RecordingModule, settings=RecordingSettings())
    hive.start()
    mismatches: list[int] = []

    def caller(n: int) -> None:
        for i in range(50):
            if hive.send_sync("echo", msg(content=[n, i]), timeout=5).content != [n, i]:
                mismatches.append(n)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not mismatches and not any(t.is_alive() for t in threads)


def test_is_awaiting_tells_whether_a_caller_still_waits(make_hive: MakeHive) -> None:
    hive = make_hive()
    hive.add("mute", RecordingModule, settings=RecordingSettings(reply=False))
    hive.start()
    request = msg()
    seen: list[bool] = []

    def check() -> None:
        assert eventually(lambda: hive.is_awaiting(request.msg_id))
        seen.append(True)
        hive.send_resp(request.reply("done"))

    thread = threading.Thread(target=check)
    thread.start()
    assert hive.send_sync("mute", request, timeout=5).content == "done"
    thread.join(5)
    assert seen == [True] and not hive.is_awaiting(request.msg_id)
