"""Jittered exponential backoff, for everything that retries: watches, reconnects.

Each delay is half to all of ``initial * 2**(failures - 1)``, capped at `cap`: doubling
spreads retries out, the cap bounds the wait, and the jitter keeps many clients that
failed together (a restarted cloud's edges, say) from retrying together.
"""

from __future__ import annotations

import random


def jittered(
    failures: int, *, initial: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1 for the first)."""
    step = min(cap, initial * 2.0 ** min(max(failures, 1) - 1, 32))
    return float(step * (rng or random).uniform(0.5, 1.0))
