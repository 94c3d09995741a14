"""cloudhub's logic without I/O: dispatch between the sessions, the queues and edgecontroller.

Input, all on one thread (the transport's event loop): connections that open
(`open`), their frames (`receive`) and their end (`lost`, with why), upgrade requests
refused for a named node (`refused`), downstream messages from edgecontroller
(`downstream`), and clock ticks (`tick`, `pump`).
Output (`take_outputs`): frames to write per connection, connections to close
with a code and reason, messages for edgecontroller (upstream traffic and the
session notices and resync requests of modules/contract.py items 2, 4 and 5),
and `SyncOp`s for the ObjectSync writer.

Here: downstream messages (queued by `scheduler`, the Node echo filter of `echo`),
resync answers, node removal, delivery (`pump`, `tick`) and each session's protocol
events. Elsewhere: the sessions, their limits and counters (`sessions`), what each
node was sent and acked (`records`), the types handed in and out (`limits`, `outputs`).

Behaviour follows cloud/pkg/cloudhub (handler/message_handler.go for sessions,
dispatcher/message_dispatcher.go for dispatch and acks); the differences are
pipelined delivery, queues kept across disconnects, and resync on every connect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from beehive import errors as beehive_errors
from beehive.message import JsonValue, Message, Operation
from modules import contract
from modules.cloudhub import classify, echo, objects, owned, queue, records, scheduler, sessions
from modules.cloudhub.limits import HubLimits
from modules.cloudhub.outputs import Close, Outputs
from modules.cloudhub.sessions import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
)
from modules.hub import errors, events
from modules.hub.ratelimit import TokenBucket

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TRY_AGAIN",
    "Close",
    "CloudHubCore",
    "HubLimits",
    "Outputs",
]

log = logging.getLogger("modules.cloudhub")

_SAMPLE_PERIOD = 0.5  # seconds between rate samples of every node (`debug nodes` rates)
# Refused notices over all nodes: a fleet refused at the node limit retries at once, and
# each refusal would otherwise be a message for edgecontroller (contract item 4).
_REFUSED_RATE, _REFUSED_BURST = 20.0, 100


class CloudHubCore:
    """All of cloudhub's state; owned by one thread, time from `clock`."""

    def __init__(
        self, *, limits: HubLimits, clock: Callable[[], float], claims: bool = False
    ) -> None:
        self.limits = limits
        self._clock = clock  # monotonic seconds
        self._scheduler = scheduler.FairScheduler(
            window=limits.window, max_objects=limits.max_objects, retry=limits.retry,
            burst=limits.turn,
        )  # fmt: skip
        self._out = Outputs()  # waiting for take_outputs; shared with the parts below
        self._sessions = sessions.SessionTable(
            limits=limits, clock=clock, out=self._out, on_end=self._session_ended
        )
        self._records = records.ObjectRecords(out=self._out)
        # Seconds before the next frame of a connection should be read (see SessionTable);
        # the session table's own method, as the transport asks after every frame.
        self.read_delay = self._sessions.read_delay
        self._owed: set[str] = set()  # nodes whose queue refused a message: resync owed
        self._echoes = echo.NodeEchoes()  # status-only Node updates are not sent again
        self._behind: set[str] = set()  # nodes noticed as behind (queue over the threshold)
        self._refusals = TokenBucket(rate=_REFUSED_RATE, burst=_REFUSED_BURST, now=clock())
        self.refusals_unnoticed = 0  # refused notices over the rate, not sent
        self._next_sample = 0.0  # when tick next samples every node's rates
        self.more = False  # pump stopped at its budget: call it again soon
        # With several replicas (`claims`): the nodes this one owns; a session is served
        # once its node is claimed, and only owned nodes get a queue.
        self.owned = owned.OwnedNodes() if claims else None

    # Input from the ObjectSync reader, before the server starts.

    def restore(self, records: Iterable[objects.Restored]) -> int:
        """Seed what nodes were sent and acked, from ObjectSync records; returns the count."""
        count = 0
        for record in records:
            self._records.restore(record)
            if record.resource_version is not None:
                node_queue = self._scheduler.node_queue(record.node_id)
                node_queue.restore_acked(record.ref.uid, str(record.resource_version))
            count += 1
        return count

    # Input from the transport.

    def open(self, conn: int, node_id: str) -> bool:
        """A connection for `node_id` completed its handshake; False if refused (see outputs)."""
        if not self._sessions.open(conn, node_id):
            limit = self.limits.node_limit
            self.refused(node_id, contract.REFUSED_NODE_LIMIT, f"node limit of {limit} reached")
            return False
        if self.owned is not None:  # served once claimed (`claimed`)
            self._out.claims.append(self.owned.ask(node_id, conn))
            return True
        self._serve(node_id)
        return True

    def claimed(
        self, node_id: str, conn: int, epoch: int, records: list[objects.Restored] | None
    ) -> None:
        """Our claim of the node for connection `conn` holds at `epoch`. `records`: what
        the node acked, as just read from the API (None when the claim was already ours
        and nothing was written: what we know is current)."""
        assert self.owned is not None, "claimed without claims"
        verdict = self.owned.claimed(node_id, conn, epoch)
        if verdict == "lost":
            self._give_up(node_id, "a newer claim by another replica")
            return
        if records is not None:
            self._records.reload(node_id, records)
            node_queue = self._scheduler.node_queue(node_id)
            for record in records:
                if record.resource_version is not None:
                    node_queue.restore_acked(record.ref.uid, str(record.resource_version))
        session = self._sessions.by_node.get(node_id)
        if verdict == "ours" and session is not None and session.conn == conn:
            self._serve(node_id, takeover=records is not None)
        elif verdict == "ours" and records is not None:
            self.owned.fresh_owed.add(node_id)  # served later, from a claim that writes nothing

    def claim_failed(self, node_id: str, conn: int, why: str) -> None:
        """Our claim of the node for connection `conn` could not be written: the session
        is closed (1013, the edge tries again), and a node we do not hold keeps no queue."""
        assert self.owned is not None, "claim_failed without claims"
        if not self.owned.failed(node_id, conn):
            return
        session = self._sessions.by_conn.get(conn)
        if session is not None:
            log.warning("node %s: cannot claim it: %s; closing its session", node_id, why)
            self._sessions.close(session, CLOSE_TRY_AGAIN, f"cannot claim the node: {why}",
                                 ended=contract.ENDED_CLAIM_FAILED)  # fmt: skip
        if not self.owned.owns(node_id):
            self._drop_node(node_id)

    def foreign_claim(self, node_id: str, holder: str, epoch: int) -> None:
        """Another replica's claim of the node at `epoch` (seen by the owner watch)."""
        if self.owned is not None and self.owned.foreign(node_id, holder, epoch):
            self._give_up(node_id, f"replica {holder or '(none)'} claimed it (epoch {epoch})")

    def _serve(self, node_id: str, *, takeover: bool = False) -> None:
        """Deliver to the node's session from now on; ask edgecontroller for a resync
        (contract item 5; `takeover`: from fresh reads, the node came from elsewhere)."""
        self._scheduler.connect(node_id)
        self._notice(node_id, Operation.CONNECTED)
        if self.owned is not None and node_id in self.owned.fresh_owed:
            self.owned.fresh_owed.discard(node_id)
            takeover = True
        if takeover:
            self._notice(node_id, contract.RESYNC, takeover="true")
        else:
            self._notice(node_id, contract.RESYNC)

    def _give_up(self, node_id: str, why: str) -> None:
        """The node is another replica's now: its session here ends (1000, so its edge,
        if it still talks to us, reconnects), its queue and what we knew of it go; its
        records stay in the API for the new owner."""
        log.info("node %s: given up: %s", node_id, why)
        session = self._sessions.by_node.get(node_id)
        if session is not None:
            self._sessions.close(session, CLOSE_NORMAL, f"node served elsewhere: {why}",
                                 ended=contract.ENDED_TAKEN_OVER)  # fmt: skip
        self._drop_node(node_id)

    def _drop_node(self, node_id: str) -> None:
        self._scheduler.remove(node_id)
        self._owed.discard(node_id)
        self._behind.discard(node_id)
        self._echoes.forget(node_id)
        self._records.drop(node_id)

    def receive(self, conn: int, data: bytes | str) -> None:
        """A frame from connection `conn` (ignored if it is no longer current)."""
        session = self._sessions.by_conn.get(conn)
        if session is None:
            return
        session.protocol.receive_data(data)
        self._handle_events(session)

    def lost(
        self, conn: int, ended: str = contract.ENDED_LOST, details: str = "the connection ended"
    ) -> None:
        """Connection `conn` ended (the peer closed it, or it broke); `ended` says why
        (contract ``ENDED_*``), `details` for people."""
        self._sessions.lost(conn, ended, details)

    def refused(self, node_id: str, reason: str, details: str) -> None:
        """A connection naming `node_id` was refused (contract ``REFUSED_*``): a notice,
        within the rate over all nodes."""
        if not self._refusals.take(self._clock()):
            self.refusals_unnoticed += 1
            return
        self._notice(node_id, contract.REFUSED, reason=reason, message=details)

    def close_all(self, reason: str) -> None:
        """End every session (cloudhub is stopping)."""
        self._sessions.close_all(reason)

    def session_count(self) -> int:
        """Any thread (the length of a dict): the sessions served now."""
        return len(self._sessions.by_node)

    def close_some(self, count: int, reason: str) -> int:
        """End up to `count` sessions (a stop or a rebalancing, spread over time), those
        of nodes with nothing waiting or in flight first: the replica that takes such a
        node over has nothing to send it twice. Returns how many are left."""
        return self._sessions.close_some(count, reason, first=self._settled)

    def _settled(self, node_id: str) -> bool:
        """Nothing waits for the node and nothing sent to it is unacked."""
        return not self._scheduler.has_node(node_id) or self._scheduler.node_queue(node_id).idle

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
        if self.owned is not None and not self.owned.owns(node_id):
            self.owned.dropped += 1  # another replica's node, or no one's yet
            return
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
        for session in self._sessions.silent(now):
            session.protocol.check_timers()
            self._handle_events(session)
        connected = self._sessions.by_node
        for node_id in [n for n in self._behind if not self._still_behind(n)]:
            self._behind.discard(node_id)
        for node_id in [n for n in self._owed if n in connected]:
            node_queue = self._scheduler.node_queue(node_id)
            if not node_queue.needs_resync:
                self._owed.discard(node_id)
            elif node_queue.depth < max(node_queue.max_objects // 2, 1):  # below half (0 of 1)
                node_queue.take_resync()
                self._owed.discard(node_id)
                self._notice(node_id, contract.RESYNC)
        if now >= self._next_sample:
            self._next_sample = now + _SAMPLE_PERIOD
            for node_id, node_stats in self._sessions.stats.items():
                node_stats.sample(now, self._scheduler.sent(node_id))
        self.pump()

    def next_deadline(self) -> float | None:
        """When a resend next falls due (the transport also ticks on a period)."""
        return self._scheduler.next_deadline()

    def pump(self) -> None:
        """Write up to `pump_budget` messages, taking ready nodes in turn."""
        now = self._clock()
        next_delivery, by_node = self._scheduler.next_delivery, self._sessions.by_node
        flush = self._sessions.flush
        session: sessions.Session | None = None  # frames are collected per node's turn
        self.more = True
        for _ in range(self.limits.pump_budget):
            delivery = next_delivery(now)
            if delivery is None:
                self.more = False
                break
            if session is None or session.node_id != delivery.node_id:
                if session is not None:
                    flush(session)
                session = by_node[delivery.node_id]
            try:
                session.protocol.send(delivery.message)
            except (errors.HubError, beehive_errors.BeehiveError) as exc:
                log.error("cannot send %s to node %s: %s",
                          delivery.message.msg_id, delivery.node_id, exc)  # fmt: skip
        if session is not None:
            flush(session)

    # Output.

    def take_outputs(self) -> Outputs:
        """Everything produced since the last call (drains)."""
        return self._out.take()

    def nodes(self) -> list[dict[str, JsonValue]]:
        """Per node: connection, queue depth, in flight, counts, last ack age, rates."""
        now = self._clock()
        table = self._sessions
        names = sorted(set(self._scheduler.nodes()) | set(table.stats))
        return [
            table.node_stats(n).view(
                n, now, self._queue_stats(n, now),
                connected=n in table.by_node, objects=self._records.count(n),
            )
            for n in names
        ]  # fmt: skip

    def metrics(self, nodes: Iterable[str] = ()) -> dict[str, Any]:
        """Running totals for the metrics scrape (no walk over the nodes), and rows for
        `nodes` only (the ones the metrics config names)."""
        table = self._sessions
        known = self._scheduler.node_count
        connected = len(table.by_node)
        rows: dict[str, dict[str, Any]] = {}
        for node_id in nodes:
            q = self._scheduler.node_queue(node_id) if self._scheduler.has_node(node_id) else None
            counts = q.stats(self._clock()) if q is not None else None
            rows[node_id] = {
                "connected": node_id in table.by_node,
                "queued": counts.queued if counts else 0,
                "in_flight": counts.in_flight if counts else 0,
                "sent": counts.sent if counts else 0,
                "acked": counts.acked if counts else 0,
                "resent": counts.resends if counts else 0,
            }
        return {
            "nodes_connected": connected,
            "nodes_disconnected": max(known - connected, 0),
            "handshakes_accepted": table.opened,
            "refused_node_limit": table.refused,
            **self._scheduler.totals.snapshot(),
            "per_node": rows,
            "ownership": None if self.owned is None else {
                "owned": len(self.owned.epochs), "claiming": len(self.owned.claiming),
                "taken": self.owned.taken, "dropped": self.owned.dropped,
            },
        }  # fmt: skip

    def peek(self, node_id: str, limit: int) -> list[Message]:
        """Messages waiting for a node, next first (in flight not included)."""
        if not self._scheduler.has_node(node_id):
            return []
        return self._scheduler.node_queue(node_id).peek()[:limit]

    def is_connected(self, node_id: str) -> bool:
        return node_id in self._sessions.by_node

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
        if outcome is queue.Outcome.QUEUED and node_id not in self._behind:
            self._check_behind(node_id)
        elif outcome is queue.Outcome.FULL:
            self._owe(node_id)
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
        if route.operation not in records.TRACKED_OPERATIONS:
            return
        is_delete = route.operation == Operation.DELETE
        if not is_delete and uid in self._records.by_node.get(node_id, ()):
            return  # known: no record to write (the common update)
        self._records.queued(node_id, message, delete=is_delete)

    def _resynced(self, node_id: str, content: JsonValue) -> None:
        """Contract item 5: delete what the node was sent and should no longer have."""
        uids = content.get("uids") if isinstance(content, dict) else None
        if not isinstance(uids, list):
            log.error("resynced for node %s without a list of uids: ignored", node_id)
            return
        gone = self._records.unwanted(node_id, {uid for uid in uids if isinstance(uid, str)})
        for ref in gone:
            if self._scheduler.enqueue(node_id, ref.delete_message(node_id)) is queue.Outcome.FULL:
                self._owe(node_id)
        if gone:
            log.info("resync of node %s: %d object(s) to delete", node_id, len(gone))

    def _remove_node(self, node_id: str) -> None:
        """The node was deleted: end its session, drop its queue and its records."""
        log.info("node %s was deleted: ending its session and dropping its queue", node_id)
        self._sessions.remove(node_id)
        self._scheduler.remove(node_id)
        self._owed.discard(node_id)
        self._behind.discard(node_id)
        self._echoes.forget(node_id)
        self._records.forget(node_id)
        if self.owned is not None:
            self.owned.forget(node_id)

    def _handle_events(self, session: sessions.Session) -> None:
        node_id = session.node_id
        acked = False
        for event in session.protocol.events_received():
            if type(event) is events.AckReceived:  # most events: checked first
                acked |= self._scheduler.ack(node_id, event.msg_id, self._clock())
                continue
            match event:
                case events.MessageReceived(message):
                    if self._sessions.admit(session, message):  # within the rate limit
                        self._out.upstream.append(message)  # contract item 2
                case events.ErrorReceived(msg_id, message):
                    text = beehive_errors.excerpt(str(message.content))
                    log.warning("node %s could not handle %s: %s", node_id, msg_id, text)
                    self._scheduler.nack(node_id, msg_id, self._clock())
                case events.KeepaliveReceived():
                    self._notice(node_id, Operation.KEEPALIVE)
                case events.MessageRejected(msg_id, reason):
                    self._sessions.node_stats(node_id).rejected += 1
                    log.error("node %s: message %s rejected: %s", node_id, msg_id, reason)
                case events.MessageIgnored(reason):
                    self._sessions.node_stats(node_id).ignored += 1
                    log.debug("node %s: ignored a frame: %s", node_id, reason)
                case events.DecodeFailed(reason, excerpt):
                    self._sessions.node_stats(node_id).decode_failed += 1
                    log.error("node %s: undecodable frame (%s): %s", node_id, reason, excerpt)
                case events.SessionTimedOut(idle):
                    self._sessions.time_out(session, idle)
                    return
                case _:
                    pass
        if acked:  # inline: an ack comes in about every frame
            versions = self._scheduler.node_queue(node_id).take_acked()
            for version in versions:
                if not version.deleted:
                    self._echoes.acked(node_id, version.uid, version.resource_version)
            self._records.acked(node_id, versions)
        self._sessions.flush(session)

    def _session_ended(self, node_id: str, ended: str, details: str) -> None:
        """The node's current session ended (SessionTable's `on_end`); a session never
        served (its claim was not written) was never announced, and is not now."""
        served = self.owned is None or self._scheduler.is_connected(node_id)
        self._scheduler.disconnect(node_id)
        if served:
            self._notice(node_id, Operation.DISCONNECTED, reason=ended, message=details)

    def _owe(self, node_id: str) -> None:
        """The node's queue refused a message: a resync is owed (noticed the first time)."""
        if node_id in self._owed:
            return
        self._owed.add(node_id)
        most = self.limits.max_objects
        self._notice(node_id, contract.BEHIND, reason=contract.BEHIND_RESYNC,
                     message=f"more than max_objects ({most}) objects waited for it: changes"
                     " were refused and it will be resynced")  # fmt: skip

    def _check_behind(self, node_id: str) -> None:
        """A connected node with more than behind_threshold objects waiting: noticed once,
        until its queue is down to half of that (`tick`)."""
        threshold = self.limits.behind_threshold
        if not threshold or node_id not in self._sessions.by_node:
            return
        if self._scheduler.node_queue(node_id).depth > threshold:
            self._behind.add(node_id)
            # What does not vary (not the depth), so that its Event counts the repeats.
            self._notice(node_id, contract.BEHIND, reason=contract.BEHIND_QUEUE,
                         message=f"more than behind_threshold ({threshold}) objects wait for"
                         " it: it acks more slowly than they come")  # fmt: skip

    def _still_behind(self, node_id: str) -> bool:
        if node_id not in self._sessions.by_node or not self._scheduler.has_node(node_id):
            return False
        return self._scheduler.node_queue(node_id).depth > self.limits.behind_threshold // 2

    def _notice(self, node_id: str, operation: str, **more: str) -> None:
        """Contract items 4 and 5: a session notice or resync request on ``node/<node>``
        (`more`: the notice's reason and message)."""
        self._out.upstream.append(
            Message.new(
                source=contract.CLOUDHUB,
                group=contract.GROUP_RESOURCE,
                operation=operation,
                resource=contract.build_resource(node_id),
                content={"event_type": operation, "client_id": node_id, **more},
            )
        )

    def _queue_stats(self, node_id: str, now: float) -> queue.NodeQueueStats | None:
        if not self._scheduler.has_node(node_id):
            return None
        return self._scheduler.node_queue(node_id).stats(now)
