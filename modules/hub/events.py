"""Events `HubProtocol.events_received()` returns to the module driving it.

Input comes from the protocol (frames and clock ticks it was fed); output goes to
cloudhub's session code or edgehub, which route messages on and close connections.
"""

from __future__ import annotations

from typing import NamedTuple, TypeAlias

from beehive.message import Message


class MessageReceived(NamedTuple):
    """An application message for the module (cloud side: resource already prefixed)."""

    message: Message


class AckReceived(NamedTuple):
    """The peer stored the message `msg_id` (cloud side: any `response` is an ack).

    Only the id: an ack's route and content tell the cloud nothing more, and this is
    the most frequent event, so the protocol builds nothing else for it.
    """

    msg_id: str


class ErrorReceived(NamedTuple):
    """The peer could not handle the message `msg_id` (an `error` reply, cloud side)."""

    msg_id: str
    message: Message


class MessageRejected(NamedTuple):
    """A decodable message the protocol refused; an `error` reply has been queued."""

    msg_id: str
    reason: str


class MessageIgnored(NamedTuple):
    """A message with nothing in it (no id, operation or resource): nothing to answer."""

    reason: str


class DecodeFailed(NamedTuple):
    """A frame that is not a message (nothing can be replied: it has no msg_id)."""

    reason: str
    excerpt: str


class KeepaliveDue(NamedTuple):
    """Edge side: a keepalive frame has been queued in `data_to_send()`."""

    at: float


class KeepaliveReceived(NamedTuple):
    """Cloud side: the edge sent a keepalive (cloudhub renews the node's Lease on it)."""

    at: float


class SessionTimedOut(NamedTuple):
    """Cloud side: the edge sent nothing for `idle` seconds; close the connection."""

    idle: float


class ConnectionClosed(NamedTuple):
    """The transport reported the end of the stream."""

    reason: str


Event: TypeAlias = (
    MessageReceived
    | AckReceived
    | ErrorReceived
    | MessageRejected
    | MessageIgnored
    | DecodeFailed
    | KeepaliveDue
    | KeepaliveReceived
    | SessionTimedOut
    | ConnectionClosed
)
