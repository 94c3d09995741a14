"""edgehub's ``settings:`` section (edgeHub.* in KubeEdge's edgecore.yaml)."""

from __future__ import annotations

import dataclasses

from modules import contract
from modules.hub.handshake import DEFAULT_PROJECT_ID
from modules.hub.protocol import DEFAULT_MAX_FRAME_SIZE


def _min(low: float) -> dict[str, float]:
    return {"min": low}


@dataclasses.dataclass(frozen=True, slots=True)
class EdgeHubSettings:
    """Which cloud to connect to, as which node, and how often to report."""

    server: str = "127.0.0.1:10000"  # cloudhub's host:port
    node_name: str = "edge-1"
    project_id: str = DEFAULT_PROJECT_ID
    heartbeat: float = dataclasses.field(default=15.0, metadata=_min(0.01))  # keepalive period
    status_interval: float = dataclasses.field(default=10.0, metadata=_min(0.01))
    register_node: bool = True  # insert the Node on every connect
    handshake_timeout: float = dataclasses.field(default=30.0, metadata=_min(0.01))
    reconnect_initial: float = dataclasses.field(default=1.0, metadata=_min(0.001))
    reconnect_max: float = dataclasses.field(default=30.0, metadata=_min(0.001))
    message_qps: float = dataclasses.field(default=30.0, metadata=_min(0.001))  # upstream
    message_burst: int = dataclasses.field(default=60, metadata=_min(1))
    outbox_size: int = dataclasses.field(default=1000, metadata=_min(1))  # waiting for a token
    max_frame_size: int = dataclasses.field(default=DEFAULT_MAX_FRAME_SIZE, metadata=_min(1024))
    store_module: str = contract.METAMANAGER  # where messages from the cloud go
    eventbus_module: str = "eventbus"  # where the router's eventbus messages go
    servicebus_module: str = "servicebus"  # where the router's servicebus requests go
    max_upgrade_response: int = dataclasses.field(default=1024 * 1024, metadata=_min(1024))
    # Mutual TLS (edgeHub.tls* and the certificate manager); edgecore.yaml sets ``tls: true``.
    tls: bool = False  # plain websocket when false: loopback demos only
    cert_server: str = "127.0.0.1:10002"  # the certificate server, https://HOST:PORT
    token: str = ""  # join token (``beehive token``); prefer `token_file`
    token_file: str = ""  # file holding the join token, read only to enrol
    cert_dir: str = "edge-certs"  # ca.crt, node.crt, node.key (0600; directory 0700)
    rotate_certificates: bool = True  # renew at 70-90 % of the lifetime, then reconnect
    rotation_retry: float = dataclasses.field(default=30.0, metadata=_min(0.01))  # seconds

    @property
    def url(self) -> str:
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{self.server}/{self.project_id}/{self.node_name}/events"
