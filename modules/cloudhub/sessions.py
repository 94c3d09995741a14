"""The session table: each connected node's session, by node and by connection id.

Opens (refused at the node limit, 1013; a node's older session replaced, 1000),
ends (lost, closed, timed out), keepalive timeouts, the per-node upstream rate
limit (a 429 reply, then a pause in reading), and each node's counters, kept
across its sessions. Frames and closes go to the shared `Outputs`; `on_end` tells
the dispatcher that a node's current session ended, and why (one of contract's
``ENDED_*`` reasons and the details).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from beehive.message import Message
from modules import contract, replies
from modules.cloudhub import classify, stats
from modules.cloudhub.limits import HubLimits
from modules.cloudhub.outputs import Close, Outputs
from modules.hub.protocol import HubProtocol, KeepaliveSettings, Side
from modules.hub.ratelimit import TokenBucket

log = logging.getLogger("modules.cloudhub")

# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000  # replaced by a newer connection, or the node was deleted
CLOSE_GOING_AWAY = 1001  # cloudhub is stopping
CLOSE_POLICY = 1008  # a bad connection request, or no keepalive within the timeout
CLOSE_TRY_AGAIN = 1013  # the node limit is reached

_MAX_READ_PAUSE = 0.1  # seconds; a node over its rate limit is read at most this slowly


@dataclasses.dataclass(slots=True)
class Session:
    conn: int  # the transport's id of the connection
    node_id: str
    protocol: HubProtocol  # framing, keepalive timeout, acks
    bucket: TokenBucket  # upstream rate limit
    over_limit: bool = False  # the last frame was refused by the rate limit


class SessionTable:
    """Sessions of connected nodes and per-node counters; one thread, time from `clock`."""

    def __init__(
        self,
        *,
        limits: HubLimits,
        clock: Callable[[], float],
        out: Outputs,
        on_end: Callable[[str, str, str], None],
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._out = out
        self._on_end = on_end  # a node's current session ended: (node, reason, details)
        self.by_node: dict[str, Session] = {}  # node -> its current session
        self.by_conn: dict[int, Session] = {}  # connection id -> session
        self.stats: dict[str, stats.NodeStats] = {}  # node -> counters and rate samples
        self.opened = 0  # sessions opened, over all nodes (handshakes accepted)
        self.refused = 0  # connections refused at the node limit

    def open(self, conn: int, node_id: str) -> bool:
        """A session for `node_id` on `conn`, replacing the node's older one; False if
        refused at the node limit (the close is in the outputs)."""
        limits = self._limits
        old = self.by_node.get(node_id)
        if old is None and len(self.by_node) >= limits.node_limit:
            reason = f"node limit of {limits.node_limit} reached; try again later"
            log.warning("refused node %s: %s", node_id, reason)
            self.refused += 1
            self._out.closes.append(Close(conn, CLOSE_TRY_AGAIN, reason))
            return False
        if old is not None:
            log.debug("node %s connected again: replacing its older connection", node_id)
            self.close(old, CLOSE_NORMAL, "replaced by a newer connection of this node",
                       ended=contract.ENDED_REPLACED)  # fmt: skip
        protocol = HubProtocol(
            side=Side.CLOUD,
            node_id=node_id,
            clock=self._clock,
            keepalive=KeepaliveSettings(timeout=limits.keepalive_timeout),
            max_frame_size=limits.max_frame_size,
        )
        bucket = TokenBucket(rate=limits.rate, burst=limits.burst, now=self._clock())
        self.by_node[node_id] = self.by_conn[conn] = Session(conn, node_id, protocol, bucket)
        self.opened += 1
        self.node_stats(node_id).connected(self._clock())
        return True

    def lost(self, conn: int, ended: str, details: str) -> None:
        """Connection `conn` ended (the peer closed it, or it broke): `ended` is why."""
        session = self.by_conn.get(conn)
        if session is not None:
            log.debug("node %s disconnected (%s: %s)", session.node_id, ended, details)
            self._end(session, ended, details)

    def close(
        self, session: Session, code: int, reason: str, *, ended: str, details: str = ""
    ) -> None:
        """Write what the session has left, close its connection and end it (`reason`
        goes to the edge; `ended` and `details`, else `reason`, to the notice)."""
        self.flush(session)
        self._out.closes.append(Close(session.conn, code, reason))
        self._end(session, ended, details or reason)

    def close_all(self, reason: str) -> None:
        """End every session (cloudhub is stopping)."""
        self.close_some(len(self.by_node), reason)

    def close_some(
        self, count: int, reason: str, *, first: Callable[[str], bool] = lambda node: True
    ) -> int:
        """End up to `count` sessions (cloudhub is stopping or handing nodes over, a
        batch at a time), those of nodes for which `first` is true before the others;
        returns how many are left."""
        ordered = sorted(self.by_node.values(), key=lambda s: not first(s.node_id))  # stable
        for session in ordered[: max(count, 0)]:
            self.close(session, CLOSE_GOING_AWAY, reason, ended=contract.ENDED_STOPPING)
        return len(self.by_node)

    def remove(self, node_id: str) -> None:
        """The node was deleted: end its session and drop its counters."""
        session = self.by_node.get(node_id)
        if session is not None:
            self.close(session, CLOSE_NORMAL, "the node was deleted", ended=contract.ENDED_DELETED)
        self.stats.pop(node_id, None)

    def flush(self, session: Session) -> None:
        """Move the frames the session's protocol has to send into the outputs."""
        frames = session.protocol.data_to_send()
        if frames:
            self._out.writes.setdefault(session.conn, []).extend(frames)

    # Keepalive timeouts.

    def silent(self, now: float) -> list[Session]:
        """Sessions whose protocol timer is due (check their timers, then their events)."""
        return [s for s in self.by_node.values() if _is_due(s.protocol.next_deadline(), now)]

    def time_out(self, session: Session, idle: float) -> None:
        """The session's protocol saw no keepalive for `idle` seconds: close it."""
        reason = f"no keepalive for {idle:.1f} s"
        log.warning("node %s: %s; ending the session", session.node_id, reason)
        # The notice says what does not vary, so that its Event counts the repeats.
        details = f"no keepalive within keepalive_timeout ({self._limits.keepalive_timeout:g} s)"
        self.close(session, CLOSE_POLICY, reason, ended=contract.ENDED_KEEPALIVE, details=details)

    # The upstream rate limit.

    def admit(self, session: Session, message: Message) -> bool:
        """Whether an upstream message is within the node's rate limit (counted); if not,
        a request is answered 429 and the next read of the connection waits."""
        node_stats = self.node_stats(session.node_id)
        if not session.bucket.take(self._clock()):
            node_stats.rate_limited += 1
            session.over_limit = True
            rtype = classify.resource_type(message.route.resource)
            if replies.answered(message.route.operation, rtype):
                refused = replies.status(429, "rate limit exceeded; send again later")
                reply = replies.failure(message, refused, rtype=rtype, source=contract.CLOUDHUB)
                session.protocol.send(reply)
            return False
        node_stats.received += 1
        return True

    def read_delay(self, conn: int) -> float:
        """Seconds before the next frame of `conn` should be read: after a frame refused by
        the rate limit the transport pauses reading (bounded), so TCP throttles the node and
        its refusals cost us little."""
        session = self.by_conn.get(conn)
        if session is None or not session.over_limit:
            return 0.0
        session.over_limit = False
        self.node_stats(session.node_id).throttled += 1
        return min(session.bucket.wait_time(self._clock()), _MAX_READ_PAUSE)

    # Counters.

    def node_stats(self, node_id: str) -> stats.NodeStats:
        """The node's counters, created on first use."""
        found = self.stats.get(node_id)
        if found is None:
            found = self.stats[node_id] = stats.NodeStats()
        return found

    def _end(self, session: Session, ended: str, details: str) -> None:
        session.protocol.close()
        self.by_conn.pop(session.conn, None)
        if self.by_node.get(session.node_id) is session:
            del self.by_node[session.node_id]
            self.node_stats(session.node_id).disconnected(self._clock())
            self._on_end(session.node_id, ended, details)


def _is_due(deadline: float | None, now: float) -> bool:
    return deadline is not None and deadline <= now
