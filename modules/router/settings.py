"""RouterSettings: the ``settings:`` section of the ``router`` module.

Defaults follow KubeEdge's router (cloud/pkg/router/config): REST on port 9443,
``restTimeout`` 60 s; ours listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import dataclasses

from modules import contract


@dataclasses.dataclass(frozen=True)
class RouterSettings:
    """Where the REST endpoint listens and how long the router waits."""

    address: str = "127.0.0.1"  # 0.0.0.0 to serve other machines
    port: int = dataclasses.field(default=9443, metadata={"min": 0})  # 0: any free port
    # Seconds a REST request waits for the edge's reply before a 504.
    rest_timeout: float = dataclasses.field(default=60.0, metadata={"min": 0.01})
    # Seconds a POST to a REST target may take (edge -> cloud).
    target_timeout: float = dataclasses.field(default=10.0, metadata={"min": 0.01})
    max_body: int = dataclasses.field(default=1024 * 1024, metadata={"min": 0})  # bytes; 413 beyond
    forward_workers: int = dataclasses.field(default=4, metadata={"min": 1})  # POSTs at once
    max_pending: int = dataclasses.field(
        default=10000, metadata={"min": 1}
    )  # REST waits; 503 beyond
    status_interval: float = dataclasses.field(
        default=1.0, metadata={"min": 0.01}
    )  # rule status writes
    hub_module: str = contract.CLOUDHUB  # where messages for nodes go
