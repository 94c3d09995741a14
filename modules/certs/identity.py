"""Node identities in certificates: ``CN=system:node:<node>, O=system:nodes``.

The subject Kubernetes' Node authorizer and KubeEdge's cloudhub authorization
(cloud/pkg/cloudhub/authorization) expect of an edge node's client certificate.
Used by the certificate server (what it signs), the edge (what it checks it got)
and cloudhub (who a TLS peer is).
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"

# A Kubernetes object name (RFC 1123 subdomain), as node names are.
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_valid_node_name(name: str) -> bool:
    """True for a name Kubernetes accepts for a Node (lowercase RFC 1123, <= 253)."""
    return 0 < len(name) <= 253 and _NODE_NAME.match(name) is not None


def node_subject(node: str) -> x509.Name:
    """The subject of `node`'s certificate."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, NODE_PREFIX + node),
        ]
    )


def node_from_name(subject: x509.Name) -> str:
    """The node a subject names.

    Raises:
        ValueError: not exactly one CN ``system:node:<valid name>`` and O ``system:nodes``.
    """
    cns = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if orgs != [NODES_GROUP]:
        raise ValueError(f"certificate organization is not {NODES_GROUP!r}")
    if len(cns) != 1 or not isinstance(cns[0], str) or not cns[0].startswith(NODE_PREFIX):
        raise ValueError(f"certificate common name is not {NODE_PREFIX}<node>")
    node = cns[0][len(NODE_PREFIX) :]
    if not is_valid_node_name(node):
        raise ValueError("certificate common name holds an invalid node name")
    return node


def node_from_certificate(cert: x509.Certificate) -> str:
    """The node `cert` was issued to (see `node_from_name`).

    Raises:
        ValueError: the certificate is not a node certificate.
    """
    return node_from_name(cert.subject)
