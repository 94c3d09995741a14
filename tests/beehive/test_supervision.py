"""Supervision: failures are logged, dead-lettered and restarted per policy."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from beehive import Hive, MailboxSpec, Module, ModuleStoppedError, RestartPolicy, RestartSpec
from tests.fakes import Probe, PullRecorder, RecordingModule, RecordingSettings, eventually, msg

MakeHive = Callable[..., Hive]
FAST = RestartSpec(backoff=0.001, max_backoff=0.01)


def start_failing(
    hive: Hive,
    probe: Probe,
    restart: RestartSpec,
    fail_on: str = "",
    *,
    fail_start: int = 0,
    name: str = "m",
    cls: type[Module] = RecordingModule,
    mailbox: MailboxSpec | None = None,
) -> None:
    """Start `hive` with one recording module that fails as told, under `restart`."""
    hive.add(
        name,
        cls,
        settings=RecordingSettings(fail_on=fail_on, fail_start=fail_start),
        services={"probe": probe},
        restart=restart,
        mailbox=mailbox,
    )
    hive.start()


def test_a_failing_handler_is_logged_dead_lettered_and_restarted(
    make_hive: MakeHive, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    hive = make_hive()
    start_failing(hive, probe, FAST, fail_on="boom")
    bad = msg(operation="boom")
    with caplog.at_level(logging.ERROR, logger="beehive.hive"):
        hive.send("m", bad)
        good = msg()
        hive.send("m", good)
        assert probe.wait_for(lambda: probe.messages("m") == [good])
    assert (
        f"module m failed in on_message (msg_id={bad.msg_id}): told to fail on boom" in caplog.text
    )
    [letter] = hive.dead_letters.recent()
    assert letter.msg_id == bad.msg_id and letter.reason.startswith(
        "handler failed: on_message: ValueError"
    )
    info = hive.module("m")
    assert (info.state, info.restarts, info.failures) == ("running", 1, 1)
    assert probe.events.count("start:m") == 2


def test_policy_never_stops_the_module_and_dead_letters_its_queue(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    start_failing(hive, probe, RestartSpec(policy=RestartPolicy.NEVER), fail_on="boom")
    hive.send("m", msg(operation="boom"))
    assert eventually(lambda: hive.module("m").state == "failed")
    with pytest.raises(ModuleStoppedError):
        hive.send("m", msg())
    assert hive.module("m").restarts == 0


def test_one_module_crashing_never_stops_another(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    hive.add(
        "bad",
        RecordingModule,
        settings=RecordingSettings(fail_on="update"),
        services={"probe": probe},
        restart=RestartSpec(policy=RestartPolicy.NEVER),
    )
    hive.add("good", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    hive.send("bad", msg())
    for i in range(10):
        hive.send("good", msg(content=i))
    assert probe.wait_for(lambda: probe.count("good") == 10)
    assert hive.module("good").state == "running"


def test_max_restarts_gives_up_after_that_many(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    start_failing(hive, probe, RestartSpec(backoff=0.001, max_restarts=2), fail_on="boom")
    for _ in range(3):
        hive.send("m", msg(operation="boom"))
    assert eventually(lambda: hive.module("m").state == "failed")
    assert hive.module("m").restarts == 2


def test_a_failing_start_is_retried_with_backoff(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    start_failing(hive, probe, FAST, fail_start=2)
    hive.send("m", msg())
    assert probe.wait_for(lambda: probe.count("m") == 1)
    info = hive.module("m")
    assert (info.restarts, info.failures) == (2, 2)
    assert "start: RuntimeError: start failure #2" in info.last_error


def test_messages_wait_in_the_mailbox_while_the_module_restarts(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    start_failing(hive, probe, FAST, fail_on="boom", mailbox=MailboxSpec(size=100))
    hive.send("m", msg(operation="boom"))
    after = [msg(content=i) for i in range(20)]
    for m in after:
        hive.send("m", m)
    assert probe.wait_for(lambda: probe.count("m") == 20)
    assert probe.messages("m") == after


def test_a_pull_module_whose_loop_raises_is_restarted(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    start_failing(hive, probe, FAST, fail_on="boom", name="p", cls=PullRecorder)
    hive.send("p", msg(operation="boom"))
    hive.send("p", msg(content="after"))
    assert probe.wait_for(lambda: [m.content for m in probe.messages("p")] == ["after"])
    assert hive.module("p").restarts == 1


class Once(Module):
    """Pull-style module whose run() returns at once."""

    def on_start(self) -> None:
        self.context.services["probe"].note("run")

    def run(self) -> None:
        return


def test_a_pull_module_that_returns_is_finished_under_on_failure(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    hive.add("once", Once, services={"probe": probe})
    hive.start()
    assert eventually(lambda: hive.module("once").state == "finished")
    assert probe.events == ["run"]


def test_a_pull_module_that_returns_is_started_again_under_always(
    make_hive: MakeHive, probe: Probe
) -> None:
    hive = make_hive()
    hive.add(
        "once",
        Once,
        services={"probe": probe},
        restart=RestartSpec(policy=RestartPolicy.ALWAYS, backoff=0.001),
    )
    hive.start()
    assert probe.wait_for(lambda: probe.events.count("run") >= 3)
    assert hive.module("once").failures == 0


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        pytest.param(1, 0.5, id="first retry waits the initial backoff"),
        pytest.param(2, 1.0, id="then it doubles"),
        pytest.param(4, 4.0, id="and keeps doubling"),
        pytest.param(10, 30.0, id="up to the cap"),
        pytest.param(10_000, 30.0, id="without overflowing"),
    ],
)
def test_backoff_doubles_to_a_cap(failures: int, delay: float) -> None:
    assert RestartSpec(backoff=0.5, max_backoff=30).delay(failures) == delay


def test_stopping_interrupts_a_restart_backoff(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    start_failing(hive, probe, RestartSpec(backoff=60), fail_on="boom")
    hive.send("m", msg(operation="boom"))
    assert eventually(lambda: hive.module("m").state == "restarting")
    hive.stop(timeout=2)
    assert hive.module("m").state == "stopped"
