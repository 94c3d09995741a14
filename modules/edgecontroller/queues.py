"""The controller's queues: keyed (merge to newest), per-node fair, and a rate limiter.

`KeyedQueue`: reflectors put, the downstream thread takes. One entry per key (an
object): a newer version replaces the queued one in place, so a burst for one object
collapses and never grows the queue (KubeEdge issues 3567, 6876).

`FairQueue`: cloudhub's upstream reports are put per node, upstream workers take them
round-robin across nodes, and a node is served by one worker at a time, so its reports
stay in order and a slow or failing node holds at most one worker.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from modules.hub import ratelimit

T = TypeVar("T")


class QueueFullError(Exception):
    """The queue holds its maximum of entries."""


class _Closable:
    """A queue whose takers wait on `_cond` until something is there or it is closed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed = False  # takers no longer wait (the owner is stopping)

    def close(self) -> None:
        """Wake waiting takers now, and let none wait from now on (for a quick stop)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class KeyedQueue(_Closable, Generic[T]):
    """FIFO by first arrival of a key; each key holds only its newest item."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self._items: collections.OrderedDict[Hashable, T] = collections.OrderedDict()
        self._maxsize = maxsize  # distinct keys held before `put` of a new key waits
        self.merged = 0  # items replaced by a newer one before they were taken

    def put(self, key: Hashable, item: T, *, stop: threading.Event | None = None) -> bool:
        """Queue or replace; a new key waits for room. False when `stop` was set first."""
        with self._cond:
            if key in self._items:
                self._items[key] = item
                self.merged += 1
                return True
            while len(self._items) >= self._maxsize:
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.1)
            self._items[key] = item
            self._cond.notify_all()
            return True

    def put_many(
        self, entries: Iterable[tuple[Hashable, T]], *, stop: threading.Event | None = None
    ) -> bool:
        """`put` each entry in order, waking takers once rather than per entry."""
        with self._cond:
            added = False
            for key, item in entries:
                if key in self._items:
                    self._items[key] = item
                    self.merged += 1
                    continue
                if len(self._items) >= self._maxsize:
                    self._cond.notify_all()  # let takers make room
                    while len(self._items) >= self._maxsize:
                        if stop is not None and stop.is_set():
                            return False
                        self._cond.wait(0.1)
                self._items[key] = item
                added = True
            if added:
                self._cond.notify_all()
            return True

    def take(self, timeout: float) -> tuple[Hashable, T] | None:
        """The oldest key and its newest item, or None after `timeout` seconds."""
        batch = self.take_many(1, timeout)
        return batch[0] if batch else None

    def take_many(self, limit: int, timeout: float) -> list[tuple[Hashable, T]]:
        """Up to `limit` oldest entries (waiting up to `timeout` for the first)."""
        with self._cond:
            ready = lambda: bool(self._items) or self._closed  # noqa: E731
            self._cond.wait_for(ready, timeout)
            if not self._items:
                return []
            items = self._items
            batch = [items.popitem(last=False) for _ in range(min(limit, len(items)))]
            self._cond.notify_all()
            return batch

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class FairQueue(_Closable, Generic[T]):
    """Per-node FIFOs served round-robin, one taker per node at a time."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self._queues: dict[str, collections.OrderedDict[Hashable, T]] = {}  # node -> items
        self._ready: collections.deque[str] = collections.deque()  # nodes waiting for a worker
        self._busy: set[str] = set()  # nodes a worker holds
        self._size = 0  # items over all nodes
        self._maxsize = maxsize

    def put(self, node: str, key: Hashable, item: T) -> None:
        """Queue (or replace the queued item with the same key) for `node`.

        Raises:
            QueueFullError: `maxsize` items are queued and `key` is new.
        """
        with self._cond:
            queue = self._queues.setdefault(node, collections.OrderedDict())
            if key not in queue:
                if self._size >= self._maxsize:
                    raise QueueFullError(f"{self._size} upstream reports queued")
                self._size += 1
            queue[key] = item
            if node not in self._busy and node not in self._ready:
                self._ready.append(node)
                self._cond.notify()

    def take(self, timeout: float) -> tuple[str, T] | None:
        """The next item of the next ready node (which becomes busy until `done`)."""
        with self._cond:
            ready = lambda: bool(self._ready) or self._closed  # noqa: E731
            self._cond.wait_for(ready, timeout)
            if not self._ready:
                return None
            node = self._ready.popleft()
            _, item = self._queues[node].popitem(last=False)
            self._size -= 1
            self._busy.add(node)
            return node, item

    def done(self, node: str) -> None:
        """The worker finished `node`'s item; its next one goes to the back of the line."""
        with self._cond:
            self._busy.discard(node)
            if self._queues.get(node):
                self._ready.append(node)
                self._cond.notify()
            else:
                self._queues.pop(node, None)

    def __len__(self) -> int:
        with self._cond:
            return self._size


class TokenBucket:
    """client-go's QPS/burst limiter: `acquire` waits for a token (thread-safe)."""

    def __init__(self, qps: float, burst: int) -> None:
        self._bucket = ratelimit.TokenBucket(rate=qps, burst=burst, now=time.monotonic())
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event) -> bool:
        """Take a token, waiting as needed; False when `stop` was set meanwhile."""
        while True:
            with self._lock:
                now = time.monotonic()
                if self._bucket.take(now):
                    return True
                wait = self._bucket.wait_time(now)
            if stop.wait(wait):
                return False
