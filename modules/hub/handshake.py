"""The connection request: path and headers an edge sends, checked by cloudhub.

As edge/pkg/edgehub/clients/wsclient/websocket.go builds it: the edge dials
``/<projectID>/<nodeName>/events`` with headers ``node_id`` and ``project_id``.
cloudhub (cloud/pkg/cloudhub/handler/message_handler.go) reads the node from the
``node_id`` header and accepts any path; we also refuse a path naming another node.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from modules.hub import errors

DEFAULT_PROJECT_ID = "e632aba927ea4ac2b575ec1603d56f10"
NODE_ID_HEADER = "node_id"
PROJECT_ID_HEADER = "project_id"
CONNECTION_USE_HEADER = "ConnectionUse"

# A Kubernetes node name is a DNS subdomain (RFC 1123), at most 253 characters.
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_PATH = re.compile(r"/(?P<project>[^/]+)/(?P<node>[^/]+)/events/?")


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """Who is connecting: the node and its project."""

    node_id: str
    project_id: str


def connection_path(node_id: str, project_id: str = DEFAULT_PROJECT_ID) -> str:
    """The path an edge connects to, e.g. ``/e632.../edge-1/events``."""
    return f"/{project_id}/{node_id}/events"


def connection_headers(node_id: str, project_id: str = DEFAULT_PROJECT_ID) -> dict[str, str]:
    """The upgrade request headers an edge sends."""
    return {NODE_ID_HEADER: node_id, PROJECT_ID_HEADER: project_id, CONNECTION_USE_HEADER: "msg"}


def check_node_id(node_id: str) -> str:
    """Return `node_id` if it is a valid node name.

    Raises:
        HandshakeError: empty, too long, or not a DNS subdomain.
    """
    if not node_id:
        raise errors.HandshakeError("node_id is empty")
    if len(node_id) > 253 or not _NODE_NAME.fullmatch(node_id):
        raise errors.HandshakeError(f"node_id {node_id[:64]!r} is not a valid node name")
    return node_id


def parse_request(path: str, headers: Mapping[str, str]) -> Peer:
    """Who is connecting, from the request path and headers (header names in any case).

    The ``node_id`` header is required, as in KubeEdge; ``project_id`` defaults to
    the default project. A path of the form ``/<project>/<node>/events`` must agree
    with the headers; other paths are accepted (KubeEdge serves any path).

    Raises:
        HandshakeError: the node header is missing or invalid, or the path names
            another node or project.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    node_id = check_node_id(lowered.get(NODE_ID_HEADER, "").strip())
    project_id = lowered.get(PROJECT_ID_HEADER, "").strip() or DEFAULT_PROJECT_ID
    match = _PATH.fullmatch(path.split("?", 1)[0])
    if match and match["node"] != node_id:
        raise errors.HandshakeError(f"path names node {match['node']!r}, header {node_id!r}")
    if match and match["project"] != project_id:
        raise errors.HandshakeError(
            f"path names project {match['project']!r}, header {project_id!r}"
        )
    return Peer(node_id=node_id, project_id=project_id)
