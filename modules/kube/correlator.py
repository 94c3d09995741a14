"""Kubernetes Events correlated as client-go's recorder does it: aggregated, counted and
spam-filtered, with the time passed in (no I/O, no threads).

Input: an `Occurrence` (what happened to which object) and the time, from the writer
thread of `modules.kube.recorder`; output: a `Write` (create this Event, or patch the
one written before) or None (dropped by the spam filter); a write that failed for good
comes back through `failed`. As client-go's tools/record (events_cache.go,
``EventCorrelator`` with its default options), in this order:

1. Aggregation (``EventAggregator``): occurrences alike but for their message (same
   object, type and reason from the same source) are counted by distinct message
   within `AGGREGATE_INTERVAL` (10 minutes) of the last one; from the
   `AGGREGATE_MAX`-th (10th) distinct message on, they become one Event whose message
   is ``(combined from similar events): `` and the newest message.
2. Observation (``eventLogger``): the same occurrence again (same object, type, reason,
   message and source) patches the Event written before: ``count`` + 1,
   ``lastTimestamp`` now, and the message. client-go patches as long as its cache
   remembers the Event; here only within `REPEAT_INTERVAL` (10 minutes) of its last
   occurrence, later it is a new Event.
3. Spam filter (``EventSourceObjectSpamFilter``): per object and source, a token bucket
   of `SPAM_BURST` (25) refilled by one every `SPAM_REFILL` (300 s); past it an
   occurrence is dropped, though it still counts in the ``count`` of the next write.

Each cache keeps the newest `CACHE_SIZE` (4,096) keys, as client-go's LRU caches.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from modules.hub.ratelimit import TokenBucket

Obj = dict[str, Any]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

NORMAL, WARNING = "Normal", "Warning"  # an Event's type
COMBINED = "(combined from similar events): "
AGGREGATE_INTERVAL = 600.0  # seconds: similar occurrences further apart start afresh
AGGREGATE_MAX = 10  # distinct messages of similar occurrences before they are combined
REPEAT_INTERVAL = 600.0  # seconds: a repeat later than this is a new Event
SPAM_BURST = 25  # Events per object and source at once
SPAM_REFILL = 300.0  # seconds per Event beyond the burst
CACHE_SIZE = 4096  # keys each cache remembers
MAX_MESSAGE = 1024  # characters of a message (events.k8s.io's limit on a note)
DEFAULT_NAMESPACE = "default"  # where Events about cluster-scoped objects go


@dataclasses.dataclass(frozen=True, slots=True)
class Occurrence:
    """Something that happened to an object, as a caller records it."""

    kind: str  # the involved object's kind, e.g. "Node"
    name: str
    uid: str  # its uid; for a Node not known, its name (as the kubelet does)
    type: str  # NORMAL or WARNING
    reason: str  # UpperCamelCase, e.g. "EdgeConnected"
    message: str
    namespace: str = ""  # the involved object's; "" when it is cluster-scoped
    api_version: str = "v1"


@dataclasses.dataclass(frozen=True, slots=True)
class Write:
    """What the writer sends: `event` to create, or `patch` (strategic merge) it."""

    key: Hashable  # the observation it belongs to (see `EventCorrelator.failed`)
    namespace: str  # the Event's namespace
    name: str  # the Event's name
    event: Obj  # the Event as it is now (created again when a patch finds it gone)
    patch: Obj | None  # count, lastTimestamp and message; None: create `event`


@dataclasses.dataclass(slots=True)
class _Seen:
    """An Event written (or about to be): what its next patch needs."""

    name: str
    first: str  # its firstTimestamp
    count: int
    last: float  # when it last occurred


@dataclasses.dataclass(slots=True)
class _Similar:
    """Occurrences alike but for their message."""

    messages: set[str]  # distinct messages, at most AGGREGATE_MAX - 1 kept
    last: float  # when the last one occurred


class LRU(Generic[K, V]):
    """A dict that forgets its least recently used keys beyond `size`."""

    def __init__(self, size: int) -> None:
        self._size = size  # most keys kept
        self._items: collections.OrderedDict[K, V] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)


def timestamp(at: float) -> str:
    """A Kubernetes Time (RFC 3339, whole seconds, UTC) of epoch seconds."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class EventCorrelator:
    """Decides, per occurrence, what to write (see the module docstring); one thread."""

    def __init__(self, *, component: str, instance: str, cache_size: int = CACHE_SIZE) -> None:
        self.component = component  # source.component and reportingComponent
        self.instance = instance  # reportingInstance: the host or replica
        self._similar: LRU[Hashable, _Similar] = LRU(cache_size)  # aggregation records
        self._seen: LRU[Hashable, _Seen] = LRU(cache_size)  # Events written, by key
        self._buckets: LRU[Hashable, TokenBucket] = LRU(cache_size)  # spam filter per object
        self._last_ns = 0  # the newest name stamp handed out (names stay unique)
        self.spam_dropped = 0  # occurrences dropped by the spam filter
        self.combined = 0  # occurrences written as "(combined from similar events)"

    def correlate(self, occurrence: Occurrence, now: float) -> Write | None:
        """The write for `occurrence` at `now` (epoch seconds), or None if filtered out."""
        message, key = self._aggregate(occurrence, now)
        write = self._observe(occurrence, message, key, now)
        if not self._admit(occurrence, now):
            self.spam_dropped += 1
            return None
        return write

    def failed(self, write: Write) -> None:
        """`write` could not be made: the next occurrence creates its Event afresh."""
        seen = self._seen.get(write.key)
        if seen is not None and seen.name == write.name:
            self._seen.pop(write.key)

    def _aggregate(self, occurrence: Occurrence, now: float) -> tuple[str, Hashable]:
        """The message to write and the observation key (EventAggregate)."""
        similar_key = (*_object_key(occurrence), occurrence.type, occurrence.reason)
        message = occurrence.message[:MAX_MESSAGE]
        record = self._similar.get(similar_key)
        if record is None or now - record.last > AGGREGATE_INTERVAL:
            record = _Similar(set(), now)
        record.messages.add(message)
        record.last = now
        self._similar.put(similar_key, record)
        if len(record.messages) < AGGREGATE_MAX:
            return message, ("event", similar_key, message)
        record.messages.pop()  # the set grows no further (client-go: PopAny)
        self.combined += 1
        return (COMBINED + message)[:MAX_MESSAGE], ("combined", similar_key)

    def _observe(self, occurrence: Occurrence, message: str, key: Hashable, now: float) -> Write:
        """A create, or a patch of the Event written before (eventObserve)."""
        stamp = timestamp(now)
        seen = self._seen.get(key)
        fresh = seen is None or now - seen.last > REPEAT_INTERVAL
        if seen is None or fresh:
            seen = _Seen(self._name(occurrence.name, now), stamp, 1, now)
        else:
            seen.count += 1
            seen.last = now
        self._seen.put(key, seen)
        event = self._event(occurrence, message, seen, stamp)
        patch = None if fresh else {"count": seen.count, "lastTimestamp": stamp, "message": message}
        namespace = event["metadata"]["namespace"]
        return Write(key, namespace, seen.name, event, patch)

    def _admit(self, occurrence: Occurrence, now: float) -> bool:
        key = _object_key(occurrence)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(rate=1 / SPAM_REFILL, burst=SPAM_BURST, now=now)
            self._buckets.put(key, bucket)
        return bucket.take(now)

    def _name(self, object_name: str, now: float) -> str:
        """``<object>.<nanoseconds in hex>``, as client-go names Events; never one twice."""
        self._last_ns = max(int(now * 1e9), self._last_ns + 1)
        return f"{object_name}.{self._last_ns:x}"

    def _event(self, occurrence: Occurrence, message: str, seen: _Seen, stamp: str) -> Obj:
        involved = {"kind": occurrence.kind, "name": occurrence.name, "uid": occurrence.uid,
                    "apiVersion": occurrence.api_version}  # fmt: skip
        if occurrence.namespace:
            involved["namespace"] = occurrence.namespace
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": seen.name,
                "namespace": occurrence.namespace or DEFAULT_NAMESPACE,
            },
            "involvedObject": involved,
            "reason": occurrence.reason,
            "message": message,
            "type": occurrence.type,
            "source": {"component": self.component},
            "firstTimestamp": seen.first,
            "lastTimestamp": stamp,
            "count": seen.count,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }


def _object_key(occurrence: Occurrence) -> tuple[str, ...]:
    """The involved object (one correlator has one source)."""
    return (occurrence.kind, occurrence.namespace, occurrence.name, occurrence.uid,
            occurrence.api_version)  # fmt: skip
