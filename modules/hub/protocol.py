"""Sans-I/O hub protocol: one object per cloud<->edge connection, on either side.

Input: frames the transport read from the websocket (`receive_data`), its end
(`receive_eof`), clock ticks (`check_timers`, with the clock the caller passed in)
and messages the module wants sent (`send`, `send_ack`). Output: encoded frames
for the transport to write (`data_to_send`) and events for the module
(`events_received`). It never touches a socket, a thread or the system clock.

Behaviour copies KubeEdge: one JSON message per frame (pkg/viaduct/pkg/lane/
wsnopack.go); reserved operations ``ping``/``pong``/``config`` answered with a
``response`` "ack" and never delivered (pkg/viaduct/pkg/conn/ws.go); on the cloud
side resources are trimmed going down and prefixed coming up, and any
``response`` is an ack (cloud/pkg/cloudhub/dispatcher/message_dispatcher.go); the
edge sends ``keepalive`` every heartbeat (edge/pkg/edgehub/process.go) and the cloud
ends a session that stays silent (cloud/pkg/cloudhub/session/node_session.go;
here any frame counts as a sign of life, not only a keepalive).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from enum import StrEnum

import orjson

from beehive import codec
from beehive import errors as beehive_errors
from beehive.message import OK, Message, Operation, Route, new_id, now_ms
from modules import contract, replies
from modules.hub import errors, events, resource
from modules.hub.handshake import DEFAULT_PROJECT_ID

# viaduct's control operations (pkg/viaduct/pkg/comm/const.go) and their answer.
RESERVED_OPERATIONS = frozenset({"ping", "pong", "config"})
CONTROL_ACK = "ack"

# Operations KubeEdge peers send each other (notes 2.2); anything else is refused.
KNOWN_OPERATIONS = frozenset(
    {str(op) for op in Operation}
    | {"subscribe", "unsubscribe", "message", "publish", "get_result", "start", "stop"}
    | {"get", "list", "detail", "delta", "document", "updated", "deleted"}
    | {"createvolume", "deletevolume", "controllerpublishvolume", "controllerunpublishvolume"}
    | {"applicationResponse", "unhold-upgrade"}
)

# Larger than any Kubernetes object (etcd's limit is 1.5 MiB) in its JSON envelope.
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024

# The edge's keepalive route, as edgehub builds it (edge/pkg/edgehub/process.go).
KEEPALIVE_SOURCE = "websocket"
KEEPALIVE_GROUP = "resource"
KEEPALIVE_RESOURCE = "node"
KEEPALIVE_CONTENT = "ping"


class Side(StrEnum):
    CLOUD = "cloud"
    EDGE = "edge"


class State(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclasses.dataclass(frozen=True, slots=True)
class KeepaliveSettings:
    """Keepalive timing in seconds (edgeHub.heartbeat, cloudHub.keepaliveInterval)."""

    interval: float = 15.0  # the edge sends a keepalive this often
    timeout: float = 30.0  # the cloud ends a session silent for this long

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError(f"keepalive times must be positive: {self}")


def keepalive_message() -> Message:
    """The keepalive an edge sends: operation ``keepalive``, content ``"ping"``."""
    return Message.new(
        source=KEEPALIVE_SOURCE,
        group=KEEPALIVE_GROUP,
        operation=Operation.KEEPALIVE,
        resource=KEEPALIVE_RESOURCE,
        content=KEEPALIVE_CONTENT,
    )


def ack_for(message: Message) -> Message:
    """The ack for a delivered message: a ``response`` "OK" with its id as parent.

    Source, group and resource are kept, as NewRespByMessage does.
    """
    return message.reply(OK)


def ack_frame(message: Message) -> bytes:
    """The frame `codec.encode(ack_for(message))` writes (a fresh id and time), built
    directly: an edge acks every delivery, and this skips building the ack's Message
    and encoding it generically. Key order and omissions as `codec.to_json`."""
    r = message.route
    if not message.msg_id:
        return codec.encode(ack_for(message))
    route = {"source": r.source, "group": r.group, "operation": Operation.RESPONSE.value,
             "resource": r.resource}  # fmt: skip
    if not (r.source and r.group and r.resource):
        route = {key: value for key, value in route.items() if value}
    header = {"msg_id": new_id(), "parent_msg_id": message.msg_id, "timestamp": now_ms()}
    try:
        return orjson.dumps({"header": header, "route": route, "content": OK})
    except orjson.JSONEncodeError:  # e.g. a lone surrogate: as codec writes it
        return codec.encode(ack_for(message))


def is_ack(message: Message) -> bool:
    """Whether a message acknowledges another (a ``response`` with a parent id)."""
    return message.route.operation == Operation.RESPONSE and bool(message.parent_msg_id)


class HubProtocol:
    """One end of a cloud<->edge connection, as plain state.

    Call `data_to_send` and `events_received` after every input; both drain.
    Frames are UTF-8 JSON and should be written as text frames.
    """

    def __init__(
        self,
        *,
        side: Side,
        node_id: str,
        clock: Callable[[], float],
        project_id: str = DEFAULT_PROJECT_ID,
        keepalive: KeepaliveSettings | None = None,
        operations: frozenset[str] = KNOWN_OPERATIONS,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.side = side  # which end this is: the cloud trims/prefixes and treats responses as acks
        self.node_id = node_id  # the edge node this connection belongs to
        self.project_id = project_id  # KubeEdge's projectID, part of the connection path
        self.keepalive = keepalive or KeepaliveSettings()  # keepalive interval and timeout
        self.state = State.OPEN  # CLOSED after a timeout, end of stream or close()
        self._clock = clock  # seconds, monotonic; the only time source
        self._operations = operations  # operations accepted from the peer
        self._max_frame_size = max_frame_size  # larger frames are refused undecoded
        self.last_received = clock()  # when the peer last sent a frame (any frame)
        self._next_keepalive = self.last_received  # edge: when the next keepalive is due
        self._out: list[bytes] = []  # encoded frames waiting for the transport
        self._events: list[events.Event] = []  # events waiting for the module

    # Output.

    def data_to_send(self) -> list[bytes]:
        """Frames to write, oldest first (drains)."""
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[events.Event]:
        """Events since the last call, in order (drains)."""
        got, self._events = self._events, []
        return got

    # Input from the transport.

    def receive_data(self, data: bytes | str) -> None:
        """Feed one frame (text or binary; a trailing newline is fine). Ignored once closed."""
        if self.state is State.CLOSED:
            return
        self.last_received = self._clock()
        if len(data) > self._max_frame_size:
            reason = f"frame of {len(data)} bytes is over the limit of {self._max_frame_size}"
            self._events.append(events.DecodeFailed(reason, beehive_errors.excerpt(data)))
            return
        try:
            message = codec.decode(data)
        except beehive_errors.MessageDecodeError as exc:
            if _is_empty_message(data):
                # edgecore writes one when it connects: nothing to answer or log.
                self._events.append(events.MessageIgnored("empty message"))
            else:
                self._events.append(events.DecodeFailed(exc.reason, exc.excerpt))
            return
        self._dispatch(message)

    def receive_eof(self) -> None:
        """The peer closed the connection or it broke."""
        if self.state is State.OPEN:
            self.state = State.CLOSED
            self._events.append(events.ConnectionClosed("the connection was closed"))

    def check_timers(self) -> None:
        """Act on the clock: the edge sends a due keepalive, the cloud ends a silent session."""
        if self.state is State.CLOSED:
            return
        now = self._clock()
        if self.side is Side.EDGE and now >= self._next_keepalive:
            self._write(keepalive_message())
            self._next_keepalive = now + self.keepalive.interval
            self._events.append(events.KeepaliveDue(now))
        elif self.side is Side.CLOUD and now - self.last_received >= self.keepalive.timeout:
            self.state = State.CLOSED
            self._events.append(events.SessionTimedOut(now - self.last_received))

    def next_deadline(self) -> float | None:
        """When `check_timers` next has something to do (clock time), or None once closed."""
        if self.state is State.CLOSED:
            return None
        if self.side is Side.EDGE:
            return self._next_keepalive
        return self.last_received + self.keepalive.timeout

    def close(self) -> None:
        """The owner ends the session; later frames are ignored and sends refused."""
        self.state = State.CLOSED

    # Input from the module.

    def send(self, message: Message) -> None:
        """Queue a message for the peer (cloud side: ``node/<id>/`` is trimmed).

        Raises:
            SessionClosedError: the session has ended.
            WrongNodeError: cloud side, the resource names another node.
            MessageEncodeError: the content is not JSON.
        """
        if self.state is State.CLOSED:
            raise errors.SessionClosedError(self.node_id)
        wire = None  # the resource as written, when it differs
        if self.side is Side.CLOUD:
            wire = resource.trim(message.route.resource, self.node_id)
        if message.header.sync:
            message = message.with_header(sync=False)  # viaduct's WriteMessageAsync does this
        self._out.append(codec.encode(message, wire))

    def ack(self, message: Message) -> None:
        """Acknowledge a received message, as `send_ack` does, without returning the ack
        (edge side: the frame is built directly, see `ack_frame`).

        Raises:
            SessionClosedError: the session has ended.
        """
        if self.side is not Side.EDGE:
            self.send(ack_for(message))
            return
        if self.state is State.CLOSED:
            raise errors.SessionClosedError(self.node_id)
        self._out.append(ack_frame(message))

    def send_ack(self, message: Message) -> Message:
        """Acknowledge a received message (see `ack_for`) and return the ack sent.

        Raises:
            SessionClosedError: the session has ended.
        """
        ack = ack_for(message)
        self.send(ack)
        return ack

    # Internals.

    def _write(self, message: Message) -> None:
        self._out.append(codec.encode(message))

    def _dispatch(self, message: Message) -> None:
        operation = message.route.operation
        if operation in RESERVED_OPERATIONS:
            self._write(message.reply(CONTROL_ACK))  # answered raw, never delivered
            return
        if operation == Operation.KEEPALIVE:
            if self.side is Side.CLOUD:  # liveness; last_received is already updated
                self._events.append(events.KeepaliveReceived(self.last_received))
            return
        problem = self._problem(message)
        if problem:
            self._reject(message, problem)
        elif self.side is Side.EDGE:
            self._events.append(events.MessageReceived(message))
        else:
            self._dispatch_upstream(message)

    def _problem(self, message: Message) -> str:
        """Why a message from the peer is refused, or "" if it is acceptable."""
        operation = message.route.operation
        if not operation:
            return "route.operation is missing"
        if operation not in self._operations:
            return f"unknown operation {operation[:64]!r}"
        if self.side is Side.EDGE:
            return ""
        if resource.names_other_node(message.route.resource, self.node_id):
            return f"resource {message.route.resource[:128]!r} names another node"
        if operation in (Operation.RESPONSE, Operation.ERROR) and not message.parent_msg_id:
            return f"{operation} without header.parent_msg_id"
        return ""

    def _reject(self, message: Message, reason: str) -> None:
        self._events.append(events.MessageRejected(message.msg_id, reason))
        operation = message.route.operation
        if operation == Operation.ERROR:  # never answer an error with an error
            return
        if self.side is Side.EDGE:
            self._write(message.error_reply(reason))
            return
        # As cloudcore answers: a failure Status the edge parses (wire resource
        # ``<namespace>/<type>/<name>``), routed so that edgecore hands it over.
        tokens = message.route.resource.split("/")
        rtype = tokens[1] if len(tokens) > 1 else ""
        failed = replies.status(400, reason)
        self._write(replies.failure(message, failed, rtype=rtype, source=contract.CLOUDHUB))

    def _dispatch_upstream(self, message: Message) -> None:
        """Cloud side: acks and error replies by parent id, the rest prefixed for controllers."""
        operation = message.route.operation
        if operation == Operation.RESPONSE:
            self._events.append(events.AckReceived(message.parent_msg_id))
            return
        upstream = _rerouted(message, resource.prefix(message.route.resource, self.node_id))
        if operation == Operation.ERROR:
            self._events.append(events.ErrorReceived(message.parent_msg_id, upstream))
        else:
            self._events.append(events.MessageReceived(upstream))


_EMPTY_LIMIT = 256  # bytes: an empty message is short


def _is_empty_message(data: bytes | str) -> bool:
    """Whether a frame the codec refused is a message with nothing in it: no id and an
    empty route (Go's zero Message, as edgecore writes it on connect)."""
    if len(data) > _EMPTY_LIMIT:
        return False
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(obj, dict) or not isinstance(obj.get("header"), dict):
        return False
    route = obj.get("route")
    empty_route = route is None or (isinstance(route, dict) and not any(route.values()))
    return not obj["header"].get("msg_id") and empty_route


def _rerouted(message: Message, to: str) -> Message:
    """`message` with resource `to` (as `Message.with_route`, without its generic copy)."""
    r = message.route
    return Message(message.header, Route(r.source, r.destination, r.group, r.operation, to),
                   message.content)  # fmt: skip
