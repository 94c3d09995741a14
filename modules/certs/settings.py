"""Settings of the certificate server (the ``certserver`` module's ``settings:`` section).

Defaults follow KubeEdge's cloudHub section (cloud/pkg/cloudhub/config/config.go):
port 10002, edge certificates valid 365 days, token refreshed every 12 hours.
The limits have no KubeEdge counterpart except the 1 MiB CSR body.
"""

from __future__ import annotations

import dataclasses

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class CertSettings:
    """Where the certificate server listens, what it signs, and what it tolerates."""

    address: str = "0.0.0.0"  # listen address of the HTTPS certificate server
    port: int = dataclasses.field(default=10002, metadata={"min": 0})  # 0 = any free port
    namespace: str = "kubeedge"  # where casecret, cloudcoresecret and tokensecret live
    advertise_addresses: list[str] = dataclasses.field(default_factory=list)  # server cert IPs
    dns_names: list[str] = dataclasses.field(default_factory=list)  # server cert DNS SANs
    validity_days: int = dataclasses.field(default=365, metadata={"min": 1})  # edge certs
    token_refresh_hours: float = dataclasses.field(default=12.0, metadata={"min": 0.001})
    max_body: int = dataclasses.field(default=MIB, metadata={"min": 0})  # CSR bytes; 413 above
    max_connections: int = dataclasses.field(default=64, metadata={"min": 1})  # open at once
    handshake_timeout: float = dataclasses.field(default=5.0, metadata={"min": 0.01})  # seconds
    request_timeout: float = dataclasses.field(default=10.0, metadata={"min": 0.01})  # seconds
    # The node's Event CertificateIssued for each certificate signed, and how many may wait
    # for the writer thread (more are dropped and counted).
    node_events: bool = True
    node_event_queue: int = dataclasses.field(default=256, metadata={"min": 1})
