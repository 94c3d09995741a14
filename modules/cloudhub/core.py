"""cloudhub's logic without I/O: sessions, fair delivery, acks, resync and limits.

Input, all on one thread (the transport's event loop): connections that open
(`open`), their frames (`receive`) and their end (`lost`), downstream messages
from edgecontroller (`downstream`), and clock ticks (`tick`, `pump`).
Output (`take_outputs`): frames to write per connection, connections to close
with a code and reason, messages for edgecontroller (upstream traffic and the
session notices and resync requests of modules/contract.py items 2, 4 and 5),
and `SyncOp`s for the ObjectSync writer.

Behaviour follows cloud/pkg/cloudhub (handler/message_handler.go for sessions,
dispatcher/message_dispatcher.go for dispatch and acks); the differences are
pipelined delivery, queues kept across disconnects, and resync on every connect.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

from beehive import errors as beehive_errors
from beehive.message import JsonValue, Message, Operation
from modules import contract, replies
from modules.cloudhub import classify, echo, objects, queue, scheduler, stats
from modules.hub import errors, events
from modules.hub.protocol import DEFAULT_MAX_FRAME_SIZE, HubProtocol, KeepaliveSettings, Side
from modules.hub.ratelimit import TokenBucket

log = logging.getLogger("modules.cloudhub")

# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000  # replaced by a newer connection, or the node was deleted
CLOSE_GOING_AWAY = 1001  # cloudhub is stopping
CLOSE_POLICY = 1008  # a bad connection request, or no keepalive within the timeout
CLOSE_TRY_AGAIN = 1013  # the node limit is reached

_MAX_READ_PAUSE = 0.1  # seconds; a node over its rate limit is read at most this slowly
_SAMPLE_PERIOD = 0.5  # seconds between rate samples of every node (`debug nodes` rates)


@dataclasses.dataclass(frozen=True, slots=True)
class HubLimits:
    """The core's tunables (filled from `CloudHubSettings`)."""

    node_limit: int = 1000  # most connected nodes (cloudHub.nodeLimit)
    window: int = 32  # unacked messages per node
    max_objects: int = 4096  # waiting objects per node before a resync is owed
    retry: queue.RetryPolicy = dataclasses.field(default_factory=queue.RetryPolicy)
    keepalive_timeout: float = 30.0  # a session silent this long is ended
    rate: float = 30.0  # upstream messages per second per node
    burst: int = 60  # upstream burst per node
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    pump_budget: int = 512  # deliveries per `pump` call, so the loop stays responsive
    turn: int = 16  # most messages a node gets per turn (one write, one read on the edge)


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """Close connection `conn` with this code and reason."""

    conn: int
    code: int
    reason: str


@dataclasses.dataclass(slots=True)
class Outputs:
    writes: dict[int, list[bytes]] = dataclasses.field(default_factory=dict)
    closes: list[Close] = dataclasses.field(default_factory=list)
    upstream: list[Message] = dataclasses.field(default_factory=list)
    syncs: list[objects.SyncOp] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class _Session:
    conn: int  # the transport's id of the connection
    node_id: str
    protocol: HubProtocol  # framing, keepalive timeout, acks
    bucket: TokenBucket  # upstream rate limit
    over_limit: bool = False  # the last frame was refused by the rate limit


class CloudHubCore:
    """All of cloudhub's state; owned by one thread, time from `clock`."""

    def __init__(self, *, limits: HubLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock  # monotonic seconds
        self._scheduler = scheduler.FairScheduler(
            window=limits.window, max_objects=limits.max_objects, retry=limits.retry,
            burst=limits.turn,
        )  # fmt: skip
        self._sessions: dict[str, _Session] = {}  # node -> its current session
        self._by_conn: dict[int, _Session] = {}  # connection id -> session
        self._objects: dict[str, dict[str, objects.ObjectRef]] = {}  # node -> uid -> object
        self._stats: dict[str, stats.NodeStats] = {}  # node -> counters and rate samples
        self._owed: set[str] = set()  # nodes whose queue refused a message: resync owed
        self._echoes = echo.NodeEchoes()  # status-only Node updates are not sent again
        self._next_sample = 0.0  # when tick next samples every node's rates
        self._out = Outputs()  # waiting for take_outputs
        self.more = False  # pump stopped at its budget: call it again soon

    # Input from the ObjectSync reader, before the server starts.

    def restore(self, records: Iterable[objects.Restored]) -> int:
        """Seed what nodes were sent and acked, from ObjectSync records; returns the count."""
        count = 0
        for record in records:
            self._objects.setdefault(record.node_id, {})[record.ref.uid] = record.ref
            if record.resource_version is not None:
                node_queue = self._scheduler.node_queue(record.node_id)
                node_queue.restore_acked(record.ref.uid, str(record.resource_version))
            count += 1
        return count

    # Input from the transport.

    def open(self, conn: int, node_id: str) -> bool:
        """A connection for `node_id` completed its handshake; False if refused (see outputs)."""
        old = self._sessions.get(node_id)
        if old is None and len(self._sessions) >= self.limits.node_limit:
            reason = f"node limit of {self.limits.node_limit} reached; try again later"
            log.warning("refused node %s: %s", node_id, reason)
            self._out.closes.append(Close(conn, CLOSE_TRY_AGAIN, reason))
            return False
        if old is not None:
            log.debug("node %s connected again: replacing its older connection", node_id)
            self._close(old, CLOSE_NORMAL, "replaced by a newer connection of this node")
        protocol = HubProtocol(
            side=Side.CLOUD,
            node_id=node_id,
            clock=self._clock,
            keepalive=KeepaliveSettings(timeout=self.limits.keepalive_timeout),
            max_frame_size=self.limits.max_frame_size,
        )
        bucket = TokenBucket(rate=self.limits.rate, burst=self.limits.burst, now=self._clock())
        session = _Session(conn, node_id, protocol, bucket)
        self._sessions[node_id] = self._by_conn[conn] = session
        self._node_stats(node_id).connected(self._clock())
        self._scheduler.connect(node_id)
        self._notice(node_id, Operation.CONNECTED)
        self._notice(node_id, contract.RESYNC)  # contract item 5
        return True

    def receive(self, conn: int, data: bytes | str) -> None:
        """A frame from connection `conn` (ignored if it is no longer current)."""
        session = self._by_conn.get(conn)
        if session is None:
            return
        session.protocol.receive_data(data)
        self._handle_events(session)

    def read_delay(self, conn: int) -> float:
        """Seconds before the next frame of `conn` should be read: after a frame refused by
        the rate limit the transport pauses reading (bounded), so TCP throttles the node and
        its refusals cost us little."""
        session = self._by_conn.get(conn)
        if session is None or not session.over_limit:
            return 0.0
        session.over_limit = False
        self._node_stats(session.node_id).throttled += 1
        return min(session.bucket.wait_time(self._clock()), _MAX_READ_PAUSE)

    def lost(self, conn: int) -> None:
        """Connection `conn` ended (the peer closed it, or it broke)."""
        session = self._by_conn.get(conn)
        if session is not None:
            log.debug("node %s disconnected", session.node_id)
            self._end(session)

    def close_all(self, reason: str) -> None:
        """End every session (cloudhub is stopping)."""
        for session in list(self._sessions.values()):
            self._close(session, CLOSE_GOING_AWAY, reason)

    # Input from edgecontroller (via the module's mailbox).

    def downstream(self, message: Message) -> None:
        """A message for a node: queue it, or act on a resync answer or a node delete."""
        try:
            res = contract.parse_resource(message.route.resource)  # once per message
        except ValueError:
            log.error("dropped message %s: resource %r names no node",
                      message.msg_id, message.route.resource[:128])  # fmt: skip
            return
        node_id, operation = res.node, message.route.operation
        if operation == contract.RESYNCED:
            self._resynced(node_id, message.content)
        elif operation == Operation.DELETE and res.type == contract.NODE and res.name == node_id:
            self._remove_node(node_id)  # ``node/<n>/null/node/<n>``: the node was deleted
        else:
            self._enqueue(node_id, res.type, message)

    # Clock.

    def tick(self) -> None:
        """Keepalive timeouts, owed resyncs and rate samples; then deliver what is due.

        Cheap with many nodes, since the transport also ticks at every resend
        deadline: only silent sessions and owing nodes are visited, and rates are
        sampled every `_SAMPLE_PERIOD`.
        """
        now = self._clock()
        silent = [s for s in self._sessions.values() if _is_due(s.protocol.next_deadline(), now)]
        for session in silent:
            session.protocol.check_timers()
            self._handle_events(session)
        for node_id in [n for n in self._owed if n in self._sessions]:
            node_queue = self._scheduler.node_queue(node_id)
            if not node_queue.needs_resync:
                self._owed.discard(node_id)
            elif node_queue.depth < max(node_queue.max_objects // 2, 1):  # below half (0 of 1)
                node_queue.take_resync()
                self._owed.discard(node_id)
                self._notice(node_id, contract.RESYNC)
        if now >= self._next_sample:
            self._next_sample = now + _SAMPLE_PERIOD
            for node_id, node_stats in self._stats.items():
                node_stats.sample(now, self._scheduler.sent(node_id))
        self.pump()

    def next_deadline(self) -> float | None:
        """When a resend next falls due (the transport also ticks on a period)."""
        return self._scheduler.next_deadline()

    def pump(self) -> None:
        """Write up to `pump_budget` messages, taking ready nodes in turn."""
        now = self._clock()
        next_delivery, sessions = self._scheduler.next_delivery, self._sessions
        session: _Session | None = None  # frames are collected per node's turn
        self.more = True
        for _ in range(self.limits.pump_budget):
            delivery = next_delivery(now)
            if delivery is None:
                self.more = False
                break
            if session is None or session.node_id != delivery.node_id:
                if session is not None:
                    self._flush(session)
                session = sessions[delivery.node_id]
            try:
                session.protocol.send(delivery.message)
            except (errors.HubError, beehive_errors.BeehiveError) as exc:
                log.error("cannot send %s to node %s: %s",
                          delivery.message.msg_id, delivery.node_id, exc)  # fmt: skip
        if session is not None:
            self._flush(session)

    # Output.

    def take_outputs(self) -> Outputs:
        """Everything produced since the last call (drains)."""
        out, self._out = self._out, Outputs()
        return out

    def nodes(self) -> list[dict[str, JsonValue]]:
        """Per node: connection, queue depth, in flight, counts, last ack age, rates."""
        now = self._clock()
        names = sorted(set(self._scheduler.nodes()) | set(self._stats))
        return [
            self._node_stats(n).view(
                n, now, self._queue_stats(n, now),
                connected=n in self._sessions, objects=len(self._objects.get(n, {})),
            )
            for n in names
        ]  # fmt: skip

    def peek(self, node_id: str, limit: int) -> list[Message]:
        """Messages waiting for a node, next first (in flight not included)."""
        if not self._scheduler.has_node(node_id):
            return []
        return self._scheduler.node_queue(node_id).peek()[:limit]

    def is_connected(self, node_id: str) -> bool:
        return node_id in self._sessions

    # Internals.

    def _enqueue(self, node_id: str, kind: str, message: Message) -> None:
        """Queue `message` (resource type `kind`) for the node; records what it tracks."""
        is_node = kind == contract.NODE
        if is_node and self._echoes.is_echo(node_id, message):
            log.debug("node %s: %s changes only the status of its Node: not sent",
                      node_id, message.msg_id)  # fmt: skip
            return
        needs_ack = classify.requires_ack(message, kind)  # once per message: the queue takes it
        uid = classify.object_uid(message)
        outcome = self._scheduler.enqueue(node_id, message, needs_ack=needs_ack, uid=uid)
        if outcome is queue.Outcome.FULL:
            self._owed.add(node_id)
            log.warning("queue of node %s is full: %s refused, a resync will follow",
                        node_id, message.msg_id)  # fmt: skip
        elif outcome is queue.Outcome.INVALID:
            log.error("dropped %s for node %s: an update needs a numeric resourceVersion",
                      message.msg_id, node_id)  # fmt: skip
        if outcome is not queue.Outcome.QUEUED and outcome is not queue.Outcome.REPLACED:
            return
        if is_node:
            self._echoes.queued(node_id, message)
        route = message.route
        if not needs_ack or route.group != contract.GROUP_RESOURCE:
            return
        if route.operation not in _TRACKED_OPERATIONS:
            return
        is_delete = route.operation == Operation.DELETE
        if not is_delete and uid in self._objects.get(node_id, ()):
            return  # known: no record to write (the common update)
        ref = objects.ref_of(message)
        if ref is None:
            return
        known = self._objects.setdefault(node_id, {})
        if is_delete:
            if ref.uid in known:
                self._out.syncs.append(objects.Deleting(node_id, ref))
            else:
                known[ref.uid] = ref
        elif ref.uid not in known:
            known[ref.uid] = ref
            self._out.syncs.append(objects.Ensure(node_id, ref))

    def _resynced(self, node_id: str, content: JsonValue) -> None:
        """Contract item 5: delete what the node was sent and should no longer have."""
        uids = content.get("uids") if isinstance(content, dict) else None
        if not isinstance(uids, list):
            log.error("resynced for node %s without a list of uids: ignored", node_id)
            return
        wanted = {uid for uid in uids if isinstance(uid, str)}
        gone = [ref for uid, ref in self._objects.get(node_id, {}).items() if uid not in wanted]
        for ref in gone:
            if self._scheduler.enqueue(node_id, ref.delete_message(node_id)) is queue.Outcome.FULL:
                self._owed.add(node_id)
            self._out.syncs.append(objects.Deleting(node_id, ref))
        if gone:
            log.info("resync of node %s: %d object(s) to delete", node_id, len(gone))

    def _remove_node(self, node_id: str) -> None:
        """The node was deleted: end its session, drop its queue and its records."""
        log.info("node %s was deleted: ending its session and dropping its queue", node_id)
        session = self._sessions.get(node_id)
        if session is not None:
            self._close(session, CLOSE_NORMAL, "the node was deleted")
        self._scheduler.remove(node_id)
        self._owed.discard(node_id)
        self._echoes.forget(node_id)
        for ref in self._objects.pop(node_id, {}).values():
            self._out.syncs.append(objects.Forget(node_id, ref))
        self._stats.pop(node_id, None)

    def _handle_events(self, session: _Session) -> None:
        node_id = session.node_id
        acked = False
        for event in session.protocol.events_received():
            if type(event) is events.AckReceived:  # most events: checked first
                acked |= self._scheduler.ack(node_id, event.msg_id, self._clock())
                continue
            match event:
                case events.MessageReceived(message):
                    self._upstream(session, message)
                case events.ErrorReceived(msg_id, message):
                    text = beehive_errors.excerpt(str(message.content))
                    log.warning("node %s could not handle %s: %s", node_id, msg_id, text)
                    self._scheduler.nack(node_id, msg_id, self._clock())
                case events.KeepaliveReceived():
                    self._notice(node_id, Operation.KEEPALIVE)
                case events.MessageRejected(msg_id, reason):
                    self._node_stats(node_id).rejected += 1
                    log.error("node %s: message %s rejected: %s", node_id, msg_id, reason)
                case events.MessageIgnored(reason):
                    self._node_stats(node_id).ignored += 1
                    log.debug("node %s: ignored a frame: %s", node_id, reason)
                case events.DecodeFailed(reason, excerpt):
                    self._node_stats(node_id).decode_failed += 1
                    log.error("node %s: undecodable frame (%s): %s", node_id, reason, excerpt)
                case events.SessionTimedOut(idle):
                    reason = f"no keepalive for {idle:.1f} s"
                    log.warning("node %s: %s; ending the session", node_id, reason)
                    self._close(session, CLOSE_POLICY, reason)
                    return
                case _:
                    pass
        if acked:
            self._record_acks(node_id)
        self._flush(session)

    def _upstream(self, session: _Session, message: Message) -> None:
        """Contract item 2, within the node's rate limit (excess: a 429 reply)."""
        node_stats = self._node_stats(session.node_id)
        if not session.bucket.take(self._clock()):
            node_stats.rate_limited += 1
            session.over_limit = True
            rtype = classify.resource_type(message.route.resource)
            if message.route.operation not in _NO_REPLY_OPERATIONS and (
                rtype not in replies.UNANSWERED_TYPES
            ):
                refused = replies.status(429, "rate limit exceeded; send again later")
                reply = replies.failure(message, refused, rtype=rtype, source=contract.CLOUDHUB)
                session.protocol.send(reply)
            return
        node_stats.received += 1
        self._out.upstream.append(message)

    def _record_acks(self, node_id: str) -> None:
        known = self._objects.get(node_id, {})
        for acked in self._scheduler.node_queue(node_id).take_acked():
            if not acked.deleted:
                self._echoes.acked(node_id, acked.uid, acked.resource_version)
            ref = known.get(acked.uid)
            if ref is None:
                continue
            if acked.deleted:
                del known[acked.uid]
                self._out.syncs.append(objects.Forget(node_id, ref))
            else:
                self._out.syncs.append(objects.Acked(node_id, ref, acked.resource_version))

    def _flush(self, session: _Session) -> None:
        frames = session.protocol.data_to_send()
        if frames:
            self._out.writes.setdefault(session.conn, []).extend(frames)

    def _close(self, session: _Session, code: int, reason: str) -> None:
        self._flush(session)
        self._out.closes.append(Close(session.conn, code, reason))
        self._end(session)

    def _end(self, session: _Session) -> None:
        session.protocol.close()
        self._by_conn.pop(session.conn, None)
        if self._sessions.get(session.node_id) is session:
            del self._sessions[session.node_id]
            self._scheduler.disconnect(session.node_id)
            self._node_stats(session.node_id).disconnected(self._clock())
            self._notice(session.node_id, Operation.DISCONNECTED)

    def _notice(self, node_id: str, operation: str) -> None:
        """Contract items 4 and 5: a session notice or resync request on ``node/<node>``."""
        self._out.upstream.append(
            Message.new(
                source=contract.CLOUDHUB,
                group=contract.GROUP_RESOURCE,
                operation=operation,
                resource=contract.build_resource(node_id),
                content={"event_type": operation, "client_id": node_id},
            )
        )

    def _node_stats(self, node_id: str) -> stats.NodeStats:
        found = self._stats.get(node_id)
        if found is None:
            found = self._stats[node_id] = stats.NodeStats()
        return found

    def _queue_stats(self, node_id: str, now: float) -> queue.NodeQueueStats | None:
        if not self._scheduler.has_node(node_id):
            return None
        return self._scheduler.node_queue(node_id).stats(now)


# Operations that are themselves answers: never answered.
_NO_REPLY_OPERATIONS = frozenset({Operation.RESPONSE, Operation.ERROR})

# Operations whose acked messages get an ObjectSync record (not replies).
_TRACKED_OPERATIONS = frozenset({Operation.INSERT, Operation.UPDATE, Operation.DELETE})


def _is_due(deadline: float | None, now: float) -> bool:
    return deadline is not None and deadline <= now
