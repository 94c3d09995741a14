"""The router's messages between cloud and edge (group ``user``), as KubeEdge's.

Shared by the cloud's router module and the edge's eventbus and servicebus modules;
pure functions. Formats follow cloud/pkg/router/provider/{eventbus,servicebus} and
edge/pkg/{eventbus,servicebus}:

- REST -> eventbus: source ``router_eventbus``, operation ``publish``, resource
  ``node/<node>/<topic>``, content the request body as a string. (KubeEdge's router
  answers 200 at once; ours waits for our eventbus's reply saying it published.)
- REST -> servicebus: source ``router_servicebus``, operation the HTTP method,
  resource ``node/<node>/<port>:<path>``, content an HTTPRequest ``{"header",
  "body", "method", "url"}`` with the body base64 (Go's ``[]byte``). The reply:
  source ``servicebus``, operation ``upload``, parent the request's id, content an
  HTTPResponse ``{"header", "status_code", "body"}`` (body base64).
- Subscriptions: source ``router_eventbus``, operation ``subscribe`` / ``unsubscribe``,
  resource ``node/<node>/<namespace>/<topic>``; the edge subscribes to
  ``<namespace>/<topic>``.
- Edge -> cloud: source ``bus``, group ``user``, operation ``upload``, resource the
  topic, content the payload as a string; cloudhub prefixes ``node/<node>/``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, cast

from beehive.message import JsonValue, Message

GROUP_USER = "user"
SOURCE_EVENTBUS = "router_eventbus"  # cloud -> edge eventbus
SOURCE_SERVICEBUS = "router_servicebus"  # cloud -> edge servicebus
SOURCE_BUS = "bus"  # edge eventbus -> cloud
SOURCE_SERVICEBUS_REPLY = "servicebus"
PUBLISH = "publish"
SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
UPLOAD = "upload"


def publish(node: str, topic: str, body: bytes) -> Message:
    return Message.new(source=SOURCE_EVENTBUS, group=GROUP_USER, operation=PUBLISH,
                       resource=f"node/{node}/{topic}",
                       content=body.decode("utf-8", "replace"))  # fmt: skip


def subscription(node: str, topic: str, *, on: bool) -> Message:
    """Subscribe (or unsubscribe) `node`'s eventbus to `topic` (``<namespace>/<topic>``)."""
    return Message.new(source=SOURCE_EVENTBUS, group=GROUP_USER,
                       operation=SUBSCRIBE if on else UNSUBSCRIBE,
                       resource=f"node/{node}/{topic}", content="")  # fmt: skip


def service_request(
    node: str, resource: str, *, method: str, header: dict[str, list[str]], body: bytes
) -> Message:
    encoded = base64.b64encode(body).decode()
    content: dict[str, Any] = {"header": header, "body": encoded, "method": method, "url": ""}
    return Message.new(
        source=SOURCE_SERVICEBUS, group=GROUP_USER, operation=method,
        resource=f"node/{node}/{resource}", content=cast(JsonValue, content),
    )  # fmt: skip


def http_reply(request: Message, status: int, body: bytes, header: Any = None) -> Message:
    """The edge's reply to a routed request: an HTTPResponse, operation ``upload``."""
    content = {"header": header or {}, "status_code": status,
               "body": base64.b64encode(body).decode()}  # fmt: skip
    reply = request.reply(content, operation=UPLOAD)
    return reply.with_route(source=SOURCE_SERVICEBUS_REPLY, resource="")


def upload(topic: str, payload: bytes) -> Message:
    return Message.new(source=SOURCE_BUS, group=GROUP_USER, operation=UPLOAD, resource=topic,
                       content=payload.decode("utf-8", "replace"))  # fmt: skip


def decode_body(value: Any) -> bytes:
    """A Go ``[]byte`` from JSON (base64); a plain string is taken as it is."""
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()


def parse_reply(content: Any) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of an HTTPResponse content.

    Raises:
        ValueError: not an HTTPResponse.
    """
    if not isinstance(content, dict) or not isinstance(content.get("status_code"), int):
        raise ValueError("the reply is not an HTTPResponse")
    header = content.get("header")
    headers = {}
    if isinstance(header, dict):
        for k, v in header.items():
            headers[str(k)] = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
    return content["status_code"], headers, decode_body(content.get("body"))
