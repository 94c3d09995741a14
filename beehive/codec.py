"""Message <-> JSON bytes, with KubeEdge's key names.

`encode` writes what Go's encoding/json writes for model.Message (key order and
omitempty included), so frames can go to KubeEdge peers. `decode` is strict about
types and never returns a partial message; like Go it ignores unknown keys and
treats ``null`` as the zero value, so frames from KubeEdge peers decode.

JSON text is read and written with orjson (several times faster than the standard
library: every delivery is encoded once and every ack decoded once); what orjson
refuses or could write differently goes through the standard library, whose
answer (or error, with its position) counts.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from beehive import errors
from beehive.message import Header, JsonValue, Message, Route, assemble

_INT64 = (-(2**63), 2**63 - 1)
_HEADER_STR_KEYS = (
    ("parent_msg_id", "parent_msg_id"),
    ("resourceversion", "resource_version"),
    ("type", "msg_type"),
)
_ROUTE_KEYS = Route._fields  # source, destination, group, operation, resource
_NO_ROUTE: dict[str, Any] = {}  # a message without a route (read only)
# Built once: json.dumps/json.loads with options build a new coder per call.
# No circular check (a cycle ends in RecursionError, reported as an encode error): faster.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
)
_ASCII_ENCODER = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, check_circular=False, separators=(",", ":")
)


def to_json(message: Message, resource: str | None = None) -> dict[str, JsonValue]:
    """The JSON object for a message, keys and omissions as KubeEdge writes them.

    `resource`, if given, is written in place of the route's.
    """
    h = message.header
    header: dict[str, JsonValue] = {"msg_id": h.msg_id}
    if h.parent_msg_id:
        header["parent_msg_id"] = h.parent_msg_id
    header["timestamp"] = h.timestamp
    if h.resource_version:
        header["resourceversion"] = h.resource_version
    if h.sync:
        header["sync"] = True
    if h.msg_type:
        header["type"] = h.msg_type
    # Field by field rather than a loop over Route's fields: twice as fast, once per frame.
    source, destination, group, operation, wire = message.route
    if resource is not None:
        wire = resource
    route: dict[str, JsonValue] = {}
    if source:
        route["source"] = source
    if destination:
        route["destination"] = destination
    if group:
        route["group"] = group
    if operation:
        route["operation"] = operation
    if wire:
        route["resource"] = wire
    return {"header": header, "route": route, "content": message.content}


def encode(message: Message, resource: str | None = None) -> bytes:
    """Encode a message as compact UTF-8 JSON (`resource`: see `to_json`).

    Raises:
        MessageEncodeError: the content is not JSON (e.g. NaN, bytes, a set).
    """
    doc = to_json(message, resource)
    try:
        data = orjson.dumps(doc)
        # One scan in the common case; the three only when "null" is there at all.
        if b"null" not in data or (
            b":null" not in data and b"[null" not in data and b",null" not in data
        ):
            return data
    except orjson.JSONEncodeError:  # e.g. an int over 64 bits
        pass
    # The standard encoder decides: orjson writes NaN and infinities as null, where
    # it refuses them.
    try:
        text = _ENCODER.encode(doc)
    except (TypeError, ValueError, RecursionError) as exc:
        raise errors.MessageEncodeError(f"{message.msg_id}: {exc}") from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (`decode` reads "\\ud800"): escaped again
        return _ASCII_ENCODER.encode(doc).encode("ascii")


def decode(raw: bytes | bytearray | memoryview | str) -> Message:
    """Decode one message from a frame (text or bytes; a trailing newline is fine).

    Raises:
        MessageDecodeError: not UTF-8, not JSON, or a field of the wrong type; the
            error names the field and carries an excerpt of the input.
    """
    data = bytes(raw) if isinstance(raw, bytearray | memoryview) else raw
    try:
        return from_json(orjson.loads(data), data)
    except orjson.JSONDecodeError:
        pass  # the standard library decides, and names what is wrong where
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise errors.MessageDecodeError(
            f"not UTF-8 ({exc.reason} at byte {exc.start})", data
        ) from None
    try:
        doc = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise errors.MessageDecodeError(f"not JSON ({exc.msg} at char {exc.pos})", data) from None
    except (ValueError, RecursionError) as exc:
        raise errors.MessageDecodeError(f"not JSON ({exc})", data) from None
    return from_json(doc, data)


def loads(data: bytes | str) -> Any:
    """Parse any JSON text (an API server's list, a watch event): orjson, or the
    standard library for what orjson refuses, whose answer or error counts.

    Like Go's decoder into interface values, orjson reads an integer beyond 64 bits
    as a float.

    Raises:
        ValueError: not JSON (a `json.JSONDecodeError` with its position).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def from_json(doc: Any, raw: bytes | str = b"") -> Message:
    """Build a message from an already parsed JSON document (see `decode`)."""
    message = _well_formed(doc)
    return message if message is not None else _checked(doc, raw)


def _well_formed(doc: Any) -> Message | None:
    """The message when every field has its usual type, else None (then `_checked`
    says what is wrong). One pass of type checks: acks and objects arrive by the
    thousand per second."""
    if type(doc) is not dict:
        return None
    header, route = doc.get("header"), doc.get("route", _NO_ROUTE)
    if type(header) is not dict or type(route) is not dict:
        return None
    h, r = header.get, route.get
    msg_id, parent, kind = h("msg_id"), h("parent_msg_id", ""), h("type", "")
    version = h("resourceversion", "")
    timestamp, sync = h("timestamp", 0), h("sync", False)
    source, destination, group = r("source", ""), r("destination", ""), r("group", "")
    operation, resource = r("operation", ""), r("resource", "")
    if not (
        type(msg_id) is str
        and msg_id
        and type(parent) is str
        and type(version) is str
        and type(kind) is str
        and type(timestamp) is int
        and _INT64[0] <= timestamp <= _INT64[1]
        and type(sync) is bool
        and type(source) is str
        and type(destination) is str
        and type(group) is str
        and type(operation) is str
        and type(resource) is str
    ):
        return None
    return assemble(
        (msg_id, parent, timestamp, version, sync, kind),
        (source, destination, group, operation, resource),
        doc.get("content"),
    )


def _checked(doc: Any, raw: bytes | str) -> Message:
    """`from_json` field by field, raising on the first field of a wrong type."""
    if not isinstance(doc, dict):
        raise errors.MessageDecodeError(f"expected a JSON object, found {_kind(doc)}", raw)
    header = _object(doc, "header", raw, required=True)
    route = _object(doc, "route", raw, required=False)
    msg_id = header.get("msg_id")
    if not isinstance(msg_id, str) or not msg_id:
        raise errors.MessageDecodeError(
            f"header.msg_id: expected a non-empty string, found {_kind(msg_id)}", raw
        )
    strs = {attr: _str(header, key, "header", raw) for key, attr in _HEADER_STR_KEYS}
    timestamp = header.get("timestamp")
    if timestamp is None:
        timestamp = 0
    if type(timestamp) is not int or not _INT64[0] <= timestamp <= _INT64[1]:
        raise errors.MessageDecodeError(
            f"header.timestamp: expected a 64-bit integer, found {_kind(timestamp)}", raw
        )
    sync = header.get("sync")
    if sync is None:
        sync = False
    if not isinstance(sync, bool):
        raise errors.MessageDecodeError(
            f"header.sync: expected a boolean, found {_kind(sync)}", raw
        )
    route_fields = {key: _str(route, key, "route", raw) for key in _ROUTE_KEYS}
    return Message(
        Header(msg_id=msg_id, timestamp=timestamp, sync=sync, **strs),
        Route(**route_fields),
        doc.get("content"),
    )


def _object(doc: dict[str, Any], key: str, raw: bytes | str, *, required: bool) -> dict[str, Any]:
    value = doc.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        found = "nothing" if key not in doc else _kind(value)
        raise errors.MessageDecodeError(f"{key}: expected an object, found {found}", raw)
    return value


def _str(obj: dict[str, Any], key: str, where: str, raw: bytes | str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.MessageDecodeError(
            f"{where}.{key}: expected a string, found {_kind(value)}", raw
        )
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "an object"})
    kind = names.get(type(value), type(value).__name__)
    shown = repr(value) if isinstance(value, bool | int | float | str) else ""
    return f"{kind} {shown[:40]}".rstrip()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once, as _ENCODER
