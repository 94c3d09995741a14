"""cloudhub: the cloud end of KubeEdge's websocket protocol, with reliable delivery.

`CloudHub` (module.py) is the module; `core.CloudHubCore` holds all logic without
I/O: dispatch there, the session table in `sessions`, what each node was sent and
acked in `records`; `transport.ServerTransport` is the asyncio websockets server;
`objectsync` keeps the ObjectSync records; `queue`, `scheduler` and `classify` are
the per-node delivery queues.
"""

from modules.cloudhub.module import CloudHub
from modules.cloudhub.settings import CloudHubSettings

__all__ = ["CloudHub", "CloudHubSettings"]
