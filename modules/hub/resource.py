"""Resource strings between cloud modules and the wire (notes 2.3).

Cloud modules address ``node/<id>/<namespace>/<type>/<name>``; the edge sees and
sends ``<namespace>/<type>/<name>``. cloudhub strips the prefix going down
(TrimMessage, cloud/pkg/cloudhub/common/helper.go) and adds it coming up
(DispatchUpstream, cloud/pkg/cloudhub/dispatcher/message_dispatcher.go).
"""

from __future__ import annotations

from modules.hub import errors

NODE = "node"
SEP = "/"


def node_of(resource: str) -> str:
    """The node a cloud resource names (``node/<id>/...``), or "" if none."""
    tokens = resource.split(SEP, 2)
    if len(tokens) >= 2 and tokens[0] == NODE:
        return tokens[1]
    return ""


def trim(resource: str, node_id: str) -> str:
    """The wire form of a cloud resource bound for `node_id`.

    ``node/<id>/rest`` becomes ``rest``; resources without a node prefix (for
    example ``k8s/ca.crt``) go out unchanged, as TrimMessage leaves them.

    Raises:
        WrongNodeError: the resource names another node.
    """
    tokens = resource.split(SEP, 2)
    if tokens[0] != NODE or len(tokens) < 3:
        return resource
    if tokens[1] != node_id:
        raise errors.WrongNodeError(node_id, resource)
    return tokens[2]


def prefix(resource: str, node_id: str) -> str:
    """The cloud form of a resource an edge sent: ``node/<id>/`` + resource."""
    head = f"{NODE}{SEP}{node_id}"
    return f"{head}{SEP}{resource}" if resource else head


def names_other_node(resource: str, node_id: str) -> bool:
    """Whether an upstream resource is itself ``node/<other>/...`` (a forged address)."""
    owner = node_of(resource)
    return bool(owner) and owner != node_id and resource.count(SEP) >= 2
