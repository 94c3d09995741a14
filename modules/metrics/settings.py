"""The ``metrics`` module's ``settings:`` section."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Where /metrics, /healthz and /readyz are served, and which nodes get own series."""

    address: str = "127.0.0.1"  # 0.0.0.0 (or the pod IP) for a scraper on another machine
    port: int = dataclasses.field(default=10012, metadata={"min": 0, "max": 65535})  # 0: any
    # Nodes that get per-node cloudhub series (label `node`); no others, so the series
    # count stays bounded however many nodes connect.
    per_node: list[str] = dataclasses.field(default_factory=list)
    # Seconds /healthz and /readyz wait for the modules' probes, all together.
    probe_timeout: float = dataclasses.field(default=1.0, metadata={"min": 0.01, "max": 30})
