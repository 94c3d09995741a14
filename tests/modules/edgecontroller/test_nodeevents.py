"""Session notices as the nodes' Events: reason, type and message per notice (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from modules.edgecontroller import nodeevents

NODE = "edge-1"
FOUND = {"metadata": {"name": NODE, "uid": "0b7c-node-uid"}}


def notice(operation: str, reason: str = "", message: str = "") -> dict[str, Any]:
    content: dict[str, Any] = {"event_type": operation, "client_id": NODE}
    if reason:
        content |= {"reason": reason, "message": message}
    return content


@pytest.mark.parametrize(
    ("operation", "reason", "details", "expected"),
    [
        pytest.param("connected", "", "", ("Normal", "EdgeConnected",
                     "Connected to cloudcore replica-0"), id="connected"),
        pytest.param("disconnected", "closed", "close code 1000", ("Normal", "EdgeDisconnected",
                     "Disconnected: closed by the edge (close code 1000)"), id="closed by the edge"),
        pytest.param("disconnected", "replaced", "replaced by a newer connection of this node",
                     ("Normal", "EdgeDisconnected", "Disconnected: replaced by a newer connection"
                      " of the node (replaced by a newer connection of this node)"), id="replaced"),
        pytest.param("disconnected", "keepalive", "no keepalive within keepalive_timeout (30 s)",
                     ("Warning", "EdgeDisconnected", "Disconnected: keepalive timeout (no keepalive"
                      " within keepalive_timeout (30 s))"), id="keepalive timeout"),
        pytest.param("disconnected", "write_buffer", "more than max_write_buffer bytes waited for it",
                     ("Warning", "EdgeDisconnected", "Disconnected: write buffer full, the edge did"
                      " not read what it was sent (more than max_write_buffer bytes waited for"
                      " it)"), id="write buffer full"),
        pytest.param("disconnected", "lost", "the connection broke without a close frame",
                     ("Warning", "EdgeDisconnected", "Disconnected: the connection broke (the"
                      " connection broke without a close frame)"), id="connection broke"),
        pytest.param("refused", "node_limit", "node limit of 1 reached", ("Warning", "EdgeRefused",
                     "Connection refused: over the node limit (node limit of 1 reached)"),
                     id="node limit"),
        pytest.param("refused", "forbidden", "the client certificate is for node 'edge-9'",
                     ("Warning", "EdgeRefused", "Connection refused: HTTP 403 (the client"
                      " certificate is for node 'edge-9')"), id="forbidden"),
        pytest.param("refused", "bad_request", "bad connection request: path names node 'x'",
                     ("Warning", "EdgeRefused", "Connection refused: HTTP 400 (bad connection"
                      " request: path names node 'x')"), id="bad request"),
        pytest.param("behind", "queue", "more than behind_threshold (1024) objects wait for it",
                     ("Warning", "EdgeFallingBehind", "Falling behind: queue over behind_threshold"
                      " (more than behind_threshold (1024) objects wait for it)"),
                     id="queue over the threshold"),
        pytest.param("behind", "resync", "more than max_objects (4096) objects waited", ("Warning",
                     "EdgeFallingBehind", "Falling behind: resynced, its queue overflowed (more than"
                     " max_objects (4096) objects waited)"), id="resynced"),
    ],
)  # fmt: skip
def test_each_notice_becomes_an_event_about_the_node(
    operation: str, reason: str, details: str, expected: tuple[str, str, str]
) -> None:
    event = nodeevents.occurrence(NODE, operation, notice(operation, reason, details),
                                  found=FOUND, instance="replica-0")  # fmt: skip
    assert event is not None
    assert (event.type, event.reason, event.message) == expected
    assert (event.kind, event.name, event.uid, event.namespace) == (
        "Node",
        NODE,
        "0b7c-node-uid",
        "",
    )


@pytest.mark.parametrize("reason", ["deleted", "stopping"])
def test_a_deleted_node_or_a_stopping_cloudhub_writes_no_event(reason: str) -> None:
    content = notice("disconnected", reason, "")
    assert nodeevents.occurrence(NODE, "disconnected", content, found=FOUND, instance="i") is None


def test_a_refusal_of_a_node_that_does_not_exist_writes_no_event() -> None:
    content = notice("refused", "bad_request", "")
    assert nodeevents.occurrence(NODE, "refused", content, found=None, instance="i") is None


def test_a_node_not_watched_yet_is_named_by_its_name_as_the_kubelet_does() -> None:
    event = nodeevents.occurrence(NODE, "connected", notice("connected"), found=None, instance="i")
    assert event is not None and event.uid == NODE


def test_an_unknown_reason_is_a_warning_naming_it() -> None:
    event = nodeevents.occurrence(NODE, "disconnected", notice("disconnected", "eaten", "by a grue"),
                                  found=FOUND, instance="i")  # fmt: skip
    assert event is not None
    assert (event.type, event.message) == ("Warning", "Disconnected: eaten (by a grue)")


def test_keepalives_write_no_event() -> None:
    assert nodeevents.occurrence(NODE, "keepalive", notice("keepalive"), found=FOUND,
                                 instance="i") is None  # fmt: skip
