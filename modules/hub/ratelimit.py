"""A token bucket with the time passed in: per-node upstream rate limits.

Input: the current time on every call. Output: whether a message may pass now
(`take`) or how long until it may (`wait_time`). As KubeEdge's edgeHub
messageQPS/messageBurst (golang.org/x/time/rate, edge/pkg/edgehub/edgehub.go):
the bucket holds up to `burst` tokens and refills at `rate` per second.
"""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; starts full."""

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be positive and burst at least 1: {rate}, {burst}")
        self.rate = rate  # tokens added per second
        self.burst = burst  # most tokens held
        self._tokens = float(burst)  # tokens available at _updated
        self._updated = now  # when _tokens was last brought up to date

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available (0 if one is now)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)
