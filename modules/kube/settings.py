"""The `kube:` configuration section: which Kubernetes API to use and how hard to drive it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """Where the Kubernetes API is.

    `embedded` starts an in-process API server (modules.kubeapi); `kubeconfig` uses an
    existing cluster through a kubeconfig file; `incluster` uses the pod's
    ServiceAccount (deploy/cloudcore/).
    """

    mode: Literal["embedded", "kubeconfig", "incluster"] = "embedded"
    # kubeconfig mode: file to read; empty means $KUBECONFIG, then ~/.kube/config.
    # embedded mode: where to write a kubeconfig for the server (for kubectl); empty: a temp file
    kubeconfig: str = ""
    # kubeconfig mode: context to use; empty means the file's current-context
    context: str = ""
    # embedded mode: TCP port on 127.0.0.1; 0 picks a free one
    port: int = field(default=0, metadata={"min": 0})
    # embedded mode: sqlite file that keeps state across restarts; empty keeps it in memory
    data: str = ""
    # client-side request rate limit, as client-go's QPS (requests/s)
    qps: float = field(default=50.0, metadata={"min": 0})
    # client-side burst above qps, as client-go's Burst
    burst: int = field(default=100, metadata={"min": 0})
