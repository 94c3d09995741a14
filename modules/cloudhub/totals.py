"""cloudhub's running totals over every node, for the metrics scrape.

Input: the per-node queues (`queue.NodeQueue`) and the session table count into one
shared `Totals` as they change, on the loop thread; output: `snapshot`, read on the
loop thread at scrape time. Kept running so that a scrape at 10,000 nodes reads a
few integers instead of walking every node's queue.

Latencies, observed as a node acks a message:

- delivery: from the message's first write to its ack (a resend does not restart it;
  a reconnect does, as the message is written again on the new session);
- end to end: from the message's header timestamp (edgecontroller stamps it with the
  time it received the watch event, or built the message for a list or a resync) to
  the ack, by the wall clock, only for objects (the messages that are versioned).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from modules import histogram


@dataclasses.dataclass(slots=True)
class Totals:
    """Counters and gauges summed over all nodes (see the module docstring)."""

    wall: Callable[[], float] = time.time  # epoch seconds, for the end-to-end latency only
    queued: int = 0  # entries waiting in every node's queue (not in flight)
    in_flight: int = 0  # written, not yet acked
    sent: int = 0  # first writes
    resent: int = 0  # writes after the first of the same message
    acked: int = 0  # acks of messages in flight
    delivery: histogram.Histogram = dataclasses.field(
        default_factory=lambda: histogram.Histogram(histogram.DELIVERY_BUCKETS)
    )  # seconds from first write to ack
    end_to_end: histogram.Histogram = dataclasses.field(
        default_factory=lambda: histogram.Histogram(histogram.DELIVERY_BUCKETS)
    )  # seconds from the header timestamp to ack

    def ack(self, *, written_at: float, now: float, stamp_ms: int | None) -> None:
        """A node acked a message in flight, first written at `written_at` (the queue's
        clock, as `now`); `stamp_ms` is its header timestamp if it is an object."""
        self.acked += 1
        self.in_flight -= 1
        self.delivery.observe(now - written_at)
        if stamp_ms:
            self.end_to_end.observe(max(self.wall() - stamp_ms / 1000.0, 0.0))

    def snapshot(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "in_flight": self.in_flight,
            "sent": self.sent,
            "resent": self.resent,
            "acked": self.acked,
            "delivery_seconds": self.delivery.snapshot(),
            "end_to_end_seconds": self.end_to_end.snapshot(),
        }
