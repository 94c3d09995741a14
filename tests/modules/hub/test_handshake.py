"""Connection path and headers: what an edge sends and what cloudhub accepts."""

from __future__ import annotations

import pytest

from modules.hub import errors
from modules.hub.handshake import (
    DEFAULT_PROJECT_ID,
    Peer,
    check_node_id,
    connection_headers,
    connection_path,
    parse_request,
)
from modules.hub.resource import node_of, prefix, trim


def test_the_edge_connects_to_project_node_events() -> None:
    assert connection_path("edge-1") == f"/{DEFAULT_PROJECT_ID}/edge-1/events"
    assert DEFAULT_PROJECT_ID == "e632aba927ea4ac2b575ec1603d56f10"


def test_the_edge_sends_node_and_project_headers() -> None:
    headers = connection_headers("edge-1", "p1")
    assert headers["node_id"] == "edge-1"
    assert headers["project_id"] == "p1"


def test_what_the_edge_sends_is_what_the_cloud_accepts() -> None:
    peer = parse_request(connection_path("edge-1", "p1"), connection_headers("edge-1", "p1"))
    assert peer == Peer(node_id="edge-1", project_id="p1")


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        pytest.param(
            "/",
            {"node_id": "n1"},
            Peer("n1", DEFAULT_PROJECT_ID),
            id="any path and default project, as kubeedge",
        ),
        pytest.param(
            "/p/n1/events?x=1",
            {"Node_ID": "n1", "PROJECT_ID": "p"},
            Peer("n1", "p"),
            id="header names in any case and a query string",
        ),
    ],
)
def test_accepted_requests(path: str, headers: dict[str, str], expected: Peer) -> None:
    assert parse_request(path, headers) == expected


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        pytest.param("/p/n1/events", {}, "node_id is empty", id="no node header"),
        pytest.param(
            "/p/n1/events",
            {"node_id": "n2", "project_id": "p"},
            "names node",
            id="path names another node",
        ),
        pytest.param(
            "/q/n1/events",
            {"node_id": "n1", "project_id": "p"},
            "names project",
            id="path names another project",
        ),
        pytest.param("/", {"node_id": "Bad/Name"}, "not a valid node name", id="invalid name"),
        pytest.param("/", {"node_id": "a" * 254}, "not a valid node name", id="name too long"),
    ],
)
def test_refused_requests_say_why(path: str, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(errors.HandshakeError, match=reason):
        parse_request(path, headers)


def test_a_valid_node_id_is_returned() -> None:
    assert check_node_id("edge-1.example") == "edge-1.example"


@pytest.mark.parametrize(
    ("resource", "node"),
    [
        pytest.param("node/n1/default/pod/p", "n1", id="namespaced"),
        pytest.param("node/n1", "n1", id="bare node"),
        pytest.param("default/pod/p", "", id="no node"),
        pytest.param("node", "", id="just the word"),
    ],
)
def test_the_node_of_a_resource(resource: str, node: str) -> None:
    assert node_of(resource) == node


def test_prefix_and_trim_are_inverse() -> None:
    assert trim(prefix("default/pod/p", "n1"), "n1") == "default/pod/p"
    assert prefix("", "n1") == "node/n1"
