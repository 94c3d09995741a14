"""edgehub: the edge end of KubeEdge's websocket protocol.

`EdgeHub` (module.py) is the module; `core.EdgeCore` holds the logic without I/O
(also for simulators holding many edges); `transport.ClientConnection` wraps
websocket-client for the upgrade and sends, and reads the cloud's frames through
`frames.FrameReader` (sans-I/O, as strict as RFC 6455 and edgecore).
"""

from modules.edgehub.module import EdgeHub
from modules.edgehub.settings import EdgeHubSettings

__all__ = ["EdgeHub", "EdgeHubSettings"]
