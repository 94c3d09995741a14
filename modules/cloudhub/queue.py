"""Per-node delivery queue: compaction by object, pipelined acks, resends with backoff.

Input: messages cloud modules address to one node (`enqueue`), acks and error
replies from that node's session (`ack`, `nack`), and the time, always passed in.
Output: the next message to write (`next_delivery`), and the versions the edge
acked (`take_acked`) for the ObjectSync writer to persist.

Like KubeEdge's NodeMessagePool (cloud/pkg/cloudhub/common/message_pool.go) the
queue is keyed by object UID, so a newer resourceVersion replaces the queued one
and only the newest state of an object waits. Unlike it, up to `window` messages
are unacked at once (KubeEdge: one), with at most one in flight per object so the
edge sees each object's versions in order. Messages that need no ack
(`classify.requires_ack`) wait in their own FIFO keyed by msg_id, go out first,
once, and take no window slot (KubeEdge's separate no-ack queue).

Ordering of versions of one object: a delete beats any update; among updates
the higher resourceVersion wins (numeric, as KubeEdge's ParseUint); anything
not newer than what is queued, in flight or acked is dropped as stale.

The bound: at most `max_objects` distinct objects wait per node (plus up to
`window` in flight). A message for an already waiting object always fits (it
replaces). A message for a new object when the bound is reached is refused
(`Outcome.FULL`, counted in `refused_full`) and the node is marked
`needs_resync`: the owner must later compare what the node acked with the
objects as they are now and enqueue what it lacks, as at reconnect. Nothing is
lost that the API server still has, and memory never grows past the bound.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

from beehive.message import Message, Operation
from modules.cloudhub import classify, totals

# (is a delete, resourceVersion): tuples compare so that a delete beats any update.
Version = tuple[bool, int]
_NO_RV = -1  # a delete without resourceVersion (KubeEdge's node delete has none)


class Outcome(StrEnum):
    """What `NodeQueue.enqueue` did with a message."""

    QUEUED = "queued"  # waits as a new entry
    REPLACED = "replaced"  # replaced the waiting version of the same object
    STALE = "stale"  # not newer than what is queued, in flight or acked: dropped
    INVALID = "invalid"  # an update without a numeric resourceVersion: dropped
    FULL = "full"  # a new object while max_objects wait: refused, resync needed


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Resend timing for unacked messages (KubeEdge: 5 s, sendRetryInterval)."""

    initial: float = 5.0  # seconds until the first resend
    factor: float = 2.0  # each further wait is this much longer
    maximum: float = 60.0  # cap on the wait

    def delay(self, attempt: int) -> float:
        """Seconds to wait for an ack after the `attempt`-th write (1-based)."""
        return float(min(self.initial * self.factor ** (attempt - 1), self.maximum))


class Delivery(NamedTuple):
    """A message to write to a node now."""

    node_id: str
    message: Message
    key: str  # object UID, or msg_id for messages without one
    needs_ack: bool
    attempt: int  # 1 for the first write, more for resends


class AckedVersion(NamedTuple):
    """What the edge has stored of one object: the state ObjectSync records."""

    uid: str
    resource_version: int  # -1 for an acked delete that carried none
    deleted: bool  # the edge acked a delete: the ObjectSync record goes


@dataclasses.dataclass(frozen=True, slots=True)
class NodeQueueStats:
    queued: int  # objects (and unkeyed messages) waiting
    in_flight: int  # written, not yet acked
    oldest_unacked_age: float  # seconds since the oldest in-flight message was first written
    last_ack_at: float | None
    sent: int
    resends: int
    acked: int
    nacked: int  # error replies from the edge
    unknown_acks: int  # acks for ids not in flight (late, duplicate or bogus)
    replaced: int
    stale: int
    invalid: int
    superseded: int  # in-flight versions abandoned for a newer one at resend time
    refused_full: int
    needs_resync: bool


@dataclasses.dataclass(slots=True)
class _Entry:
    key: str
    message: Message
    version: Version | None  # None: keyed by msg_id, never compacted
    needs_ack: bool


@dataclasses.dataclass(slots=True)
class _Flight:
    entry: _Entry
    first_sent: float
    attempt: int
    due: float


@dataclasses.dataclass(slots=True)
class _Counters:
    sent: int = 0
    resends: int = 0
    acked: int = 0
    nacked: int = 0
    unknown_acks: int = 0
    replaced: int = 0
    stale: int = 0
    invalid: int = 0
    superseded: int = 0
    refused_full: int = 0


class NodeQueue:
    """The delivery state of one node; plain state, no I/O, time passed in."""

    def __init__(
        self,
        node_id: str,
        *,
        window: int = 32,
        max_objects: int = 4096,
        retry: RetryPolicy | None = None,
        max_tombstones: int = 1024,
        requires_ack: Callable[[Message], bool] = classify.requires_ack,
        sums: totals.Totals | None = None,
    ) -> None:
        if window < 1 or max_objects < 1:
            raise ValueError(f"window and max_objects must be positive: {window}, {max_objects}")
        self.node_id = node_id  # the node these messages go to
        self.window = window  # most unacked messages at once
        self.max_objects = max_objects  # most distinct waiting entries (see module docstring)
        self.retry = retry or RetryPolicy()  # resend timing
        self._first_wait = self.retry.delay(1)  # seconds until the first resend
        self.needs_resync = False  # a message was refused at the bound; see take_resync
        self._requires_ack = requires_ack  # ack/no-ack classification
        self._max_tombstones = max_tombstones  # how many acked deletes are remembered
        self._pending: dict[str, _Entry] = {}  # key -> newest waiting entry, first-queued first
        self._once: dict[str, _Entry] = {}  # msg_id -> waiting no-ack message, FIFO
        self._flights: dict[str, _Flight] = {}  # msg_id -> unacked entry, in write order
        self._flying: dict[str, str] = {}  # key -> msg_id of its in-flight message
        self._timers: list[tuple[float, int, str, int]] = []  # heap of (due, seq, msg_id, attempt)
        self._seq = itertools.count()  # tie-breaker so equal due times stay FIFO
        self._acked: dict[str, Version] = {}  # uid -> newest version the edge acked
        self._tombstones: collections.OrderedDict[str, Version] = collections.OrderedDict()
        self._changed: dict[str, AckedVersion] = {}  # acked versions not yet taken
        self._last_ack_at: float | None = None  # when the last known ack arrived
        self._count = _Counters()  # totals for stats()
        self._sums = sums or totals.Totals()  # running totals over all nodes (shared)

    # Input from cloud modules.

    def enqueue(
        self, message: Message, *, needs_ack: bool | None = None, uid: str | None = None
    ) -> Outcome:
        """Queue a message (resource still ``node/<id>/...``) for this node.

        `needs_ack` and `uid`: the caller's `classify.requires_ack` and
        `classify.object_uid` of it, if it has them already.
        """
        entry = self._entry(message, needs_ack, uid)
        if entry is None:
            self._count.invalid += 1
            return Outcome.INVALID
        if not self._is_new(entry):
            self._count.stale += 1
            return Outcome.STALE
        if entry.key in self._pending:
            self._pending[entry.key] = entry  # keeps its place in line
            self._count.replaced += 1
            return Outcome.REPLACED
        if len(self._pending) + len(self._once) >= self.max_objects:
            self._count.refused_full += 1
            self.needs_resync = True
            return Outcome.FULL
        waiting = self._pending if entry.needs_ack else self._once
        waiting[entry.key] = entry
        self._sums.queued += 1
        return Outcome.QUEUED

    def restore_acked(self, uid: str, resource_version: str) -> None:
        """Seed what the edge is known to have (e.g. from ObjectSync after a restart)."""
        rv = classify.parse_rv(resource_version)
        if rv is not None and (False, rv) > self._acked.get(uid, (False, _NO_RV)):
            self._acked[uid] = (False, rv)

    # Output to the session.

    def next_delivery(self, now: float) -> Delivery | None:
        """The next message to write, or None (nothing ready, or the window is full).

        A due resend comes first; then messages that need no ack (replies such as
        leases, which a node's liveness depends on; they take no window slot);
        then the oldest waiting entry whose object has no message in flight.
        """
        flight = self._pop_due(now)
        if flight is not None:
            return self._resend(flight, now)
        if self._once:
            return self._write(self._once.pop(next(iter(self._once))), now)
        if len(self._flights) >= self.window or not self._pending:
            return None
        flying = self._flying
        for key in self._pending:
            if key not in flying:
                return self._write(self._pending.pop(key), now)
        return None

    def next_deadline(self) -> float | None:
        """The earliest resend time, or None if nothing is in flight."""
        while self._timers and not self._is_live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # Input from the session.

    def ack(self, msg_id: str, now: float) -> bool:
        """The edge stored `msg_id`; False if it was not in flight (counted, ignored)."""
        flight = self._flights.pop(msg_id, None)
        if flight is None:
            self._count.unknown_acks += 1
            return False
        del self._flying[flight.entry.key]
        self._count.acked += 1
        self._last_ack_at = now
        stamp = flight.entry.message.header.timestamp if flight.entry.version else None
        self._sums.ack(written_at=flight.first_sent, now=now, stamp_ms=stamp)
        if flight.entry.version is not None:
            self._record_ack(flight.entry.key, flight.entry.version)
        return True

    def nack(self, msg_id: str, now: float) -> bool:
        """The edge answered `msg_id` with an error: resend it after the backoff."""
        flight = self._flights.get(msg_id)
        if flight is None:
            self._count.unknown_acks += 1
            return False
        self._count.nacked += 1
        self._arm(flight, now)
        return True

    def requeue_in_flight(self) -> None:
        """The connection ended: unacked messages wait again, ahead of the rest."""
        back = {
            f.entry.key: f.entry for f in self._flights.values() if f.entry.key not in self._pending
        }
        self._pending = back | self._pending
        self._sums.queued += len(back)
        self._sums.in_flight -= len(self._flights)
        self._flights.clear()
        self._flying.clear()
        self._timers.clear()

    # Output to the ObjectSync writer and to debug tools.

    def discard(self) -> None:
        """The node was deleted: its entries leave the running totals (call once)."""
        self._sums.queued -= self.depth
        self._sums.in_flight -= len(self._flights)

    def take_acked(self) -> list[AckedVersion]:
        """Acked versions since the last call, one per object (coalesced writes)."""
        changed, self._changed = self._changed, {}
        return list(changed.values())

    def acked_version(self, uid: str) -> int | None:
        """The newest resourceVersion the edge acked for `uid`, or None."""
        version = self._acked.get(uid)
        return version[1] if version is not None else None

    def take_resync(self) -> bool:
        """Whether a resync is owed (and clear it): call once the queue has room."""
        owed, self.needs_resync = self.needs_resync, False
        return owed

    def peek(self) -> list[Message]:
        """Waiting messages, next first (in flight not included)."""
        return [entry.message for entry in (*self._once.values(), *self._pending.values())]

    @property
    def sent(self) -> int:
        """Messages written so far (first writes; resends are counted apart)."""
        return self._count.sent

    @property
    def idle(self) -> bool:
        """Nothing waits and nothing is in flight."""
        return not self._pending and not self._once and not self._flights

    @property
    def depth(self) -> int:
        """Entries waiting (not in flight)."""
        return len(self._pending) + len(self._once)

    def stats(self, now: float) -> NodeQueueStats:
        """Counters and depths for `beehive debug nodes`."""
        oldest = min((f.first_sent for f in self._flights.values()), default=now)
        return NodeQueueStats(
            queued=len(self._pending) + len(self._once),
            in_flight=len(self._flights),
            oldest_unacked_age=now - oldest,
            last_ack_at=self._last_ack_at,
            needs_resync=self.needs_resync,
            **dataclasses.asdict(self._count),
        )

    # Internals.

    def _entry(self, message: Message, needs_ack: bool | None, uid: str | None) -> _Entry | None:
        """Key and version of a message, or None if an update lacks a numeric RV."""
        if needs_ack is None:
            needs_ack = self._requires_ack(message)
        if uid is None:
            uid = classify.object_uid(message)
        if not uid or not needs_ack or message.route.operation == Operation.RESPONSE:
            return _Entry(message.msg_id, message, None, needs_ack)  # never merged
        rv_text = classify.resource_version(message)
        rv = classify.parse_rv(rv_text)
        deleted = message.route.operation == Operation.DELETE
        if deleted and not rv_text:
            rv = _NO_RV
        if rv is None:
            return None
        return _Entry(uid, message, (deleted, rv), needs_ack)

    def _is_new(self, entry: _Entry) -> bool:
        """Newer than every version of the object queued, in flight or acked."""
        key, version = entry.key, entry.version
        if version is None:  # keyed by msg_id: only a duplicate is stale
            return not (key in self._pending or key in self._once or key in self._flights)
        for known in (self._acked.get(key), self._tombstones.get(key)):
            if known is not None and version <= known:
                return False
        pending = self._pending.get(key)
        if pending is not None and pending.version is not None and version <= pending.version:
            return False
        msg_id = self._flying.get(key)
        if msg_id is not None:
            flying = self._flights[msg_id].entry.version
            if flying is not None and version <= flying:
                return False
        return True

    def _write(self, entry: _Entry, now: float) -> Delivery:
        self._count.sent += 1
        sums = self._sums
        sums.sent += 1
        sums.queued -= 1
        if entry.needs_ack:
            sums.in_flight += 1
            flight = _Flight(entry, first_sent=now, attempt=1, due=now)
            self._flights[entry.message.msg_id] = flight
            self._flying[entry.key] = entry.message.msg_id
            self._arm(flight, now)
        return Delivery(self.node_id, entry.message, entry.key, entry.needs_ack, 1)

    def _resend(self, flight: _Flight, now: float) -> Delivery:
        """Resend a due message, or send the newer version waiting behind it instead."""
        key = flight.entry.key
        if key in self._pending:  # superseded: the stale version is abandoned
            self._count.superseded += 1
            self._drop_flight(flight)
            return self._write(self._pending.pop(key), now)
        self._count.resends += 1
        self._sums.resent += 1
        flight.attempt += 1
        self._arm(flight, now)
        message = flight.entry.message
        return Delivery(self.node_id, message, key, True, flight.attempt)

    def _arm(self, flight: _Flight, now: float) -> None:
        attempt = flight.attempt
        flight.due = now + (self._first_wait if attempt == 1 else self.retry.delay(attempt))
        msg_id = flight.entry.message.msg_id
        heapq.heappush(self._timers, (flight.due, next(self._seq), msg_id, flight.attempt))

    def _is_live(self, timer: tuple[float, int, str, int]) -> bool:
        flight = self._flights.get(timer[2])
        return flight is not None and (flight.due, flight.attempt) == (timer[0], timer[3])

    def _pop_due(self, now: float) -> _Flight | None:
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if self._is_live(timer):
                return self._flights[timer[2]]
        return None

    def _drop_flight(self, flight: _Flight) -> None:
        del self._flights[flight.entry.message.msg_id]
        del self._flying[flight.entry.key]
        self._sums.in_flight -= 1

    def _record_ack(self, uid: str, version: Version) -> None:
        """Move the acked version forward (never back); an acked delete leaves a tombstone."""
        acked, tombstone = self._acked.get(uid), self._tombstones.get(uid)
        if (acked is not None and version <= acked) or (
            tombstone is not None and version <= tombstone
        ):
            return
        deleted, rv = version
        if deleted:
            self._acked.pop(uid, None)
            self._tombstones[uid] = version
            while len(self._tombstones) > self._max_tombstones:
                self._tombstones.popitem(last=False)
        else:
            self._acked[uid] = version
        self._changed[uid] = AckedVersion(uid, rv, deleted)
