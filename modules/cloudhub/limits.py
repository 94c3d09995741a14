"""`HubLimits`: the tunables of cloudhub's core (filled from `CloudHubSettings`)."""

from __future__ import annotations

import dataclasses

from modules.cloudhub import queue
from modules.hub.protocol import DEFAULT_MAX_FRAME_SIZE


@dataclasses.dataclass(frozen=True, slots=True)
class HubLimits:
    """The core's tunables (filled from `CloudHubSettings`)."""

    node_limit: int = 1000  # most connected nodes (cloudHub.nodeLimit)
    window: int = 32  # unacked messages per node
    max_objects: int = 4096  # waiting objects per node before a resync is owed
    behind_threshold: int = 1024  # waiting objects past which a node is noticed as behind
    retry: queue.RetryPolicy = dataclasses.field(default_factory=queue.RetryPolicy)
    keepalive_timeout: float = 30.0  # a session silent this long is ended
    rate: float = 30.0  # upstream messages per second per node
    burst: int = 60  # upstream burst per node
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    pump_budget: int = 512  # deliveries per `pump` call, so the loop stays responsive
    turn: int = 16  # most messages a node gets per turn (one write, one read on the edge)
