"""The session notices edgecontroller writes the nodes' Events from (contract item 4):
why a session ended, refused connections, nodes falling behind; the core driven
directly with a fake clock, as in test_core.py."""

from __future__ import annotations

from typing import Any

import pytest

from beehive import codec
from modules import contract
from modules.cloudhub.core import CloudHubCore, Outputs
from modules.hub.protocol import keepalive_message
from tests.fakes import FakeClock
from tests.modules.cloudhub.test_core import (
    CONN,
    NODE,
    ack,
    connected,
    make,
    node_deleted,
    pod,
    pumped,
)


def notice(out: Outputs, operation: str) -> dict[str, Any]:
    """The content of the one upstream notice of `operation`."""
    [found] = [m for m in out.upstream if m.route.operation == operation]
    assert (found.route.source, found.route.group) == ("cloudhub", "resource")
    assert isinstance(found.content, dict)
    return found.content


def reason_and_message(out: Outputs, operation: str) -> tuple[str, str]:
    content = notice(out, operation)
    assert (content["event_type"], content["client_id"]) == (operation, NODE)
    return content["reason"], content["message"]


def operations(out: Outputs) -> list[str]:
    return [m.route.operation for m in out.upstream]


# Why a session ended.


def test_a_keepalive_timeout_is_the_reason_of_the_disconnect() -> None:
    clock = FakeClock()
    core = connected(clock, keepalive_timeout=30.0)
    clock.advance(31.0)
    core.tick()
    assert reason_and_message(core.take_outputs(), "disconnected") == (
        "keepalive", "no keepalive within keepalive_timeout (30 s)")  # fmt: skip


def test_a_replaced_session_says_so() -> None:
    core = connected(FakeClock())
    assert core.open(2, NODE)
    reason, _ = reason_and_message(core.take_outputs(), "disconnected")
    assert reason == "replaced"


@pytest.mark.parametrize(
    ("ended", "details"),
    [
        pytest.param("closed", "close code 1000", id="closed by the edge"),
        pytest.param(
            "write_buffer", "more than max_write_buffer bytes waited for it", id="write buffer full"
        ),
        pytest.param("lost", "the connection broke without a close frame", id="broken"),
    ],
)
def test_the_transport_says_why_a_connection_ended(ended: str, details: str) -> None:
    core = connected(FakeClock())
    core.lost(CONN, ended, details)
    assert reason_and_message(core.take_outputs(), "disconnected") == (ended, details)


def test_a_connection_ended_without_a_reason_was_lost() -> None:
    core = connected(FakeClock())
    core.lost(CONN)
    assert reason_and_message(core.take_outputs(), "disconnected")[0] == "lost"


def test_a_deleted_node_and_a_stopping_cloudhub_say_so() -> None:
    core = connected(FakeClock())
    core.downstream(node_deleted())
    assert reason_and_message(core.take_outputs(), "disconnected")[0] == "deleted"
    assert core.open(2, NODE)
    core.take_outputs()
    core.close_all("cloudhub is stopping")
    assert reason_and_message(core.take_outputs(), "disconnected")[0] == "stopping"


def test_connected_and_keepalive_notices_carry_no_reason() -> None:
    core = make(FakeClock())
    assert core.open(CONN, NODE)
    assert notice(core.take_outputs(), "connected") == {"event_type": "connected",
                                                        "client_id": NODE}  # fmt: skip
    core.receive(CONN, codec.encode(keepalive_message()))
    assert notice(core.take_outputs(), "keepalive") == {"event_type": "keepalive",
                                                        "client_id": NODE}  # fmt: skip


# Refused connections.


def test_a_node_over_the_limit_is_noticed_as_refused() -> None:
    core = make(FakeClock(), node_limit=1)
    assert core.open(1, "edge-0")
    core.take_outputs()
    assert not core.open(2, NODE)
    assert reason_and_message(core.take_outputs(), "refused") == (
        "node_limit", "node limit of 1 reached")  # fmt: skip


def test_refusals_the_transport_reports_are_noticed() -> None:
    core = make(FakeClock())
    core.refused(NODE, "forbidden", "the client certificate is for node 'edge-9'")
    assert reason_and_message(core.take_outputs(), "refused") == (
        "forbidden", "the client certificate is for node 'edge-9'")  # fmt: skip


def test_refused_notices_are_rate_limited_over_all_nodes() -> None:
    clock = FakeClock()
    core = make(clock)
    for i in range(150):
        core.refused(f"edge-{i}", "node_limit", "node limit of 1 reached")
    assert len(core.take_outputs().upstream) == 100
    assert core.refusals_unnoticed == 50
    clock.advance(1.0)
    for i in range(30):
        core.refused(f"edge-{i}", "node_limit", "node limit of 1 reached")
    assert len(core.take_outputs().upstream) == 20


# Falling behind.


def flood(core: CloudHubCore, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        core.downstream(pod(f"p{i}", 1))


def test_a_queue_over_the_threshold_is_noticed_once_until_it_is_down_to_half() -> None:
    core = connected(FakeClock(), window=1, behind_threshold=4, max_objects=100)
    flood(core, 4)
    assert "behind" not in operations(core.take_outputs())  # 4 wait: not over
    flood(core, 3, start=4)
    assert reason_and_message(core.take_outputs(), "behind") == (
        "queue", "more than behind_threshold (4) objects wait for it: it acks more slowly than they come")  # fmt: skip
    flood(core, 3, start=7)
    assert "behind" not in operations(core.take_outputs())  # noticed already
    for _ in range(8):  # 10 waited; down to 2, half the threshold
        [delivered] = pumped(core)
        ack(core, delivered)
    core.tick()  # 2 wait: no longer behind; its pump writes one more (1 waits)
    core.take_outputs()
    flood(core, 4, start=10)
    assert reason_and_message(core.take_outputs(), "behind")[0] == "queue"


def test_a_disconnected_node_is_not_noticed_as_behind() -> None:
    core = connected(FakeClock(), behind_threshold=2)
    core.lost(CONN)
    core.take_outputs()
    flood(core, 5)
    assert "behind" not in operations(core.take_outputs())


def test_a_threshold_of_zero_notices_nothing() -> None:
    core = connected(FakeClock(), behind_threshold=0, max_objects=100)
    flood(core, 50)
    assert "behind" not in operations(core.take_outputs())


def test_an_overflow_of_max_objects_is_noticed_once_with_the_resync_it_brings() -> None:
    core = connected(FakeClock(), window=1, max_objects=3, behind_threshold=0)
    flood(core, 5)
    out = core.take_outputs()
    assert reason_and_message(out, "behind") == (
        "resync",
        "more than max_objects (3) objects waited for it: changes were refused and it will be"
        " resynced",
    )
    flood(core, 2, start=5)
    assert "behind" not in operations(core.take_outputs())


def test_notices_are_messages_for_edgecontroller_on_the_node() -> None:
    core = make(FakeClock(), node_limit=1)
    core.open(1, "edge-0")
    core.open(2, NODE)
    [message] = [m for m in core.take_outputs().upstream if m.route.operation == "refused"]
    assert message.route.resource == contract.build_resource(NODE)
