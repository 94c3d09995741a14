"""``beehive fleet``: many hollow edge nodes in one asyncio process, for load tests.

Each node drives the edge's own protocol code (`modules.edgehub.core.EdgeCore` over
`modules.hub.protocol.HubProtocol`) on an asyncio `websockets` connection, so the
fleet speaks exactly what a real edge speaks, to our cloudcore or KubeEdge's.
"""

from __future__ import annotations

from modules.fleet.fleet import Fleet
from modules.fleet.options import Faults, FleetOptions

__all__ = ["Faults", "Fleet", "FleetOptions"]
