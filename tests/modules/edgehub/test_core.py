"""EdgeCore without I/O: what an edge sends on connect, on its clock, and for replies."""

from __future__ import annotations

import json
import random

import pytest

from beehive import codec
from beehive.message import JsonValue, Message
from modules.edgehub.core import EdgeCore
from tests.fakes import FakeClock


def make(clock: FakeClock, **kwargs: object) -> EdgeCore:
    return EdgeCore(node_id="edge-1", project_id="p", clock=clock, **kwargs)  # type: ignore[arg-type]


def sent(core: EdgeCore) -> list[Message]:
    return [codec.decode(frame) for frame in core.data_to_send()]


def test_on_connect_the_edge_sends_a_keepalive_registers_and_reports_status() -> None:
    core = make(FakeClock())
    core.connected()
    ops = [(m.route.operation, m.route.resource) for m in sent(core)]
    assert ops == [
        ("keepalive", "node"),
        ("insert", "null/node/edge-1"),
        ("update", "null/nodestatus/edge-1"),
    ]


def test_status_and_keepalives_follow_their_periods() -> None:
    clock = FakeClock()
    core = make(clock, heartbeat=15.0, status_interval=10.0, register=False)
    core.connected()
    sent(core)
    assert core.next_deadline() == clock.now + 10
    clock.advance(10)
    core.tick()
    assert [m.route.resource for m in sent(core)] == ["null/nodestatus/edge-1"]
    clock.advance(5)
    core.tick()
    assert [m.route.operation for m in sent(core)] == ["keepalive"]


def test_cloud_messages_are_for_the_store_and_not_acked_yet() -> None:
    core = make(FakeClock(), register=False)
    core.connected()
    sent(core)
    update = Message.new(operation="update", group="resource", resource="default/pod/p",
                         content={})  # fmt: skip
    inbound = core.receive(codec.encode(update))
    assert inbound.store == [update]
    assert sent(core) == []


def test_replies_are_handed_to_their_caller_and_not_acked() -> None:
    """As edgecore's edgehub: the caller gets the reply; edgehub never acks it."""
    core = make(FakeClock(), register=False)
    core.connected()
    sent(core)
    reply = Message.new(source="edgecontroller", group="resource", operation="response",
                        resource="default/configmap/c", content={"a": 1},
                        parent_msg_id="q1")  # fmt: skip
    inbound = core.receive(codec.encode(reply))
    assert inbound.replies == [reply]
    assert sent(core) == []


@pytest.mark.parametrize(
    ("group", "parent"),
    [
        pytest.param("meta", "q1", id="a reply that keeps the request's group"),
        pytest.param("", "q1", id="a reply without a group"),
        pytest.param("meta", "", id="a push in group meta"),
        pytest.param("twin", "", id="a push for a module this edge lacks"),
        pytest.param("user", "", id="a push for the bus modules"),
    ],
)
def test_messages_no_module_handles_are_dropped_unacked_as_edgecore_drops_them(
    group: str, parent: str
) -> None:
    core = make(FakeClock(), register=False)
    core.connected()
    sent(core)
    message = Message.new(source="edgecontroller", group=group, operation="response",
                          resource="default/configmap/c", content="OK",
                          parent_msg_id=parent)  # fmt: skip
    inbound = core.receive(codec.encode(message))
    assert inbound.replies == [] and inbound.store == []
    assert sent(core) == []
    assert core.unhandled == 1


def test_the_registration_reply_sets_the_node_uid_and_is_not_passed_on() -> None:
    core = make(FakeClock())
    core.connected()
    register = next(m for m in sent(core) if m.route.operation == "insert")
    assert (register.route.source, register.route.group) == ("edged", "meta")  # as edged
    node: JsonValue = {"metadata": {"name": "edge-1", "uid": "node-uid"}}
    reply = Message.new(source="edgecontroller", group="resource", operation="response",
                        resource=register.route.resource, parent_msg_id=register.msg_id,
                        content={"Object": node, "Err": None})  # fmt: skip
    inbound = core.receive(json.dumps(json.loads(codec.encode(reply))))
    assert inbound.replies == [] and inbound.store == []
    assert core.node_uid == "node-uid"


def test_a_refused_registration_sets_no_uid() -> None:
    core = make(FakeClock())
    core.connected()
    register = next(m for m in sent(core) if m.route.operation == "insert")
    failed: JsonValue = {"ErrStatus": {"status": "Failure", "message": "no", "code": 403}}
    reply = Message.new(source="edgecontroller", group="resource", operation="response",
                        resource=register.route.resource, parent_msg_id=register.msg_id,
                        content={"Object": {"metadata": {"uid": "x"}}, "Err": failed})  # fmt: skip
    core.receive(codec.encode(reply))
    assert core.node_uid == ""


def test_sending_while_disconnected_raises_the_hub_error() -> None:
    core = make(FakeClock())
    try:
        core.send(Message.new(operation="update", resource="default/podstatus/p"))
    except Exception as exc:
        assert type(exc).__name__ == "SessionClosedError"
    else:
        raise AssertionError("expected SessionClosedError")


def test_after_a_reconnect_the_first_status_comes_within_one_period_not_at_once() -> None:
    clock = FakeClock()
    core = make(clock, status_interval=10.0, register=False, rng=random.Random(7))
    core.connected()
    sent(core)
    core.disconnected()
    core.connected()
    assert [m.route.operation for m in sent(core)] == ["keepalive"]
    deadline = core.next_deadline()
    assert deadline is not None and clock.now < deadline <= clock.now + 10
    clock.now = deadline
    core.tick()
    assert [m.route.resource for m in sent(core)] == ["null/nodestatus/edge-1"]
