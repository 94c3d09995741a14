"""The message model: ids, timestamps, replies."""

from __future__ import annotations

import time
import uuid

from beehive import OK, Message, Operation
from beehive.message import Header, Route


def test_new_messages_get_a_uuid4_and_a_millisecond_timestamp() -> None:
    before = time.time_ns() // 1_000_000
    message = Message.new(source="a", operation=Operation.INSERT, resource="default/pod/x")
    assert uuid.UUID(message.msg_id).version == 4
    assert before <= message.header.timestamp <= time.time_ns() // 1_000_000
    assert message.route.operation == "insert"


def test_reply_sets_parent_id_and_keeps_source_group_and_resource() -> None:
    request = Message.new(
        source="edgecontroller",
        destination="cloudhub",
        group="resource",
        operation="query",
        resource="r",
    )
    reply = request.reply(OK)
    assert reply.parent_msg_id == request.msg_id and reply.msg_id != request.msg_id
    assert (reply.route.source, reply.route.group, reply.route.resource) == (
        "edgecontroller",
        "resource",
        "r",
    )
    assert (
        reply.route.operation == "response"
        and reply.route.destination == ""
        and reply.content == "OK"
    )


def test_error_reply_carries_the_text_with_operation_error() -> None:
    reply = Message.new(operation="query").error_reply("not allowed")
    assert (reply.route.operation, reply.content) == ("error", "not allowed")


def test_with_header_and_with_route_copy_without_changing_the_original() -> None:
    message = Message.new(resource="node/n1/default/pod/p")
    synced = message.with_header(sync=True)
    trimmed = message.with_route(resource="default/pod/p")
    assert synced.header.sync and not message.header.sync
    assert trimmed.route.resource == "default/pod/p" and message.route.resource.startswith("node/")


def test_message_ids_are_distinct_version_4_uuids() -> None:
    ids = {Message.new().msg_id for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_new_builds_the_same_named_tuples_as_their_constructors() -> None:
    message = Message.new(
        source="s",
        destination="d",
        group="g",
        operation="o",
        resource="r",
        content={"k": 1},
        resource_version="7",
        parent_msg_id="p",
    )
    h = message.header
    assert h == Header(h.msg_id, "p", h.timestamp, "7") and type(h) is Header
    assert message.route == Route("s", "d", "g", "o", "r") and type(message.route) is Route
    assert message == Message(h, message.route, {"k": 1}) and type(message) is Message
