"""KubeEdge's certificate and token flow: cloud CA, join tokens, the certificate
server, edge enrolment and mutual-TLS contexts (per-node authorization of what an
edge sends is edgecontroller's, modules/edgecontroller/upstream.py).

`CertServer` (the ``certserver`` module) is loaded on first use, so that the edge
(`enroll`, `tls`) does not import the cloud's Kubernetes client.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CertServer"]


def __getattr__(name: str) -> Any:
    if name == "CertServer":
        from modules.certs.module import CertServer

        return CertServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
