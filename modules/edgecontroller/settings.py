"""EdgeControllerSettings: the ``settings:`` section of the ``edgecontroller`` module.

Defaults follow KubeEdge's edgecontroller (cloud/pkg/edgecontroller/config) where it
has one, scaled to a Python process: fewer workers, the same lease duration.
"""

from __future__ import annotations

import dataclasses

from modules import contract


def _edge_labels() -> dict[str, str]:
    return {contract.EDGE_NODE_LABEL: ""}


@dataclasses.dataclass(frozen=True)
class EdgeControllerSettings:
    """What the controller watches, how hard it may drive the API, and its retry caps."""

    # Label selector for edge nodes (KubeEdge: node-role.kubernetes.io/edge=).
    node_selector: str = contract.EDGE_NODE_LABEL
    # Labels put on a Node the controller creates when an edge registers.
    node_labels: dict[str, str] = dataclasses.field(default_factory=_edge_labels)
    # Threads applying upstream reports (node/pod status, leases, queries).
    upstream_workers: int = dataclasses.field(default=4, metadata={"min": 1})
    # Upstream requests per second to the API, and the burst above it: lease renewals
    # alone need ~70/s at 1,000 nodes, and a reconnect storm brings a burst of reports.
    qps: float = dataclasses.field(default=200.0, metadata={"min": 0.1})
    burst: int = dataclasses.field(default=400, metadata={"min": 1})
    # Most upstream reports queued at once (over all nodes); more are refused.
    upstream_buffer: int = dataclasses.field(default=4096, metadata={"min": 1})
    # Most distinct objects waiting for the downstream thread; the watches wait beyond.
    downstream_buffer: int = dataclasses.field(default=16384, metadata={"min": 1})
    # Attempts for one upstream API call that fails with a retryable error.
    report_attempts: int = dataclasses.field(default=3, metadata={"min": 1})
    # Watch retry backoff: first delay and cap, seconds (jittered).
    backoff_initial: float = dataclasses.field(default=0.5, metadata={"min": 0.01})
    backoff_max: float = dataclasses.field(default=30.0, metadata={"min": 0.01})
    # Seconds a watch request asks the server to keep it open (client-go: 5-10 min).
    watch_timeout: int = dataclasses.field(default=300, metadata={"min": 1})
    # Seconds to connect to the API before a request counts as failed.
    connect_timeout: float = dataclasses.field(default=5.0, metadata={"min": 0.1})
    # Events each edge node may write per second, and the burst above it; more are
    # dropped (counted in `beehive debug watches`), as a kubelet's recorder drops them.
    event_qps: float = dataclasses.field(default=5.0, metadata={"min": 0.01})
    event_burst: int = dataclasses.field(default=25, metadata={"min": 1})
    # Events cloudcore writes about edge nodes (EdgeConnected, EdgeDisconnected, EdgeRefused,
    # EdgeFallingBehind; README "Events"), and how many may wait for their writer thread:
    # more are dropped and counted (a reconnect storm of a whole fleet, say).
    node_events: bool = True
    node_event_queue: int = dataclasses.field(default=1024, metadata={"min": 1})
    # Node Lease duration (kubelet default 40 s) and least seconds between renewals.
    lease_duration: int = dataclasses.field(default=40, metadata={"min": 1})
    lease_renew_interval: float = dataclasses.field(default=10.0, metadata={"min": 0})
    # Seconds an edge's node status report that changes nothing but the heartbeat goes
    # unwritten (the node Lease is the heartbeat, as a kubelet's nodeStatusReportFrequency,
    # 5 min; modules.edgecontroller.nodestatus); 0: every report is written (KubeEdge).
    node_status_report_interval: float = dataclasses.field(default=60.0, metadata={"min": 0})
