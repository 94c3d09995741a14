"""The message model, KubeEdge's header/route/content split.

Mirrors beehive/pkg/core/model/message.go: a message is a header (ids, time, the
resourceVersion of the object carried), a route (who sent it, where it goes, what
to do with which resource) and a JSON content. Messages are immutable; a reply is
built from its request with `Message.reply`, which is what `Hive.send_sync` matches
on (parent_msg_id == request msg_id).

Header, route and message are named tuples rather than frozen dataclasses: every
object sent to every edge is one message, and a named tuple is built four times
faster while staying immutable.
"""

from __future__ import annotations

import itertools
import os
import time
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias, cast

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

# KubeEdge's content for a successful reply and an ack (MessageSuccessfulContent).
OK = "OK"


class Operation(StrEnum):
    """Operations with a meaning to the framework or to KubeEdge peers (wire strings)."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    QUERY = "query"
    PATCH = "patch"
    UPLOAD = "upload"
    RESPONSE = "response"
    ERROR = "error"
    KEEPALIVE = "keepalive"
    CONNECT = "connect"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


def now_ms() -> int:
    """Milliseconds since the epoch, KubeEdge's header timestamp unit."""
    return time.time_ns() // 1_000_000


def _id_prefix() -> str:
    h = os.urandom(10).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-"


_prefix = _id_prefix()  # 74 random bits, drawn again in a forked child
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix, _counter = _id_prefix(), itertools.count()


os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A fresh message id in the canonical form of a random (version 4) UUID.

    A per-process random prefix and a counter: unique like ``uuid4`` (74 random bits
    per process, then 48 bits of counter), at a sixth of its cost, which matters at
    one id per message. Peers treat ids as opaque strings (they only match replies).
    """
    return f"{_prefix}{next(_counter):012x}"  # 2**48 ids before a 13th digit


class Header(NamedTuple):
    """Message header; JSON keys in `beehive.codec` follow KubeEdge exactly."""

    msg_id: str
    parent_msg_id: str = ""
    timestamp: int = 0
    resource_version: str = ""
    sync: bool = False
    msg_type: str = ""


class Route(NamedTuple):
    """Where a message comes from and goes, and what it asks for."""

    source: str = ""
    destination: str = ""
    group: str = ""
    operation: str = ""
    resource: str = ""


_make: Any = tuple.__new__


class Message(NamedTuple):
    """One message: header, route and JSON content."""

    header: Header
    route: Route
    content: JsonValue = None

    @classmethod
    def new(
        cls,
        *,
        source: str = "",
        destination: str = "",
        group: str = "",
        operation: str = "",
        resource: str = "",
        content: JsonValue = None,
        resource_version: str = "",
        parent_msg_id: str = "",
    ) -> Message:
        """Build a message with a fresh id and the current time."""
        return assemble(
            (new_id(), parent_msg_id, now_ms(), resource_version, False, ""),
            (source, destination, group, operation, resource),
            content,
        )

    @property
    def msg_id(self) -> str:
        return self.header.msg_id

    @property
    def parent_msg_id(self) -> str:
        return self.header.parent_msg_id

    def reply(self, content: JsonValue, *, operation: str = Operation.RESPONSE) -> Message:
        """The response to this message, as NewRespByMessage builds it.

        Keeps source, group and resource (KubeEdge does not swap them) and sets
        parent_msg_id to this message's id, which is how replies are matched.
        """
        header = Header(msg_id=new_id(), parent_msg_id=self.header.msg_id, timestamp=now_ms())
        route = self.route._replace(operation=str(operation), destination="")
        return Message(header, route, content)

    def error_reply(self, text: str) -> Message:
        """An `error` reply carrying `text`, as NewErrorMessage builds it."""
        return self.reply(text, operation=Operation.ERROR)

    def with_header(self, **changes: object) -> Message:
        """A copy with some header fields changed (e.g. ``sync=True``)."""
        return self._replace(header=self.header._replace(**changes))  # type: ignore[arg-type]

    def with_route(self, **changes: str) -> Message:
        """A copy with some route fields changed (e.g. a trimmed resource)."""
        return self._replace(route=self.route._replace(**changes))


def assemble(
    header: tuple[str, str, int, str, bool, str],
    route: tuple[str, str, str, str, str],
    content: JsonValue,
) -> Message:
    """A message from every header and route field, in order (checked by the caller).

    Built through tuple.__new__: a named tuple's own __new__ costs a Python call
    each, and this runs once per object per node (`Message.new`) and per decoded
    frame (`codec.from_json`).
    """
    return cast(Message, _make(Message, (_make(Header, header), _make(Route, route), content)))
