"""NodeStats on its own: counters, rates over the sample window, and the row it shows."""

from __future__ import annotations

import dataclasses

from modules.cloudhub import stats
from modules.cloudhub.queue import NodeQueueStats

QUEUE = NodeQueueStats(
    queued=3, in_flight=2, oldest_unacked_age=4.0, last_ack_at=990.0, sent=10, resends=1,
    acked=8, nacked=0, unknown_acks=0, replaced=0, stale=0, invalid=0, superseded=0,
    refused_full=0, needs_resync=True,
)  # fmt: skip


def test_rates_are_zero_until_two_samples_then_per_second_over_the_window() -> None:
    node = stats.NodeStats()
    assert node.rates() == (0.0, 0.0)
    node.sample(100.0, sent=0)
    assert node.rates() == (0.0, 0.0)
    node.received = 3
    node.sample(102.0, sent=8)
    assert node.rates() == (4.0, 1.5)


def test_the_rate_window_keeps_the_last_samples_only() -> None:
    node = stats.NodeStats()
    node.sample(0.0, sent=0)
    for second in range(1, stats._SAMPLES):  # 100 messages in the first second, then none
        node.sample(float(second), sent=100)
    assert node.rates()[0] == 100 / (stats._SAMPLES - 1)
    node.sample(float(stats._SAMPLES), sent=100)  # the first sample leaves the window
    assert node.rates()[0] == 0.0


def test_connects_and_session_times_are_kept_across_sessions() -> None:
    node = stats.NodeStats()
    node.connected(10.0)
    node.disconnected(20.0)
    node.connected(30.0)
    assert (node.connects, node.connected_at, node.disconnected_at) == (2, 30.0, 20.0)


def test_the_row_joins_queue_figures_counters_and_rates() -> None:
    node = stats.NodeStats(received=5, rate_limited=1, throttled=2, rejected=3,
                           decode_failed=4, ignored=1)  # fmt: skip
    node.connected(900.0)
    node.sample(996.0, sent=6)
    node.sample(1000.0, sent=10)
    row = node.view("edge-1", 1000.0, QUEUE, connected=True, objects=7)
    assert row == {
        "node": "edge-1", "connected": True, "queued": 3, "in_flight": 2,
        "oldest_unacked_age": 4.0, "sent": 10, "acked": 8, "resends": 1,
        "last_ack_age": 10.0, "needs_resync": True, "objects": 7, "received": 5,
        "rate_limited": 1, "throttled": 2, "rejected": 3, "decode_failed": 4, "ignored": 1,
        "connects": 1, "rate_down": 1.0, "rate_up": 0.0,
    }  # fmt: skip


def test_a_row_without_a_queue_or_anything_in_flight_shows_no_ages() -> None:
    node = stats.NodeStats()
    row = node.view("edge-1", 1000.0, None, connected=False, objects=0)
    assert (row["queued"], row["in_flight"], row["sent"], row["needs_resync"]) == (0, 0, 0, False)
    assert (row["oldest_unacked_age"], row["last_ack_age"]) == (None, None)
    idle = dataclasses.replace(QUEUE, in_flight=0, last_ack_at=None)
    row = node.view("edge-1", 1000.0, idle, connected=True, objects=0)
    assert (row["oldest_unacked_age"], row["last_ack_age"]) == (None, None)
