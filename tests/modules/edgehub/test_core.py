"""EdgeCore without I/O: what an edge sends on connect, on its clock, and for replies."""

from __future__ import annotations

import json
import random

from beehive import codec
from beehive.message import Message
from modules.edgehub.core import EdgeCore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, **kwargs: object) -> EdgeCore:
    return EdgeCore(node_id="edge-1", project_id="p", clock=clock, **kwargs)  # type: ignore[arg-type]


def sent(core: EdgeCore) -> list[Message]:
    return [codec.decode(frame) for frame in core.data_to_send()]


def test_on_connect_the_edge_sends_a_keepalive_registers_and_reports_status() -> None:
    core = make(Clock())
    core.connected()
    ops = [(m.route.operation, m.route.resource) for m in sent(core)]
    assert ops == [
        ("keepalive", "node"),
        ("insert", "null/node/edge-1"),
        ("update", "null/nodestatus/edge-1"),
    ]


def test_status_and_keepalives_follow_their_periods() -> None:
    clock = Clock()
    core = make(clock, heartbeat=15.0, status_interval=10.0, register=False)
    core.connected()
    sent(core)
    assert core.next_deadline() == clock.now + 10
    clock.now += 10
    core.tick()
    assert [m.route.resource for m in sent(core)] == ["null/nodestatus/edge-1"]
    clock.now += 5
    core.tick()
    assert [m.route.operation for m in sent(core)] == ["keepalive"]


def test_cloud_messages_are_for_the_store_and_not_acked_yet() -> None:
    core = make(Clock(), register=False)
    core.connected()
    sent(core)
    update = Message.new(operation="update", resource="default/pod/p", content={})
    inbound = core.receive(codec.encode(update))
    assert inbound.store == [update]
    assert sent(core) == []


def test_replies_are_acked_at_once_and_handed_to_their_caller() -> None:
    core = make(Clock(), register=False)
    core.connected()
    sent(core)
    reply = Message.new(operation="response", resource="default/configmap/c", content={"a": 1},
                        parent_msg_id="q1")  # fmt: skip
    inbound = core.receive(codec.encode(reply))
    assert inbound.replies == [reply]
    [ack] = sent(core)
    assert (ack.route.operation, ack.parent_msg_id, ack.content) == ("response", reply.msg_id, "OK")


def test_the_registration_reply_sets_the_node_uid_and_is_not_passed_on() -> None:
    core = make(Clock())
    core.connected()
    register = next(m for m in sent(core) if m.route.operation == "insert")
    reply = register.reply({"metadata": {"name": "edge-1", "uid": "node-uid"}})
    inbound = core.receive(json.dumps(json.loads(codec.encode(reply))))
    assert inbound.replies == [] and inbound.store == []
    assert core.node_uid == "node-uid"


def test_sending_while_disconnected_raises_the_hub_error() -> None:
    core = make(Clock())
    try:
        core.send(Message.new(operation="update", resource="default/podstatus/p"))
    except Exception as exc:
        assert type(exc).__name__ == "SessionClosedError"
    else:
        raise AssertionError("expected SessionClosedError")


def test_after_a_reconnect_the_first_status_comes_within_one_period_not_at_once() -> None:
    clock = Clock()
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
