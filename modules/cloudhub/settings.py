"""cloudhub's ``settings:`` section, with KubeEdge's defaults where it has them."""

from __future__ import annotations

import dataclasses

from beehive import heap
from modules import contract
from modules.cloudhub import core, queue
from modules.hub.protocol import DEFAULT_MAX_FRAME_SIZE


def _min(low: float) -> dict[str, float]:
    return {"min": low}


@dataclasses.dataclass(frozen=True, slots=True)
class CloudHubSettings:
    """Where cloudhub listens and how it delivers (cloudHub.* in cloudcore.yaml)."""

    address: str = "127.0.0.1"  # plain websocket: keep it on loopback
    port: int = dataclasses.field(default=10000, metadata=_min(0))  # 0: any free port
    node_limit: int = dataclasses.field(default=1000, metadata=_min(1))
    keepalive_timeout: float = dataclasses.field(default=30.0, metadata=_min(0.01))
    window: int = dataclasses.field(default=32, metadata=_min(1))  # unacked per node
    max_objects: int = dataclasses.field(default=4096, metadata=_min(1))  # waiting per node
    # Objects waiting for a connected node past which it is reported as falling behind
    # (Event EdgeFallingBehind; 0: never): a quarter of max_objects, so the warning comes
    # well before an overflow forces a resync, and far above what a node that keeps up
    # has waiting (a few changes; a whole resync of an edge's own objects is usually tens).
    behind_threshold: int = dataclasses.field(default=1024, metadata=_min(0))
    resend_initial: float = dataclasses.field(default=5.0, metadata=_min(0.001))
    resend_factor: float = dataclasses.field(default=2.0, metadata=_min(1))
    resend_max: float = dataclasses.field(default=60.0, metadata=_min(0.001))
    message_qps: float = dataclasses.field(default=30.0, metadata=_min(0.001))  # per node, up
    message_burst: int = dataclasses.field(default=60, metadata=_min(1))
    max_frame_size: int = dataclasses.field(default=DEFAULT_MAX_FRAME_SIZE, metadata=_min(1024))
    # Bytes written to a node and waiting for it to read, past which its session ends.
    max_write_buffer: int = dataclasses.field(default=64 * 1024 * 1024, metadata=_min(65536))
    tick_interval: float = dataclasses.field(default=0.5, metadata=_min(0.001))
    upstream_module: str = contract.EDGECONTROLLER  # where edge traffic and notices go
    # Where the edges' ``user``-group messages (router replies and uploads) go, with a
    # copy of connected/disconnected notices; "" or a module not in the hive: nowhere.
    router_module: str = contract.ROUTER
    upstream_queue: int = dataclasses.field(default=10_000, metadata=_min(1))
    object_sync: bool = True  # keep records of what nodes acked (needs the ``kube`` service)
    install_crds: bool = True  # create KubeEdge's CRDs and ours if missing
    sync_interval: float = dataclasses.field(default=1.0, metadata=_min(0))  # between rounds
    sync_shards: int = dataclasses.field(default=32, metadata=_min(1))  # records nodes share
    # Mutual TLS (cloudHub.tls*): the production configs set ``tls: true``.
    tls: bool = False  # plain websocket when false: loopback demos only
    tls_ca_file: str = ""  # PEM files; all three empty: the Secrets in `cert_namespace`
    tls_cert_file: str = ""
    tls_key_file: str = ""
    cert_namespace: str = "kubeedge"  # where certserver keeps casecret and cloudcoresecret
    advertise_addresses: list[str] = dataclasses.field(default_factory=list)  # if cloudhub
    dns_names: list[str] = dataclasses.field(default_factory=list)  # makes the server cert
    handshake_timeout: float = dataclasses.field(default=10.0, metadata=_min(0.01))
    max_pending_handshakes: int = dataclasses.field(default=128, metadata=_min(1))
    # TLS: connections past max_pending_handshakes wait in line (none wait over plain ws).
    max_queued_handshakes: int = dataclasses.field(default=4096, metadata=_min(0))
    handshake_threads: int = dataclasses.field(default=2, metadata=_min(0))  # 0: on the loop
    # With several replicas, a clean stop closes the edge sessions in batches over this
    # many seconds, so the others take the nodes over at a pace they can serve (0: all
    # at once). Keep it below hive.stop_timeout.
    hand_over_seconds: float = dataclasses.field(default=0.0, metadata=_min(0))
    # After a wave of at least this many new connections, once none has opened for 2 s,
    # the C heap's free pages go back to the OS (what the TLS handshakes freed; 0: never).
    release_heap_after: int = dataclasses.field(default=heap.WAVE, metadata=_min(0))

    def limits(self) -> core.HubLimits:
        return core.HubLimits(
            node_limit=self.node_limit,
            window=self.window,
            max_objects=self.max_objects,
            behind_threshold=self.behind_threshold,
            retry=queue.RetryPolicy(self.resend_initial, self.resend_factor, self.resend_max),
            keepalive_timeout=self.keepalive_timeout,
            rate=self.message_qps,
            burst=self.message_burst,
            max_frame_size=self.max_frame_size,
        )
