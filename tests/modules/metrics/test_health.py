"""Health and readiness judged from module states and the modules' own probes."""

from __future__ import annotations

from collections.abc import Callable

from beehive import Hive, Module
from modules.metrics import health
from tests.fakes import eventually


class Idle(Module):
    pass


def running(make_hive: Callable[..., Hive]) -> Hive:
    hive = make_hive()
    hive.add("loop", Idle)
    hive.start()
    assert eventually(lambda: hive.module("loop").state == "running")
    return hive


def test_a_module_probe_is_given_what_is_left_of_the_deadline_and_its_problems_are_named(
    make_hive: Callable[..., Hive],
) -> None:
    hive = running(make_hive)
    given: list[float] = []

    def probe(timeout: float) -> list[str]:
        given.append(timeout)
        return ["the event loop did not answer within 1 s"]

    hive.register_command("loop.health", probe)
    assert health.healthy(hive, timeout=1.5) == ["loop: the event loop did not answer within 1 s"]
    assert 0 < given[0] <= 1.5
    assert health.ready(hive, timeout=1.0) == []  # no ready probe: running is ready


def test_a_probe_that_raises_is_a_problem_not_a_crash(make_hive: Callable[..., Hive]) -> None:
    hive = running(make_hive)

    def probe(timeout: float) -> list[str]:
        raise TimeoutError("no answer")

    hive.register_command("loop.ready", probe)
    assert health.ready(hive, timeout=1.0) == ["loop: ready probe failed: TimeoutError: no answer"]


def test_a_module_not_started_yet_is_healthy_but_not_ready(make_hive: Callable[..., Hive]) -> None:
    hive = make_hive()
    hive.add("later", Idle)
    assert health.healthy(hive, timeout=1.0) == []
    assert health.ready(hive, timeout=1.0) == ["later: registered"]
