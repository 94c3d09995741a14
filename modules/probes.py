"""What a module offers the metrics module: a snapshot of its counters, and its health
and readiness, as hive admin commands named ``<module>.metrics``, ``<module>.health``
and ``<module>.ready``.

The one home of that convention: modules call `offer` in `on_start`; the metrics
module (modules/metrics) finds the commands by these names and never imports a
module's internals. `beehive debug call <module>.health` shows the same answers.

- ``metrics(nodes=[...])`` returns JSON-ready data with a ``kind`` key naming its
  shape (``cloudhub``, ``edgecontroller``, ``certserver``, ``edgehub``), read by
  `modules.metrics.collector`; `nodes` are the node names the config lists for
  per-node series (only cloudhub uses them).
- ``health(timeout=...)`` and ``ready(timeout=...)`` return the problems found, an
  empty list when all is well, within `timeout` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from beehive import Hive

METRICS, HEALTH, READY = "metrics", "health", "ready"

Snapshot = Callable[..., dict[str, Any]]  # metrics(nodes=[...]) -> JSON-ready data
Probe = Callable[..., list[str]]  # health/ready(timeout=...) -> problems ([] = all well)


def command(module: str, what: str) -> str:
    """The admin command name of `what` (METRICS, HEALTH, READY) for `module`."""
    return f"{module}.{what}"


def offer(
    hive: Hive,
    module: str,
    *,
    metrics: Snapshot | None = None,
    health: Probe | None = None,
    ready: Probe | None = None,
) -> None:
    """Register a module's snapshot and probes as admin commands of `hive`."""
    for what, func in ((METRICS, metrics), (HEALTH, health), (READY, ready)):
        if func is not None:
            hive.register_command(command(module, what), func)
