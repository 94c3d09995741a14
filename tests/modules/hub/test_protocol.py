"""HubProtocol driven directly: feed frames and clock ticks, check frames and events."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beehive import codec
from beehive.message import OK, JsonValue, Message
from modules import replies
from modules.hub import errors, events
from modules.hub.protocol import HubProtocol, KeepaliveSettings, Side, State, ack_for, is_ack
from tests.fakes import FakeClock


def make(side: Side, clock: FakeClock | None = None, **kwargs: object) -> HubProtocol:
    return HubProtocol(side=side, node_id="edge-1", clock=clock or FakeClock(), **kwargs)  # type: ignore[arg-type]


def frame(
    operation: str = "update", resource: str = "default/pod/nginx", content: JsonValue = None
) -> bytes:
    message = Message.new(
        source="edgecontroller",
        group="resource",
        operation=operation,
        resource=resource,
        content=content if content is not None else {"kind": "Pod"},
    )
    return codec.encode(message)


def sent(proto: HubProtocol) -> list[Message]:
    return [codec.decode(data) for data in proto.data_to_send()]


def test_cloud_prefixes_the_node_on_messages_coming_up() -> None:
    proto = make(Side.CLOUD)
    proto.receive_data(frame("update", "default/podstatus/nginx"))
    [event] = proto.events_received()
    assert isinstance(event, events.MessageReceived)
    assert event.message.route.resource == "node/edge-1/default/podstatus/nginx"


def test_cloud_trims_the_node_from_messages_going_down() -> None:
    proto = make(Side.CLOUD)
    proto.send(Message.new(operation="insert", resource="node/edge-1/default/pod/nginx"))
    [message] = sent(proto)
    assert message.route.resource == "default/pod/nginx"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        pytest.param("node/edge-1/null/node/edge-1", "null/node/edge-1", id="cluster scoped node"),
        pytest.param("k8s/ca.crt", "k8s/ca.crt", id="no node prefix goes out unchanged"),
        pytest.param("node/edge-1", "node/edge-1", id="bare node resource is not trimmed"),
    ],
)
def test_trimming_follows_kubeedge_trim_message(resource: str, expected: str) -> None:
    proto = make(Side.CLOUD)
    proto.send(Message.new(operation="update", resource=resource))
    assert sent(proto)[0].route.resource == expected


def test_sending_another_nodes_resource_raises() -> None:
    proto = make(Side.CLOUD)
    with pytest.raises(errors.WrongNodeError, match="edge-2"):
        proto.send(Message.new(operation="update", resource="node/edge-2/default/pod/x"))


def test_edge_sends_resources_unchanged() -> None:
    proto = make(Side.EDGE)
    proto.send(Message.new(operation="update", resource="node/edge-9/x/y"))
    assert sent(proto)[0].route.resource == "node/edge-9/x/y"


def test_a_sync_message_goes_out_async() -> None:
    proto = make(Side.EDGE)
    proto.send(
        Message.new(operation="query", resource="default/configmap/c").with_header(sync=True)
    )
    assert sent(proto)[0].header.sync is False


def test_edge_acks_with_ok_response_keeping_the_route() -> None:
    proto = make(Side.EDGE)
    proto.receive_data(frame("insert"))
    [event] = proto.events_received()
    assert isinstance(event, events.MessageReceived)
    proto.send_ack(event.message)
    [ack] = sent(proto)
    assert ack.route.operation == "response"
    assert ack.parent_msg_id == event.message.msg_id
    assert ack.content == OK
    assert (ack.route.source, ack.route.group, ack.route.resource) == (
        "edgecontroller",
        "resource",
        "default/pod/nginx",
    )
    assert is_ack(ack)


def test_cloud_recognizes_any_response_as_an_ack_of_its_parent() -> None:
    proto = make(Side.CLOUD)
    delivered = Message.new(operation="update", resource="default/pod/nginx")
    proto.receive_data(codec.encode(ack_for(delivered)))
    [event] = proto.events_received()
    assert isinstance(event, events.AckReceived)
    assert event.msg_id == delivered.msg_id


def test_cloud_reports_an_error_reply_by_its_parent() -> None:
    proto = make(Side.CLOUD)
    delivered = Message.new(operation="update", resource="default/pod/nginx")
    proto.receive_data(codec.encode(delivered.error_reply("disk full")))
    [event] = proto.events_received()
    assert isinstance(event, events.ErrorReceived)
    assert event.msg_id == delivered.msg_id


def test_edge_delivers_a_response_as_a_message_for_its_waiting_query() -> None:
    proto = make(Side.EDGE)
    query = Message.new(operation="query", resource="default/configmap/c")
    proto.receive_data(codec.encode(query.reply({"kind": "ConfigMap"})))
    [event] = proto.events_received()
    assert isinstance(event, events.MessageReceived)
    assert event.message.parent_msg_id == query.msg_id


@pytest.mark.parametrize("side", [Side.CLOUD, Side.EDGE])
@pytest.mark.parametrize("operation", ["ping", "pong", "config"])
def test_reserved_operations_are_answered_with_ack_and_never_delivered(
    side: Side, operation: str
) -> None:
    proto = make(side)
    request = frame(operation, "default/x/y")
    proto.receive_data(request)
    assert proto.events_received() == []
    [reply] = sent(proto)
    assert reply.route.operation == "response"
    assert reply.content == "ack"
    assert reply.parent_msg_id == codec.decode(request).msg_id
    assert reply.route.resource == "default/x/y"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame() + b"\n", id="binary frame with trailing newline"),
        pytest.param(frame().decode(), id="text frame"),
        pytest.param(frame().decode() + "\r\n", id="text frame with CRLF"),
        pytest.param(bytearray(frame()), id="bytearray"),
    ],
)
def test_text_and_binary_frames_are_accepted(data: bytes | str) -> None:
    proto = make(Side.EDGE)
    proto.receive_data(data)
    assert [type(e) for e in proto.events_received()] == [events.MessageReceived]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"not json", "not JSON", id="not json"),
        pytest.param(b"\xff\xfe", "not UTF-8", id="not utf-8"),
        pytest.param(b"[1, 2]", "expected a JSON object", id="array instead of object"),
        pytest.param(b'{"route": {}}', "header", id="no header"),
        pytest.param(b'{"header": {"msg_id": 5}}', "header.msg_id", id="msg id not a string"),
        pytest.param(
            b'{"header": {"msg_id": "a"}, "route": {"operation": 1}}',
            "route.operation",
            id="operation not a string",
        ),
        pytest.param(b"", "not JSON", id="empty frame"),
    ],
)
def test_malformed_frames_give_a_decode_error_with_reason_and_excerpt(
    data: bytes, reason: str
) -> None:
    proto = make(Side.CLOUD)
    proto.receive_data(data)
    [event] = proto.events_received()
    assert isinstance(event, events.DecodeFailed)
    assert reason in event.reason
    assert event.excerpt
    assert proto.data_to_send() == []
    assert proto.state is State.OPEN


def test_a_frame_over_the_size_limit_is_refused_undecoded() -> None:
    proto = make(Side.CLOUD, max_frame_size=100)
    proto.receive_data(b"{" + b" " * 200 + b"}")
    [event] = proto.events_received()
    assert isinstance(event, events.DecodeFailed)
    assert "over the limit of 100" in event.reason
    assert len(event.excerpt) < 300


@pytest.mark.parametrize(
    ("side", "data", "reason"),
    [
        pytest.param(Side.CLOUD, frame("frobnicate"), "unknown operation", id="unknown op"),
        pytest.param(Side.EDGE, frame("frobnicate"), "unknown operation", id="unknown op at edge"),
        pytest.param(Side.CLOUD, frame(""), "operation is missing", id="missing op"),
        pytest.param(
            Side.CLOUD,
            frame("update", "node/edge-2/default/pod/x"),
            "names another node",
            id="resource of another node",
        ),
        pytest.param(
            Side.CLOUD,
            frame("response"),
            "without header.parent_msg_id",
            id="response without parent",
        ),
    ],
)
def test_refused_messages_get_an_error_reply_naming_the_reason(
    side: Side, data: bytes, reason: str
) -> None:
    proto = make(side)
    proto.receive_data(data)
    [event] = proto.events_received()
    assert isinstance(event, events.MessageRejected)
    assert reason in event.reason
    [reply] = sent(proto)
    assert reply.parent_msg_id == event.msg_id == codec.decode(data).msg_id
    assert reason in (replies.error_text(reply) or "")
    if side is Side.EDGE:
        assert reply.route.operation == "error"
    else:  # as cloudcore answers, so that edgecore hands it to the caller
        assert (reply.route.group, reply.route.operation) == ("resource", "response")
        assert reply.content["ErrStatus"]["code"] == 400  # type: ignore[call-overload,index]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}\n',
                     id="go zero message"),
        pytest.param(b'{"header":{},"route":{}}', id="no fields"),
    ],
)  # fmt: skip
def test_an_empty_message_as_edgecore_sends_on_connect_is_ignored_quietly(data: bytes) -> None:
    proto = make(Side.CLOUD)
    proto.receive_data(data)
    assert [type(e) for e in proto.events_received()] == [events.MessageIgnored]
    assert proto.data_to_send() == []
    proto.receive_data(b'{"header":{"msg_id":""},"route":{"operation":"x"}}')  # not empty
    assert [type(e) for e in proto.events_received()] == [events.DecodeFailed]


def test_an_error_without_parent_is_refused_but_not_answered() -> None:
    proto = make(Side.CLOUD)
    proto.receive_data(frame("error", content="boom"))
    assert [type(e) for e in proto.events_received()] == [events.MessageRejected]
    assert proto.data_to_send() == []


def test_edge_sends_a_keepalive_at_once_and_then_every_interval() -> None:
    clock = FakeClock()
    proto = make(Side.EDGE, clock)
    proto.check_timers()
    [keepalive] = sent(proto)
    route = keepalive.route
    assert (route.source, route.group, route.operation, route.resource) == (
        "websocket",
        "resource",
        "keepalive",
        "node",
    )
    assert keepalive.content == "ping"
    assert proto.next_deadline() == clock.now + 15
    clock.advance(14.9)
    proto.check_timers()
    assert proto.data_to_send() == []
    clock.advance(0.1)
    proto.check_timers()
    assert len(proto.data_to_send()) == 1
    assert [type(e) for e in proto.events_received()] == [events.KeepaliveDue] * 2


def test_the_keepalive_interval_is_configurable() -> None:
    clock = FakeClock()
    proto = make(Side.EDGE, clock, keepalive=KeepaliveSettings(interval=2.0))
    proto.check_timers()
    clock.advance(2.0)
    proto.check_timers()
    assert len(proto.data_to_send()) == 2


def test_cloud_ends_a_session_silent_for_the_timeout() -> None:
    clock = FakeClock()
    proto = make(Side.CLOUD, clock)
    clock.advance(29.9)
    proto.check_timers()
    assert proto.events_received() == []
    clock.advance(0.1)
    proto.check_timers()
    [event] = proto.events_received()
    assert isinstance(event, events.SessionTimedOut)
    assert event.idle == pytest.approx(30.0)
    assert proto.state is State.CLOSED
    assert proto.next_deadline() is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            codec.encode(Message.new(operation="keepalive", resource="node", content="ping")),
            id="keepalive",
        ),
        pytest.param(frame("update", "default/podstatus/p"), id="any message"),
        pytest.param(b"garbage", id="even a bad frame"),
    ],
)
def test_any_frame_from_the_edge_keeps_the_session_alive(data: bytes) -> None:
    clock = FakeClock()
    proto = make(Side.CLOUD, clock, keepalive=KeepaliveSettings(timeout=5.0))
    clock.advance(4)
    proto.receive_data(data)
    clock.advance(4)
    proto.check_timers()
    assert proto.state is State.OPEN
    assert proto.next_deadline() == clock.now + 1


def test_keepalives_are_reported_but_not_delivered_as_messages() -> None:
    clock = FakeClock()
    proto = make(Side.CLOUD, clock)
    proto.receive_data(codec.encode(Message.new(operation="keepalive", content="ping")))
    assert proto.events_received() == [events.KeepaliveReceived(clock.now)]
    assert proto.data_to_send() == []


def test_end_of_stream_closes_and_later_frames_are_ignored() -> None:
    proto = make(Side.CLOUD)
    proto.receive_eof()
    proto.receive_eof()
    assert [type(e) for e in proto.events_received()] == [events.ConnectionClosed]
    proto.receive_data(frame())
    proto.check_timers()
    assert proto.events_received() == []


def test_sending_on_a_closed_session_raises() -> None:
    proto = make(Side.EDGE)
    proto.close()
    with pytest.raises(errors.SessionClosedError, match="edge-1"):
        proto.send(Message.new(operation="update"))


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"interval": 0}, id="zero interval"),
        pytest.param({"timeout": -1}, id="negative timeout"),
    ],
)
def test_keepalive_settings_must_be_positive(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        KeepaliveSettings(**settings)


def test_frames_are_compact_json_with_kubeedge_keys() -> None:
    proto = make(Side.CLOUD)
    proto.send(
        Message.new(
            source="edgecontroller",
            group="resource",
            operation="insert",
            resource="node/edge-1/default/pod/nginx",
            resource_version="4711",
        )
    )
    doc = json.loads(proto.data_to_send()[0])
    assert doc["header"]["resourceversion"] == "4711"
    assert doc["route"]["resource"] == "default/pod/nginx"


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_input_yields_events_and_never_raises(data: bytes | str) -> None:
    proto = make(Side.CLOUD)
    proto.receive_data(data)
    assert len(proto.events_received()) <= 1


@pytest.mark.parametrize(
    "delivered",
    [
        pytest.param(
            Message.new(source="edgecontroller", group="resource", operation="update",
                        resource="default/pod/nginx", content={"a": 1}),
            id="an object update",
        ),
        pytest.param(
            Message.new(operation="update", resource='ns/pod/"quoted"\\name\u00e9\u2028'),
            id="a resource with quotes, backslashes and non-ASCII",
        ),
        pytest.param(Message.new(), id="an empty route"),
        pytest.param(
            Message.new(operation="update", resource="ns/pod/\ud800"),
            id="a resource with a lone surrogate (decoded from an escape)",
        ),
    ],
)  # fmt: skip
def test_the_edge_writes_the_ack_frame_as_the_codec_writes_the_ack(delivered: Message) -> None:
    proto = make(Side.EDGE)
    proto.ack(delivered)
    [frame] = proto.data_to_send()
    sent = codec.decode(frame)
    expected = ack_for(delivered)
    assert sent.header.msg_id and sent.header.msg_id != delivered.msg_id
    same = expected.with_header(msg_id=sent.header.msg_id, timestamp=sent.header.timestamp)
    assert frame == codec.encode(same)
