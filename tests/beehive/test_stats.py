"""Live statistics: depth, counts, rates, oldest age, restarts."""

from __future__ import annotations

from collections.abc import Callable

from beehive import Hive
from tests.fakes import Probe, RecordingModule, RecordingSettings, msg

MakeHive = Callable[..., Hive]


def test_module_info_shows_mailbox_depth_and_counts(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive()
    probe.gate.clear()
    hive.add(
        "m", RecordingModule, settings=RecordingSettings(gated=True), services={"probe": probe}
    )
    hive.start()
    first = msg()
    hive.send("m", first)
    assert probe.wait_entered("m", first)
    for _ in range(4):
        hive.send("m", msg())
    info = hive.module("m")
    assert (info.mailbox.depth, info.mailbox.received, info.mailbox.delivered) == (4, 5, 1)
    assert info.mailbox.capacity == 1024 and info.mailbox.oldest_age >= 0
    assert info.style == "push" and info.group == "" and info.impl == "tests.fakes:RecordingModule"
    probe.gate.set()


def test_rates_come_from_samples_over_the_recent_window(make_hive: MakeHive, probe: Probe) -> None:
    hive = make_hive(stats_interval=3600)  # sampled by hand below
    hive.add("m", RecordingModule, settings=RecordingSettings(), services={"probe": probe})
    hive.start()
    hive.sample_stats()
    for _ in range(5):
        hive.send("m", msg())
    assert probe.wait_for(lambda: probe.count("m") == 5)
    hive.sample_stats()
    info = hive.module("m")
    assert info.rate_in > 0 and info.rate_out > 0


def test_rates_are_zero_before_any_sample(make_hive: MakeHive) -> None:
    hive = make_hive(stats_interval=3600)
    hive.add("m", RecordingModule, settings=RecordingSettings())
    info = hive.module("m")
    assert (info.rate_in, info.rate_out, info.state) == (0.0, 0.0, "registered")
