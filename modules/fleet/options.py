"""What a fleet run is asked to do: nodes, transport, reporting, and faults.

Built by `modules.fleet.cli` from the command line (or by a test or benchmark
directly) and read by `modules.fleet.fleet` and `modules.fleet.session`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from modules.hub.handshake import DEFAULT_PROJECT_ID

GENEROUS_MAX_SIZE = 64 * 1024 * 1024  # KubeEdge's peer sets no limit; a Secret nears 1 MiB


@dataclasses.dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected on demand (timed here, or by control commands at any time)."""

    storm_at: float = 0.0  # seconds after all nodes first connected: drop all (0: never)
    drop_fraction: float = 0.0  # fraction of sessions `drop_at` drops
    drop_at: float = 0.0  # seconds after all nodes first connected (0: never)
    ack_delay: float = 0.0  # seconds every ack is held back
    withhold_acks: float = 0.0  # fraction of deliveries whose first copy is never acked
    malformed_nodes: int = 0  # the first K nodes send malformed frames on every connect

    def __post_init__(self) -> None:
        for name in ("drop_fraction", "withhold_acks"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if min(self.storm_at, self.drop_at, self.ack_delay, self.malformed_nodes) < 0:
            raise ValueError("fault times and counts must not be negative")


@dataclasses.dataclass(frozen=True, slots=True)
class FleetOptions:
    """One fleet: which cloud, how many nodes, how they join, store and report."""

    cloud: str  # cloudhub's websocket address, host:port
    nodes: int  # how many edge nodes
    prefix: str = "fleet"  # node names are <prefix>-<index>
    plain: bool = False  # ws:// without TLS (else wss:// with a node certificate)
    token: str = ""  # join token, to enrol nodes that have no certificate in `certs`
    certs: Path = Path("fleet-certs")  # per-node certificate directories, reused across runs
    cert_server: str = ""  # https://host:port of the certificate server ("" = cloud host:10002)
    kubeconfig: str = ""  # create the Node objects through this API (else edges register)
    project_id: str = DEFAULT_PROJECT_ID
    heartbeat: float = 15.0  # seconds between keepalives (edgeHub.heartbeat)
    status_interval: float = 10.0  # seconds between node status reports, jittered per node
    pod_status: bool = True  # report a pod Running once stored, as the hollow edge does
    store: str = "memory"  # "memory" or "sqlite" (one MetaStore file per node)
    store_dir: Path = Path("fleet-store")  # where the sqlite files go
    connect_concurrency: int = 64  # connection handshakes in progress at once
    handshake_threads: int = 2  # threads for TLS handshakes (0: on the loop)
    enroll_concurrency: int = 8  # enrolments in progress at once
    connect_timeout: float = 10.0  # seconds per websocket handshake
    reconnect_max: float = 10.0  # seconds, cap of the backoff after a failed connection
    max_size: int = GENEROUS_MAX_SIZE  # largest frame accepted from the cloud
    seed: int = 0  # for the jitter and the fault choices: runs repeat
    faults: Faults = dataclasses.field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("nodes must be at least 1")
        if self.store not in ("memory", "sqlite"):
            raise ValueError(f"store must be memory or sqlite, not {self.store!r}")
        if min(self.connect_concurrency, self.enroll_concurrency) < 1:
            raise ValueError("concurrency must be at least 1")
        if self.heartbeat <= 0 or self.status_interval <= 0:
            raise ValueError("heartbeat and status_interval must be positive")

    def node_name(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    @property
    def node_names(self) -> list[str]:
        return [self.node_name(i) for i in range(self.nodes)]

    @property
    def cert_server_url(self) -> str:
        if self.cert_server:
            return self.cert_server
        host = self.cloud.rsplit(":", 1)[0]
        return f"https://{host}:10002"
