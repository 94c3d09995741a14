"""CloudHubCore driven directly: connections, frames as an edge writes them, acks,
downstream messages and a fake clock in; frames, closes, upstream messages and
ObjectSync ops out (`take_outputs`), as tests/modules/hub/test_protocol.py drives
HubProtocol. No sockets, threads or real time.

Not here: the close of a node that does not read what it is sent (`max_write_buffer`),
which the transport decides from its socket's write buffer (wsconn.Connection.
write_frames), out of the core's sight; test_limits.py tests it on a socket."""

from __future__ import annotations

from typing import Any

import pytest

from beehive import codec
from beehive.message import JsonValue, Message, Operation
from modules import contract
from modules.cloudhub import objects
from modules.cloudhub.core import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    Close,
    CloudHubCore,
    HubLimits,
    Outputs,
)
from modules.cloudhub.queue import RetryPolicy
from modules.hub.protocol import ack_frame, keepalive_message
from tests.fakes import FakeClock

NODE = "edge-1"
CONN = 1

# What edgecore writes first on a new connection: Go's zero model.Message.
EMPTY_MESSAGE = b'{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}\n'


# Building the core and its inputs.


def make(clock: FakeClock, **limits: Any) -> CloudHubCore:
    return CloudHubCore(limits=HubLimits(**limits), clock=clock)


def connected(clock: FakeClock, **limits: Any) -> CloudHubCore:
    """A core with NODE connected on CONN, its connect outputs taken."""
    core = make(clock, **limits)
    assert core.open(CONN, NODE)
    core.take_outputs()
    return core


def pod(name: str, rv: int, *, operation: str = "update", node: str = NODE) -> Message:
    """A pod as edgecontroller sends it down (contract item 1)."""
    content: JsonValue = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "resourceVersion": str(rv)},
        "spec": {"nodeName": node},
    }  # fmt: skip
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation=operation,
        resource=contract.build_resource(node, "default", contract.POD, name),
        content=content, resource_version=str(rv),
    )  # fmt: skip


def pod_ref(name: str) -> objects.ObjectRef:
    return objects.ObjectRef(f"uid-{name}", "default", contract.POD, name, "v1", "Pod")


def node_object(rv: int, *, ready: str = "True", zone: str = "a") -> Message:
    """The node's own Node, as edgecontroller sends an update of it."""
    content: JsonValue = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "uid": "node-uid", "resourceVersion": str(rv),
                     "labels": {"zone": zone}},
        "spec": {"podCIDR": "10.0.0.0/24"},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }  # fmt: skip
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation="update",
        resource=contract.build_resource(NODE, "", contract.NODE, NODE), content=content,
        resource_version=str(rv),
    )  # fmt: skip


def lease(node: str = NODE) -> Message:
    """The node's Lease, as edgecontroller answers a lease update: sent once, never acked."""
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation="update",
        resource=contract.build_resource(node, "kube-node-lease", contract.LEASE, node),
        content={"metadata": {"uid": "lease-uid", "name": node, "resourceVersion": "4"}},
    )  # fmt: skip


def resynced(uids: JsonValue, node: str = NODE) -> Message:
    """edgecontroller's answer to a resync (contract item 5)."""
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE,
        operation=contract.RESYNCED, resource=contract.build_resource(node),
        content={"uids": uids},
    )  # fmt: skip


def node_deleted(node: str = NODE) -> Message:
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE,
        operation=Operation.DELETE, resource=contract.build_resource(node, "", contract.NODE, node),
        content={"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "uid": "node-uid"}},
    )  # fmt: skip


def edge_frame(operation: str, resource: str, content: JsonValue = None) -> bytes:
    """An upstream message as edgehub writes it (resource without ``node/<id>/``)."""
    message = Message.new(
        source="edged", group=contract.GROUP_RESOURCE, operation=operation,
        resource=resource, content=content if content is not None else {"phase": "Running"},
    )  # fmt: skip
    return codec.encode(message)


# Reading the outputs.


def written(out: Outputs, conn: int = CONN) -> list[Message]:
    """The frames written to `conn`, decoded as the edge reads them."""
    return [codec.decode(frame) for frame in out.writes.get(conn, [])]


def pumped(core: CloudHubCore, conn: int = CONN) -> list[Message]:
    core.pump()
    return written(core.take_outputs(), conn)


def notices(out: Outputs) -> list[tuple[str, str]]:
    """(operation, resource) of every upstream message."""
    return [(m.route.operation, m.route.resource) for m in out.upstream]


def ack(core: CloudHubCore, delivered: Message, conn: int = CONN) -> Outputs:
    """The edge stores `delivered` and acks it (the frame edgehub writes)."""
    core.receive(conn, ack_frame(delivered))
    return core.take_outputs()


def row(core: CloudHubCore, node: str = NODE) -> dict[str, JsonValue]:
    [found] = [r for r in core.nodes() if r["node"] == node]
    return found


# Sessions.


def test_a_connection_sends_connected_then_a_resync_upstream() -> None:
    core = make(FakeClock())
    assert core.open(CONN, NODE)
    out = core.take_outputs()
    assert notices(out) == [("connected", "node/edge-1"), ("resync", "node/edge-1")]
    for notice in out.upstream:
        assert (notice.route.source, notice.route.group) == ("cloudhub", "resource")
        assert notice.content == {"event_type": notice.route.operation, "client_id": NODE}
    assert out.writes == {} and out.closes == []
    assert core.is_connected(NODE)


def test_a_silent_session_is_closed_with_1008_at_the_keepalive_timeout() -> None:
    clock = FakeClock()
    core = connected(clock, keepalive_timeout=30.0)
    clock.advance(20.0)
    core.receive(CONN, codec.encode(keepalive_message()))
    assert notices(core.take_outputs()) == [("keepalive", "node/edge-1")]
    clock.advance(29.5)  # 29.5 s after the keepalive: still alive
    core.tick()
    assert core.take_outputs().closes == []
    clock.advance(0.5)
    core.tick()
    out = core.take_outputs()
    assert out.closes == [Close(CONN, CLOSE_POLICY, "no keepalive for 30.0 s")]
    assert notices(out) == [("disconnected", "node/edge-1")]
    assert not core.is_connected(NODE)
    core.receive(CONN, edge_frame("update", "default/podstatus/p"))  # too late: ignored
    assert core.take_outputs().upstream == []


def test_lost_ends_the_session_and_unacked_messages_go_to_the_next_one() -> None:
    clock = FakeClock()
    core = connected(clock)
    core.downstream(pod("a", 1))
    [first] = pumped(core)
    core.lost(CONN)
    out = core.take_outputs()
    assert notices(out) == [("disconnected", "node/edge-1")]
    assert out.closes == []  # the connection is gone already
    assert core.open(2, NODE)
    core.take_outputs()
    [again] = pumped(core, conn=2)
    assert again.msg_id == first.msg_id


def test_a_newer_connection_of_a_node_replaces_the_old_one_which_is_closed_with_1000() -> None:
    clock = FakeClock()
    core = connected(clock)
    core.downstream(pod("a", 1))
    [first] = pumped(core)
    assert core.open(2, NODE)
    out = core.take_outputs()
    assert out.closes == [Close(CONN, CLOSE_NORMAL, "replaced by a newer connection of this node")]
    assert [op for op, _ in notices(out)] == ["disconnected", "connected", "resync"]
    core.receive(CONN, edge_frame("update", "default/podstatus/p"))  # the old one: ignored
    core.lost(CONN)  # its end does not end the new session
    assert core.take_outputs().upstream == []
    assert core.is_connected(NODE)
    [again] = pumped(core, conn=2)  # what the old one had in flight goes to the new one
    assert again.msg_id == first.msg_id
    assert row(core)["connects"] == 2


def test_close_all_closes_every_session_with_1001() -> None:
    core = make(FakeClock())
    core.open(1, "edge-1")
    core.open(2, "edge-2")
    core.take_outputs()
    core.close_all("cloudhub is stopping")
    out = core.take_outputs()
    assert sorted(out.closes, key=lambda c: c.conn) == [
        Close(1, CLOSE_GOING_AWAY, "cloudhub is stopping"),
        Close(2, CLOSE_GOING_AWAY, "cloudhub is stopping"),
    ]
    assert sorted(notices(out)) == [
        ("disconnected", "node/edge-1"),
        ("disconnected", "node/edge-2"),
    ]


def test_closing_some_sessions_ends_those_with_nothing_waiting_or_unacked_first() -> None:
    """A stop or a rebalancing hands nodes over a batch at a time: settled nodes first,
    so the replica that takes them over has nothing to send twice."""
    core = make(FakeClock())
    for conn, node in enumerate(("edge-1", "edge-2", "edge-3", "edge-4"), start=1):
        core.open(conn, node)
    core.take_outputs()
    core.downstream(pod("a", 1, node="edge-1"))  # in flight once pumped
    core.downstream(pod("b", 1, node="edge-3"))
    pumped(core, conn=1)
    core.take_outputs()
    assert core.close_some(2, "handing nodes over") == 2
    closed = sorted(c.conn for c in core.take_outputs().closes)
    assert closed == [2, 4]
    assert core.close_some(1, "handing nodes over") == 1  # then the busy ones
    [busy] = core.take_outputs().closes
    assert busy.conn in (1, 3) and busy.code == CLOSE_GOING_AWAY
    assert core.close_some(5, "stopping") == 0


def test_a_node_over_the_limit_is_refused_with_1013_and_may_come_back_when_one_leaves() -> None:
    core = make(FakeClock(), node_limit=1)
    assert core.open(1, "edge-1")
    core.take_outputs()
    assert not core.open(2, "edge-2")
    out = core.take_outputs()
    assert out.closes == [Close(2, CLOSE_TRY_AGAIN, "node limit of 1 reached; try again later")]
    assert notices(out) == [("refused", "node/edge-2")]  # for its Event (test_notices.py)
    assert not core.is_connected("edge-2")
    assert core.open(3, "edge-1")  # a reconnect of a connected node is no new node
    core.take_outputs()
    core.lost(3)
    assert core.open(4, "edge-2")


# Frames from the edge.


def test_upstream_messages_are_prefixed_with_the_node_and_counted() -> None:
    core = connected(FakeClock())
    core.receive(CONN, edge_frame("update", "default/podstatus/p"))
    out = core.take_outputs()
    [message] = out.upstream
    assert (message.route.operation, message.route.resource) == (
        "update",
        "node/edge-1/default/podstatus/p",
    )
    assert out.writes == {}
    assert row(core)["received"] == 1


def test_the_empty_message_edgecore_sends_on_connect_is_ignored_and_counted() -> None:
    core = connected(FakeClock())
    core.receive(CONN, EMPTY_MESSAGE)
    out = core.take_outputs()
    assert (out.upstream, out.writes, out.closes) == ([], {}, [])
    assert (row(core)["ignored"], row(core)["decode_failed"]) == (1, 0)
    core.receive(CONN, b"not json")
    assert core.take_outputs().upstream == []
    assert (row(core)["ignored"], row(core)["decode_failed"]) == (1, 1)


def test_a_message_with_an_unknown_operation_is_rejected_with_a_400_reply() -> None:
    core = connected(FakeClock())
    data = edge_frame("frobnicate", "default/podstatus/p")
    core.receive(CONN, data)
    out = core.take_outputs()
    assert out.upstream == []
    [reply] = written(out)
    assert reply.parent_msg_id == codec.decode(data).msg_id
    assert reply.content["ErrStatus"]["code"] == 400  # type: ignore[call-overload,index]
    assert row(core)["rejected"] == 1


@pytest.mark.parametrize(
    ("rate", "pause"),
    [
        pytest.param(1.0, 0.1, id="a slow rate: the pause is capped"),
        pytest.param(40.0, 0.025, id="until the next token"),
    ],
)
def test_upstream_over_the_rate_limit_gets_a_429_reply_and_a_read_pause(
    rate: float, pause: float
) -> None:
    clock = FakeClock()
    core = connected(clock, rate=rate, burst=2)
    frames = [edge_frame("update", f"default/podstatus/p{i}") for i in range(3)]
    for data in frames[:2]:
        core.receive(CONN, data)
        assert core.read_delay(CONN) == 0.0
    core.receive(CONN, frames[2])
    out = core.take_outputs()
    assert [m.route.resource for m in out.upstream] == [
        "node/edge-1/default/podstatus/p0",
        "node/edge-1/default/podstatus/p1",
    ]
    [reply] = written(out)
    route = reply.route
    assert (route.source, route.group, route.operation) == ("cloudhub", "resource", "response")
    assert route.resource == "default/podstatus/p2"  # as the edge named it
    assert reply.parent_msg_id == codec.decode(frames[2]).msg_id
    assert reply.content["ErrStatus"]["code"] == 429  # type: ignore[call-overload,index]
    assert core.read_delay(CONN) == pytest.approx(pause)
    assert core.read_delay(CONN) == 0.0  # one pause per refused frame
    assert (row(core)["rate_limited"], row(core)["throttled"]) == (1, 1)
    clock.advance(1.0)  # a token again
    core.receive(CONN, frames[2])
    assert [m.route.resource for m in core.take_outputs().upstream] == [
        "node/edge-1/default/podstatus/p2"
    ]


def test_an_event_over_the_rate_limit_is_dropped_without_a_reply() -> None:
    core = connected(FakeClock(), rate=1.0, burst=1)
    core.receive(CONN, edge_frame("update", "default/podstatus/p"))
    core.take_outputs()
    core.receive(CONN, edge_frame("insert", "default/event/e"))
    out = core.take_outputs()
    assert (out.upstream, out.writes) == ([], {})
    assert row(core)["rate_limited"] == 1


# Delivery: resends, backoff and the window.


def test_an_unacked_message_is_resent_with_backoff_until_acked() -> None:
    clock = FakeClock()
    core = connected(clock, retry=RetryPolicy(initial=1.0, factor=2.0, maximum=3.0))
    core.downstream(pod("a", 1))
    [first] = pumped(core)
    resent_after: list[float] = []
    start = clock.now
    for _ in range(4):
        deadline = core.next_deadline()
        assert deadline is not None
        clock.advance(deadline - 0.25 - clock.now)
        assert pumped(core) == []  # not yet
        clock.advance(0.25)
        assert clock.now == deadline
        [again] = pumped(core)
        assert again.msg_id == first.msg_id
        resent_after.append(clock.now - start)
        start = clock.now
    assert resent_after == [1.0, 2.0, 3.0, 3.0]  # initial, doubled, capped
    assert row(core)["resends"] == 4
    ack(core, first)
    assert row(core)["in_flight"] == 0
    clock.advance(100.0)
    assert pumped(core) == []
    assert row(core)["resends"] == 4


def test_an_error_reply_from_the_edge_resends_after_the_backoff_from_then() -> None:
    clock = FakeClock()
    core = connected(clock, retry=RetryPolicy(initial=1.0, factor=2.0, maximum=3.0))
    core.downstream(pod("a", 1))
    [first] = pumped(core)
    clock.advance(0.5)
    core.receive(CONN, codec.encode(first.error_reply("store failed")))
    assert core.take_outputs().upstream == []  # the error is the cloud's, not edgecontroller's
    clock.advance(0.5)  # the first deadline: moved by the error reply
    assert pumped(core) == []
    clock.advance(0.5)
    [again] = pumped(core)
    assert again.msg_id == first.msg_id


def test_at_most_window_messages_are_unacked_at_once() -> None:
    core = connected(FakeClock(), window=2)
    for i in range(5):
        core.downstream(pod(f"p{i}", 1))
    unacked = pumped(core)
    assert [m.route.resource for m in unacked] == ["default/pod/p0", "default/pod/p1"]
    assert (row(core)["in_flight"], row(core)["queued"]) == (2, 3)
    assert pumped(core) == []  # the window is full
    delivered = [m.route.resource for m in unacked]
    while unacked:
        ack(core, unacked.pop(0))
        more = pumped(core)
        unacked += more
        delivered += [m.route.resource for m in more]
        assert len(unacked) <= 2
    assert delivered == [f"default/pod/p{i}" for i in range(5)]


def test_a_pump_writes_at_most_its_budget_and_says_there_is_more() -> None:
    core = connected(FakeClock(), pump_budget=3)
    for i in range(5):
        core.downstream(pod(f"p{i}", 1))
    assert len(pumped(core)) == 3
    assert core.more
    assert len(pumped(core)) == 2
    assert not core.more


def test_a_message_whose_resource_names_no_node_is_dropped() -> None:
    core = connected(FakeClock())
    core.downstream(Message.new(operation="update", resource="default/pod/p", content={}))
    assert pumped(core) == []
    assert core.peek(NODE, 10) == []


# Resync (contract item 5).


def test_resynced_deletes_what_the_node_was_sent_and_should_no_longer_have() -> None:
    core = connected(FakeClock())
    for name in ("a", "b", "c"):
        core.downstream(pod(name, 1))
    for delivered in pumped(core):
        ack(core, delivered)
    core.lost(CONN)
    assert core.open(2, NODE)
    assert ("resync", "node/edge-1") in notices(core.take_outputs())
    core.downstream(pod("a", 1))  # edgecontroller's answer: what the node has already
    core.downstream(pod("c", 1))
    core.downstream(resynced(["uid-a", "uid-c"]))
    core.pump()
    out = core.take_outputs()
    assert out.syncs == [objects.Deleting(NODE, pod_ref("b"))]
    [delete] = written(out, conn=2)  # a and c were acked at that version: not sent again
    assert (delete.route.source, delete.route.operation, delete.route.resource) == (
        "cloudhub",
        "delete",
        "default/pod/b",
    )
    assert delete.content == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "b", "uid": "uid-b", "namespace": "default"},
    }
    assert ack(core, delete, conn=2).syncs == [objects.Forget(NODE, pod_ref("b"))]
    core.downstream(resynced(["uid-a", "uid-c"]))  # b is gone for good
    core.pump()
    out = core.take_outputs()
    assert (out.writes, out.syncs) == ({}, [])


def test_resynced_without_a_list_of_uids_is_ignored() -> None:
    core = connected(FakeClock())
    core.downstream(pod("a", 1))
    ack(core, pumped(core)[0])
    core.downstream(resynced("everything"))
    core.pump()
    out = core.take_outputs()
    assert (out.writes, out.syncs) == ({}, [])


def test_a_full_queue_owes_a_resync_which_is_asked_for_once_it_has_drained() -> None:
    core = connected(FakeClock(), window=1, max_objects=4)
    for i in range(5):
        core.downstream(pod(f"p{i}", 1))  # the fifth is refused: the queue is full
    assert core.peek(NODE, 10)[-1].route.resource == "node/edge-1/default/pod/p3"
    assert row(core)["needs_resync"] is True
    seen: list[tuple[int, int]] = []  # (depth at the tick, resync requests it made)
    for _ in range(6):
        depth = len(core.peek(NODE, 10))
        core.tick()  # then delivers the next one (the window is 1)
        out = core.take_outputs()
        seen.append((depth, notices(out).count(("resync", "node/edge-1"))))
        for delivered in written(out):
            ack(core, delivered)
    assert seen == [(4, 0), (3, 0), (2, 0), (1, 1), (0, 0), (0, 0)]
    assert row(core)["needs_resync"] is False


def test_a_full_queue_of_one_object_still_gets_its_resync() -> None:
    """max_objects=1 (the least the settings allow): half of it rounds down to 0, and a
    queue never holds fewer than 0 objects. The resync was owed for good (fixed)."""
    core = connected(FakeClock(), window=1, max_objects=1)
    core.downstream(pod("a", 1))
    core.downstream(pod("b", 1))  # refused: the queue is full
    core.tick()
    out = core.take_outputs()
    assert notices(out) == [("behind", "node/edge-1")]  # no resync yet (test_notices.py)
    [delivered] = written(out)
    ack(core, delivered)
    core.tick()
    assert notices(core.take_outputs()) == [("resync", "node/edge-1")]


def test_an_owed_resync_waits_for_the_node_to_be_connected() -> None:
    core = connected(FakeClock(), max_objects=2)
    for _ in range(3):
        core.downstream(lease())  # the third is refused: two wait
    assert row(core)["needs_resync"] is True
    assert len(pumped(core)) == 2  # sent once, never acked: the queue is empty now
    core.lost(CONN)
    core.take_outputs()
    core.tick()
    assert notices(core.take_outputs()) == []  # owed, but nobody to ask for
    assert core.open(2, NODE)
    assert notices(core.take_outputs()) == [("connected", "node/edge-1"), ("resync", "node/edge-1")]


# Node deletion.


def test_a_deleted_node_loses_its_session_queue_and_records() -> None:
    core = connected(FakeClock(), window=1)
    core.downstream(pod("a", 1))
    ack(core, pumped(core)[0])
    core.downstream(pod("b", 1))
    core.downstream(pod("c", 1))
    core.take_outputs()
    core.downstream(node_deleted())
    out = core.take_outputs()
    assert out.closes == [Close(CONN, CLOSE_NORMAL, "the node was deleted")]
    assert notices(out) == [("disconnected", "node/edge-1")]
    assert sorted(out.syncs, key=lambda op: op.ref.uid) == [
        objects.Forget(NODE, pod_ref(name)) for name in ("a", "b", "c")
    ]
    assert core.peek(NODE, 10) == []
    assert [r["node"] for r in core.nodes()] == []
    core.receive(CONN, edge_frame("update", "default/podstatus/p"))
    assert core.take_outputs().upstream == []


def test_a_delete_of_another_node_object_on_the_node_is_only_delivered() -> None:
    core = connected(FakeClock())
    other = Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation="delete",
        resource=contract.build_resource(NODE, "", contract.NODE, "edge-2"),
        content={"metadata": {"name": "edge-2", "uid": "other-uid"}},
    )  # fmt: skip
    core.downstream(other)
    out = core.take_outputs()
    assert out.closes == []
    assert [m.route.resource for m in pumped(core)] == ["null/node/edge-2"]
    assert core.is_connected(NODE)


# The Node echo filter (modules/cloudhub/echo.py).


def test_a_node_update_that_changes_only_status_is_not_sent_back_to_its_node() -> None:
    core = connected(FakeClock())
    core.downstream(node_object(10))
    [sent] = pumped(core)
    assert sent.route.resource == "null/node/edge-1"
    ack(core, sent)
    core.downstream(node_object(12, ready="Unknown"))  # the edge's own status report
    assert pumped(core) == []
    assert core.peek(NODE, 10) == []
    core.downstream(node_object(13, zone="b"))  # a label changed: the edge needs it
    [changed] = pumped(core)
    assert changed.header.resource_version == "13"


def test_a_node_update_is_sent_while_the_node_has_not_acked_a_version() -> None:
    core = connected(FakeClock())
    core.downstream(node_object(10))
    pumped(core)  # in flight, never acked
    core.downstream(node_object(12, ready="Unknown"))
    assert [m.header.resource_version for m in core.peek(NODE, 10)] == ["12"]


# ObjectSync ops.


def test_objectsync_ops_follow_an_object_from_first_send_to_acked_delete() -> None:
    core = connected(FakeClock())
    core.downstream(pod("a", 1, operation="insert"))
    assert core.take_outputs().syncs == [objects.Ensure(NODE, pod_ref("a"))]
    [insert] = pumped(core)
    assert ack(core, insert).syncs == [objects.Acked(NODE, pod_ref("a"), 1)]
    core.downstream(pod("a", 2))  # known: no record to write
    assert core.take_outputs().syncs == []
    [update] = pumped(core)
    assert ack(core, update).syncs == [objects.Acked(NODE, pod_ref("a"), 2)]
    core.downstream(pod("a", 3, operation="delete"))
    assert core.take_outputs().syncs == [objects.Deleting(NODE, pod_ref("a"))]
    [delete] = pumped(core)
    assert ack(core, delete).syncs == [objects.Forget(NODE, pod_ref("a"))]
    assert row(core)["objects"] == 0


def test_messages_that_need_no_ack_write_no_records() -> None:
    core = connected(FakeClock())
    request = Message.new(operation="query", resource="node/edge-1/default/configmap/c")
    reply = request.reply({"metadata": {"uid": "cm-uid", "name": "c"}})  # to an edge query
    core.downstream(reply)
    core.downstream(lease())
    core.pump()
    out = core.take_outputs()
    assert len(written(out)) == 2
    assert out.syncs == []
    assert row(core)["objects"] == 0


def test_restored_records_seed_what_the_node_has() -> None:
    clock = FakeClock()
    core = make(clock)
    restored = [
        objects.Restored(NODE, pod_ref("a"), 5),  # acked at 5
        objects.Restored(NODE, pod_ref("b"), None),  # sent, never acked
    ]
    assert core.restore(restored) == 2
    assert core.open(CONN, NODE)
    core.take_outputs()
    core.downstream(pod("a", 5))  # the node has it
    core.downstream(pod("b", 1))  # known: sent again, no new record
    core.downstream(resynced(["uid-b"]))
    core.pump()
    out = core.take_outputs()
    assert [(m.route.operation, m.route.resource) for m in written(out)] == [
        ("update", "default/pod/b"),
        ("delete", "default/pod/a"),
    ]
    assert out.syncs == [objects.Deleting(NODE, pod_ref("a"))]


# Rows for `beehive debug nodes`.


def test_nodes_shows_counters_and_rates_sampled_on_tick() -> None:
    clock = FakeClock()
    core = connected(clock)
    core.tick()  # first sample
    for i in range(4):
        core.downstream(pod(f"p{i}", 1))
    for delivered in pumped(core):
        ack(core, delivered)
    core.receive(CONN, edge_frame("update", "default/podstatus/p"))
    clock.advance(2.0)
    core.tick()
    found = row(core)
    assert (found["connected"], found["sent"], found["acked"], found["in_flight"]) == (
        True,
        4,
        4,
        0,
    )
    assert found["rate_down"] == 2.0  # 4 messages in 2 s
    assert found["rate_up"] == 0.5
    assert found["last_ack_age"] == 2.0
    core.lost(CONN)
    assert row(core)["connected"] is False
