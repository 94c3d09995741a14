"""Per-node counters and rates for `beehive debug nodes`.

Input: session events counted by `modules.cloudhub.sessions` and queue statistics
sampled on its tick. Output: one JSON-ready row per node.
"""

from __future__ import annotations

import collections
import dataclasses

from beehive.message import JsonValue
from modules.cloudhub import queue

_SAMPLES = 10  # rate window: the last ~10 ticks


@dataclasses.dataclass(slots=True)
class NodeStats:
    """What one node did, across its sessions."""

    received: int = 0  # upstream messages passed to edgecontroller
    rate_limited: int = 0  # upstream messages refused by the rate limit
    throttled: int = 0  # times reading from the node paused until its rate limit allowed
    rejected: int = 0  # messages the protocol refused (bad operation, forged resource)
    decode_failed: int = 0  # frames that were not messages
    ignored: int = 0  # empty messages (edgecore sends one on connect)
    connects: int = 0  # sessions opened
    connected_at: float | None = None  # when the current or last session opened
    disconnected_at: float | None = None  # when the last session ended
    samples: collections.deque[tuple[float, int, int]] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=_SAMPLES)
    )  # (time, messages sent, messages received)

    def connected(self, now: float) -> None:
        self.connects += 1
        self.connected_at = now

    def disconnected(self, now: float) -> None:
        self.disconnected_at = now

    def sample(self, now: float, sent: int) -> None:
        """Record messages sent so far (a plain counter: this runs for every node per tick)."""
        self.samples.append((now, sent, self.received))

    def rates(self) -> tuple[float, float]:
        """Messages per second sent down and received up, over the sample window."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        (t0, sent0, recv0), (t1, sent1, recv1) = self.samples[0], self.samples[-1]
        span = max(t1 - t0, 1e-9)
        return (sent1 - sent0) / span, (recv1 - recv0) / span

    def view(
        self,
        node_id: str,
        now: float,
        queue_stats: queue.NodeQueueStats | None,
        *,
        connected: bool,
        objects: int,
    ) -> dict[str, JsonValue]:
        down, up = self.rates()
        q = queue_stats
        last_ack = q.last_ack_at if q else None
        return {
            "node": node_id,
            "connected": connected,
            "queued": q.queued if q else 0,
            "in_flight": q.in_flight if q else 0,
            "oldest_unacked_age": q.oldest_unacked_age if q and q.in_flight else None,
            "sent": q.sent if q else 0,
            "acked": q.acked if q else 0,
            "resends": q.resends if q else 0,
            "last_ack_age": now - last_ack if last_ack is not None else None,
            "needs_resync": q.needs_resync if q else False,
            "objects": objects,
            "received": self.received,
            "rate_limited": self.rate_limited,
            "throttled": self.throttled,
            "rejected": self.rejected,
            "decode_failed": self.decode_failed,
            "ignored": self.ignored,
            "connects": self.connects,
            "rate_down": round(down, 2),
            "rate_up": round(up, 2),
        }
