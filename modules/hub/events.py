"""Events `HubProtocol.events_received()` returns to the module driving it.

Input comes from the protocol (frames and clock ticks it was fed); output goes to
cloudhub's session code or edgehub, which route messages on and close connections.
"""

from __future__ import annotations

import dataclasses
from typing import TypeAlias

from beehive.message import Message


@dataclasses.dataclass(frozen=True, slots=True)
class MessageReceived:
    """An application message for the module (cloud side: resource already prefixed)."""

    message: Message


@dataclasses.dataclass(frozen=True, slots=True)
class AckReceived:
    """The peer stored the message `msg_id` (cloud side: any `response` is an ack).

    Only the id: an ack's route and content tell the cloud nothing more, and this is
    the most frequent event, so the protocol builds nothing else for it.
    """

    msg_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorReceived:
    """The peer could not handle the message `msg_id` (an `error` reply, cloud side)."""

    msg_id: str
    message: Message


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRejected:
    """A decodable message the protocol refused; an `error` reply has been queued."""

    msg_id: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class DecodeFailed:
    """A frame that is not a message (nothing can be replied: it has no msg_id)."""

    reason: str
    excerpt: str


@dataclasses.dataclass(frozen=True, slots=True)
class KeepaliveDue:
    """Edge side: a keepalive frame has been queued in `data_to_send()`."""

    at: float


@dataclasses.dataclass(frozen=True, slots=True)
class KeepaliveReceived:
    """Cloud side: the edge sent a keepalive (cloudhub renews the node's Lease on it)."""

    at: float


@dataclasses.dataclass(frozen=True, slots=True)
class SessionTimedOut:
    """Cloud side: the edge sent nothing for `idle` seconds; close the connection."""

    idle: float


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The transport reported the end of the stream."""

    reason: str


Event: TypeAlias = (
    MessageReceived
    | AckReceived
    | ErrorReceived
    | MessageRejected
    | DecodeFailed
    | KeepaliveDue
    | KeepaliveReceived
    | SessionTimedOut
    | ConnectionClosed
)
