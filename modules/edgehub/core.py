"""The edge's side of a connection, without I/O: one per connected edge node.

Input: frames read from the cloud (`receive`), messages from local modules
(`send`), connection up and down (`connected`, `disconnected`) and the time
(`tick`). Output: frames to write (`data_to_send`) and what the frames carried
(`receive` returns `Inbound`: objects to store, replies for waiting callers).

Used by the edgehub module (websocket-client, threads) and meant for any other
transport, such as an asyncio simulator holding many edges. As KubeEdge's
edgehub (edge/pkg/edgehub/process.go): keepalive every heartbeat, on connect
the node registers until the cloud has answered a registration with the Node (as
edged registers at start, not on every reconnect of edgehub) and then reports
its status every period. As strict as edgecore's edgehub
(edge/pkg/edgehub/messagehandler): a cloud message reaches the edge's modules only in
groups ``resource`` and ``func`` (replies also in ``user``), anything else is dropped
unacked ("no handler found"); a message with a parent is a reply, for the caller
waiting on it, and is never acked here (metamanager acks the answers to its own
queries); other messages are acked only once the store has them.
After a reconnect the first status report comes at a random point within one
period, not at once: when a cloud restarts or a network heals, its edges all
reconnect together, and their reports would otherwise all land at the same moment.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
from collections.abc import Callable

from beehive.message import Message
from modules import contract, hollow, replies
from modules.hub import errors, events
from modules.hub.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    KNOWN_OPERATIONS,
    HubProtocol,
    KeepaliveSettings,
    Side,
)

log = logging.getLogger("modules.edgehub")

_OWN_REQUESTS = 64  # ids of our own registration/status messages remembered
_GROUPS = frozenset({contract.GROUP_RESOURCE, contract.GROUP_FUNC})  # handed to modules
_USER = "user"
# The router's servicebus requests carry the HTTP method as their operation.
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_OPERATIONS = KNOWN_OPERATIONS | _HTTP_METHODS
_REPLY_GROUPS = _GROUPS | {_USER}  # replies are also handed over in these
_BUS_SOURCES = frozenset({"router_eventbus", "router_servicebus"})  # modules.userbus


@dataclasses.dataclass(slots=True)
class Inbound:
    """What frames from the cloud carried."""

    store: list[Message] = dataclasses.field(default_factory=list)  # for metamanager
    replies: list[Message] = dataclasses.field(default_factory=list)  # for send_resp
    bus: list[Message] = dataclasses.field(default_factory=list)  # for eventbus/servicebus


class EdgeCore:
    """Registration, status reports and framing for one edge node."""

    def __init__(
        self,
        *,
        node_id: str,
        project_id: str,
        clock: Callable[[], float],
        heartbeat: float = 15.0,
        status_interval: float = 10.0,
        register: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.project_id = project_id
        self._clock = clock  # monotonic seconds
        self._heartbeat = heartbeat  # seconds between keepalives
        self._status_interval = status_interval  # seconds between node status reports
        self._register = register  # register the node on connect until the cloud answers
        self._max_frame_size = max_frame_size
        self._rng = rng or random.Random()  # when the first report after a reconnect comes
        self._protocol: HubProtocol | None = None  # the current connection's, or None
        self._next_status = 0.0  # when the next node status report is due
        self._own: collections.deque[str] = collections.deque(maxlen=_OWN_REQUESTS)
        self.node_uid = ""  # the Node's uid, from the registration reply
        self.connects = 0  # connections made
        self.received = 0  # messages received from the cloud
        self.unhandled = 0  # messages dropped: no module handles their group
        self.sent = 0  # messages sent to the cloud (acks included)

    @property
    def is_connected(self) -> bool:
        return self._protocol is not None

    def connected(self) -> None:
        """A connection is up: keepalive at once, register, report status (at once on the
        first connection; after a reconnect, at a random point within one period)."""
        self._protocol = HubProtocol(
            side=Side.EDGE,
            node_id=self.node_id,
            clock=self._clock,
            project_id=self.project_id,
            keepalive=KeepaliveSettings(interval=self._heartbeat),
            max_frame_size=self._max_frame_size,
            operations=_OPERATIONS,
        )
        self.connects += 1
        self._protocol.check_timers()
        if self._register and not self.node_uid:
            self._send_own(hollow.register_message(self.node_id))
        self._next_status = self._clock()
        if self.connects > 1:
            self._next_status += self._rng.uniform(0.0, self._status_interval)
        self.tick()

    def disconnected(self) -> None:
        if self._protocol is not None:
            self._protocol.receive_eof()
        self._protocol = None

    def send(self, message: Message) -> None:
        """Send a local module's message (or an ack) to the cloud.

        Raises:
            SessionClosedError: not connected.
        """
        if self._protocol is None:
            raise errors.SessionClosedError(self.node_id)
        self._protocol.send(message)
        self.sent += 1

    def ack(self, message: Message) -> None:
        """Acknowledge a message from the cloud (`HubProtocol.ack`).

        Raises:
            SessionClosedError: not connected.
        """
        if self._protocol is None:
            raise errors.SessionClosedError(self.node_id)
        self._protocol.ack(message)
        self.sent += 1

    def tick(self) -> None:
        """Keepalive and node status when due."""
        if self._protocol is None:
            return
        self._protocol.check_timers()
        self._protocol.events_received()  # only KeepaliveDue: nothing to do
        now = self._clock()
        if now >= self._next_status:
            self._send_own(hollow.node_status_message(self.node_id, self.node_uid))
            self._next_status = now + self._status_interval

    def next_deadline(self) -> float | None:
        if self._protocol is None:
            return None
        keepalive = self._protocol.next_deadline()
        return self._next_status if keepalive is None else min(keepalive, self._next_status)

    def receive(self, data: bytes | str) -> Inbound:
        """A frame from the cloud: what it carried, for the store and for waiting callers."""
        inbound = Inbound()
        if self._protocol is None:
            return inbound
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, events.MessageReceived):
                self._route(event.message, inbound)
            elif isinstance(event, events.MessageRejected):
                log.error("edge %s: rejected %s from the cloud: %s",
                          self.node_id, event.msg_id, event.reason)  # fmt: skip
            elif isinstance(event, events.DecodeFailed):
                log.error("edge %s: undecodable frame from the cloud (%s): %s",
                          self.node_id, event.reason, event.excerpt)  # fmt: skip
        return inbound

    def data_to_send(self) -> list[bytes]:
        return self._protocol.data_to_send() if self._protocol is not None else []

    def _route(self, message: Message, inbound: Inbound) -> None:
        self.received += 1
        group, parent = message.route.group, message.parent_msg_id
        if group == _USER and not parent and message.route.source in _BUS_SOURCES:
            inbound.bus.append(message)  # the router's: by source to eventbus or servicebus
            return
        if group not in (_REPLY_GROUPS if parent else _GROUPS):
            self.unhandled += 1
            log.warning("edge %s: no handler found for the message %s (group %r, %s %s):"
                        " dropped", self.node_id, message.msg_id, group,
                        message.route.operation, message.route.resource)  # fmt: skip
            return
        if not parent:
            inbound.store.append(message)
        elif parent in self._own:
            self._own_reply(message)
        else:
            inbound.replies.append(message)

    def _own_reply(self, message: Message) -> None:
        failed = replies.error_text(message)
        if failed is not None:
            log.warning("edge %s: the cloud refused %s: %s",
                        self.node_id, message.parent_msg_id, failed)  # fmt: skip
            return
        obj = replies.object_of(message)
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        uid = metadata.get("uid") if isinstance(metadata, dict) else None
        if isinstance(uid, str) and uid:
            self.node_uid = uid

    def _send_own(self, message: Message) -> None:
        self._own.append(message.msg_id)
        self.send(message)
