"""The codec: KubeEdge's JSON keys, strict decoding, round trips."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beehive import Header, Message, MessageDecodeError, MessageEncodeError, Route, codec

# Integers as Go reads them: beyond 64 bits a JSON number is a float (see
# test_an_integer_beyond_64_bits_is_read_as_a_float), so a round trip keeps ints in range.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
headers = st.builds(
    Header,
    msg_id=st.text(min_size=1),
    parent_msg_id=st.text(),
    timestamp=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    resource_version=st.text(),
    sync=st.booleans(),
    msg_type=st.text(),
)
routes = st.builds(Route, st.text(), st.text(), st.text(), st.text(), st.text())
messages = st.builds(Message, headers, routes, json_values)


@given(messages)
def test_any_message_round_trips(message: Message) -> None:
    assert codec.decode(codec.encode(message)) == message


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_the_documented_error(raw: bytes) -> None:
    with contextlib.suppress(MessageDecodeError):
        assert isinstance(codec.decode(raw), Message)


@given(st.text(max_size=300))
def test_arbitrary_text_decodes_or_raises_the_documented_error(raw: str) -> None:
    with contextlib.suppress(MessageDecodeError):
        assert isinstance(codec.decode(raw), Message)


def test_encoding_uses_kubeedge_key_names_and_omits_empty_fields() -> None:
    message = Message(
        Header(msg_id="id-1", timestamp=1700000000000, resource_version="4711"),
        Route(
            source="edgecontroller",
            group="resource",
            operation="insert",
            resource="default/pod/nginx",
        ),
        {"kind": "Pod"},
    )
    assert json.loads(codec.encode(message)) == {
        "header": {"msg_id": "id-1", "timestamp": 1700000000000, "resourceversion": "4711"},
        "route": {
            "source": "edgecontroller",
            "group": "resource",
            "operation": "insert",
            "resource": "default/pod/nginx",
        },
        "content": {"kind": "Pod"},
    }


def test_all_header_keys_are_written_when_set() -> None:
    message = Message(Header("a", "b", 5, "7", True, "channel"), Route(destination="x"), None)
    doc = json.loads(codec.encode(message))
    assert doc["header"] == {
        "msg_id": "a",
        "parent_msg_id": "b",
        "timestamp": 5,
        "resourceversion": "7",
        "sync": True,
        "type": "channel",
    }
    assert doc["route"] == {"destination": "x"} and doc["content"] is None


def test_a_kubeedge_ack_frame_decodes() -> None:
    frame = (
        b'{"header":{"msg_id":"u2","parent_msg_id":"u1","timestamp":1700000000001},'
        b'"route":{"source":"edgecontroller","group":"resource","operation":"response",'
        b'"resource":"default/pod/nginx"},"content":"OK"}\n'
    )
    ack = codec.decode(frame)
    assert (ack.parent_msg_id, ack.route.operation, ack.content) == ("u1", "response", "OK")


def test_unknown_keys_and_nulls_are_tolerated_as_go_does() -> None:
    frame = (
        '{"header":{"msg_id":"x","timestamp":null,"extra":1},"route":null,"content":[1],"more":{}}'
    )
    message = codec.decode(frame)
    assert (
        message.header == Header(msg_id="x") and message.route == Route() and message.content == [1]
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"\xff\xfe", "not UTF-8", id="invalid utf-8"),
        pytest.param(b"{", "not JSON", id="truncated json"),
        pytest.param(b"", "not JSON", id="empty input"),
        pytest.param(b"[1,2]", "expected a JSON object, found an array", id="array at the top"),
        pytest.param(
            b'{"route":{}}', "header: expected an object, found nothing", id="missing header"
        ),
        pytest.param(
            b'{"header":[]}',
            "header: expected an object, found an array",
            id="header not an object",
        ),
        pytest.param(
            b'{"header":{}}',
            "header.msg_id: expected a non-empty string, found null",
            id="missing id",
        ),
        pytest.param(
            b'{"header":{"msg_id":""}}', "header.msg_id: expected a non-empty string", id="empty id"
        ),
        pytest.param(
            b'{"header":{"msg_id":7}}',
            "header.msg_id: expected a non-empty string, found an integer 7",
            id="numeric id",
        ),
        pytest.param(
            b'{"header":{"msg_id":"a","timestamp":"1"}}',
            "header.timestamp: expected a 64-bit integer, found a string '1'",
            id="string timestamp",
        ),
        pytest.param(
            b'{"header":{"msg_id":"a","timestamp":1.5}}',
            "header.timestamp: expected a 64-bit integer",
            id="fractional timestamp",
        ),
        pytest.param(
            b'{"header":{"msg_id":"a","timestamp":99999999999999999999}}',
            "header.timestamp: expected a 64-bit integer",
            id="timestamp beyond int64",
        ),
        pytest.param(
            b'{"header":{"msg_id":"a","sync":"yes"}}',
            "header.sync: expected a boolean, found a string 'yes'",
            id="string sync",
        ),
        pytest.param(
            b'{"header":{"msg_id":"a","resourceversion":12}}',
            "header.resourceversion: expected a string, found an integer 12",
            id="numeric resourceversion",
        ),
        pytest.param(
            b'{"header":{"msg_id":"a"},"route":{"operation":1}}',
            "route.operation: expected a string, found an integer 1",
            id="numeric operation",
        ),
        pytest.param(
            b'{"header":{"msg_id":"a"},"route":"x"}',
            "route: expected an object, found a string 'x'",
            id="route not an object",
        ),
        pytest.param(b'{"header":{"msg_id":"a"},"content":NaN}', "not JSON", id="NaN content"),
        pytest.param(b"[" * 100000, "not JSON", id="nesting too deep"),
    ],
)
def test_bad_input_raises_one_clear_error(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageDecodeError) as info:
        codec.decode(raw)
    assert reason in str(info.value)
    assert "input: " in str(info.value)


def test_the_error_excerpt_is_bounded() -> None:
    with pytest.raises(MessageDecodeError) as info:
        codec.decode(b"x" * 10_000)
    assert len(info.value.excerpt) < 300 and info.value.excerpt.endswith("...")


def test_content_that_is_not_json_cannot_be_encoded() -> None:
    message = Message.new(content=float("nan"))
    with pytest.raises(MessageEncodeError, match=message.msg_id):
        codec.encode(message)


@pytest.mark.parametrize(
    "content",
    [[1, float("inf")], {"a": {"b": float("-inf")}}, {"x": float("nan")}],
    ids=["in a list", "in an object", "NaN"],
)
def test_infinities_anywhere_in_the_content_cannot_be_encoded(content: object) -> None:
    with pytest.raises(MessageEncodeError):
        codec.encode(Message.new(content=content))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content",
    [{"a": None, "b": [None, 1]}, 2**70, {"big": -(2**64)}, "text with :null in it"],
    ids=["nulls", "an int over 64 bits", "a big negative int", "null in a string"],
)
def test_content_the_fast_encoder_cannot_decide_alone_is_written_as_the_standard_library_does(
    content: object,
) -> None:
    message = Message.new(content=content)  # type: ignore[arg-type]
    raw = codec.encode(message)
    assert (
        raw
        == json.dumps(codec.to_json(message), ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert codec.decode(raw) == message


def test_a_lone_surrogate_decoded_from_an_escape_is_encoded_as_an_escape_again() -> None:
    raw = r'{"header":{"msg_id":"m"},"route":{"resource":"ns/pod/a\ud800"},"content":"\udfff"}'
    message = codec.decode(raw)
    assert message.route.resource == "ns/pod/a\ud800" and message.content == "\udfff"
    again = codec.encode(message)
    assert b"\\ud800" in again and codec.decode(again) == message


def test_text_the_fast_decoder_refuses_is_decoded_as_the_standard_library_does() -> None:
    # A lone surrogate escape and an int over 64 bits: JSON the standard library reads.
    raw = r'{"header":{"msg_id":"m"},"content":["\ud800",123456789012345678901234567890]}'
    assert codec.decode(raw).content == ["\ud800", 123456789012345678901234567890]


@pytest.mark.parametrize(
    "doc",
    [
        {"header": {"msg_id": "a", "timestamp": 1}, "route": {"operation": "x"}, "content": 1},
        {"header": {"msg_id": "a", "parent_msg_id": None, "sync": None}, "route": None},
        {"header": {"msg_id": "a", "resourceversion": "7", "type": "t", "sync": True}},
        {"header": {"msg_id": "a", "timestamp": True}},
        {"header": {"msg_id": "a", "timestamp": 2**63}},
        {"header": {"msg_id": ""}},
        {"header": {"msg_id": "a"}, "route": {"resource": 5}},
        {"header": {"msg_id": "a"}, "route": []},
        {"header": []},
        [],
    ],
)
def test_the_fast_path_agrees_with_the_field_by_field_checks(doc: object) -> None:
    try:
        expected = codec._checked(doc, b"")
    except MessageDecodeError as exc:
        with pytest.raises(MessageDecodeError, match=re.escape(str(exc))):
            codec.from_json(doc)
    else:
        assert codec.from_json(doc) == expected


def test_an_integer_beyond_64_bits_is_read_as_a_float() -> None:
    message = Message.new(operation="update", content=[-(2**63) - 1, 2**64])
    decoded = codec.decode(codec.encode(message))
    assert decoded.content == [float(-(2**63) - 1), float(2**64)]
