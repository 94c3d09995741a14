"""A bounded mailbox that is also a pykka actor inbox.

`Hive.send` puts messages in with `offer` (bounded, with a full-policy); pykka's
own control envelopes (stop, proxy calls) come in through `put`, unbounded and
ahead of data, so a stop is never stuck behind a full mailbox. The module's actor
thread takes envelopes with `get` (push style), a pull-style module takes
messages with `take`, or, once a reader is attached (`attach_reader`), another
thread (an event loop) takes them in batches with `take_ready`, woken by a callback
instead of a thread that relays. Counters are plain ints written under the one lock and read
without it: statistics cost one increment per message.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol

from beehive import errors
from beehive.message import Message


class WhenFull(StrEnum):
    """What `offer` does when the mailbox is at capacity."""

    BLOCK = "block"  # wait up to the mailbox timeout, then MailboxFullError
    DROP_OLDEST = "drop-oldest"  # evict the oldest queued message (a dead letter)
    REJECT = "reject"  # MailboxFullError at once


class Envelope(Protocol):
    """What pykka's actor loop reads from its inbox: a message and where its reply goes.

    pykka's own envelopes (stop, proxy calls) come in through `put`; data messages go
    out as `_Queued`, which has the same two attributes, so nothing here depends on
    pykka's private envelope class.
    """

    message: Any
    reply_to: Any


class _Queued:
    """A data message as pykka's loop reads it (no reply expected), and when it was
    queued (for the oldest-age stat)."""

    __slots__ = ("message", "queued_at", "reply_to")

    def __init__(self, message: Message, queued_at: float) -> None:
        self.message = message
        self.reply_to = None
        self.queued_at = queued_at


DropHook = Callable[[Message, str], object]


@dataclasses.dataclass(frozen=True, slots=True)
class MailboxStats:
    """A snapshot of one mailbox."""

    depth: int
    capacity: int
    received: int
    delivered: int
    dropped: int
    oldest_age: float
    closed: bool


class Mailbox:
    """Bounded FIFO of messages plus an unbounded lane for pykka control envelopes."""

    def __init__(
        self,
        name: str,
        *,
        capacity: int,
        when_full: WhenFull = WhenFull.BLOCK,
        timeout: float = 30.0,
        on_drop: DropHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name  # owning module's name, for errors
        self.capacity = capacity  # most data messages queued at once
        self.when_full = when_full  # policy when at capacity
        self.timeout = timeout  # how long BLOCK waits for room
        self._on_drop = on_drop  # called (outside the lock) for every evicted message
        self._clock = clock
        self._data: deque[_Queued] = deque()  # data messages, oldest first
        self._control: deque[Envelope] = deque()  # pykka control envelopes
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        # Threads waiting on each condition: a notify with nobody waiting still costs
        # two lock calls, and there are two per message.
        self._takers_waiting = 0
        self._senders_waiting = 0
        self._closed = False  # no more data accepted (module stopping or stopped)
        self._on_ready: Callable[[], object] | None = None  # the attached reader's wake-up
        self._reader_armed = False  # the next data message calls _on_ready
        self.received = 0  # data messages accepted
        self.delivered = 0  # data messages handed to the module
        self.dropped = 0  # data messages evicted or refused

    # --- producers ------------------------------------------------------------------

    def offer(self, message: Message, timeout: float | None = None) -> None:
        """Queue a data message, applying the full-policy.

        `timeout` shortens the BLOCK wait (send_sync passes what is left of its own).

        Raises:
            MailboxFullError: no room (REJECT at once, BLOCK after the timeout).
            ModuleStoppedError: the mailbox is closed.
        """
        evicted = None
        with self._lock:
            if self._closed:
                raise errors.ModuleStoppedError(self.name, "mailbox closed")
            if len(self._data) >= self.capacity:
                if self.when_full is WhenFull.DROP_OLDEST:
                    evicted = self._data.popleft().message
                    self.dropped += 1
                elif self.when_full is WhenFull.REJECT:
                    self.dropped += 1
                    raise errors.MailboxFullError(self.name, self.capacity, 0.0)
                else:
                    self._wait_for_room(
                        self.timeout if timeout is None else min(timeout, self.timeout)
                    )
            self._data.append(_Queued(message, self._clock()))
            self.received += 1
            if self._takers_waiting:
                self._not_empty.notify()
            wake = self._disarm()
        if wake is not None:
            wake()
        if evicted is not None and self._on_drop is not None:
            self._on_drop(evicted, "evicted: mailbox full (drop-oldest)")

    def offer_some(self, messages: Sequence[Message]) -> int:
        """Queue messages in order for as long as the policy allows without waiting.

        One lock and one wake-up of the consumer for the whole batch: handing a
        module messages one `offer` at a time wakes its thread once per message.
        Returns how many it took: all under DROP_OLDEST (evicting the oldest, the
        batch's own head included when the batch alone overflows); under BLOCK and
        REJECT, those that fit, leaving the rest to the caller.

        Raises:
            ModuleStoppedError: the mailbox is closed (nothing queued).
        """
        evicted: list[Message] = []
        taken = len(messages)
        with self._lock:
            if self._closed:
                raise errors.ModuleStoppedError(self.name, "mailbox closed")
            if self.when_full is WhenFull.DROP_OLDEST:
                excess = len(self._data) + len(messages) - self.capacity
                if excess > 0:  # the oldest go: queued ones first, then the batch's head
                    from_queue = min(excess, len(self._data))
                    evicted = [self._data.popleft().message for _ in range(from_queue)]
                    evicted += messages[: excess - from_queue]
                    messages = messages[excess - from_queue :]
                    self.dropped += excess
            else:
                messages = messages[: max(self.capacity - len(self._data), 0)]
                taken = len(messages)
            now = self._clock()
            self._data.extend([_Queued(m, now) for m in messages])
            self.received += len(messages)
            if messages and self._takers_waiting:
                self._not_empty.notify()
            wake = self._disarm() if messages else None
        if wake is not None:
            wake()
        if evicted and self._on_drop is not None:
            for message in evicted:
                self._on_drop(message, "evicted: mailbox full (drop-oldest)")
        return taken

    def _disarm(self) -> Callable[[], object] | None:
        """The reader's wake-up if it is due (lock held): once per batch it has not taken."""
        if not self._reader_armed:
            return None
        self._reader_armed = False
        return self._on_ready

    def _wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on one of the two conditions (lock held), counted for the notifiers."""
        if condition is self._not_empty:
            self._takers_waiting += 1
            try:
                condition.wait(timeout)
            finally:
                self._takers_waiting -= 1
        else:
            self._senders_waiting += 1
            try:
                condition.wait(timeout)
            finally:
                self._senders_waiting -= 1

    def _wait_for_room(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self._data) >= self.capacity and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.dropped += 1
                raise errors.MailboxFullError(self.name, self.capacity, timeout)
            self._wait(self._not_full, remaining)
        if self._closed:
            raise errors.ModuleStoppedError(self.name, "mailbox closed while waiting for room")

    def put(self, envelope: Envelope, /) -> None:
        """pykka's inbox interface: control envelopes (stop, proxy calls)."""
        with self._lock:
            self._control.append(envelope)
            if self._takers_waiting:
                self._not_empty.notify()

    # --- consumers ------------------------------------------------------------------

    def get(self) -> Envelope:
        """pykka's inbox interface: the next envelope, control first; blocks. While a
        reader is attached, data messages are the reader's: only control comes out."""
        with self._lock:
            while not self._control and not (self._data and self._on_ready is None):
                self._wait(self._not_empty, None)
            if self._control:
                return self._control.popleft()
            return self._pop_data()

    def take(self, timeout: float | None) -> Message | None:
        """The next data message for a pull-style module, or None on timeout.

        Raises:
            ModuleStoppedError: the mailbox is closed and empty.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._data:
                if self._closed:
                    raise errors.ModuleStoppedError(self.name, "stopping")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._wait(self._not_empty, remaining)
            return self._pop_data().message

    def next_data(self) -> Message | None:
        """The next data message if one is queued and no control envelope waits; never blocks.

        Lets the actor handle a run of queued messages without a trip through pykka's
        loop per message, while a stop still comes in between any two of them.
        """
        with self._lock:
            if self._control or not self._data:
                return None
            return self._pop_data().message

    def attach_reader(self, on_ready: Callable[[], object]) -> None:
        """Hand data messages to `take_ready` from now on, instead of the actor.

        `on_ready` is called on the sending thread, outside the lock, when a message
        arrives after the reader has taken all there was: it must not block, only
        schedule a `take_ready` (e.g. with the loop's ``call_soon_threadsafe``). Messages
        already queued do not call it: the reader takes them first. Attaching again
        replaces the reader.
        """
        with self._lock:
            self._on_ready = on_ready
            self._reader_armed = not self._data

    def detach_reader(self) -> None:
        """Give data messages back to the actor (`get`)."""
        with self._lock:
            self._on_ready = None
            self._reader_armed = False
            if self._data and self._takers_waiting:
                self._not_empty.notify()

    def take_ready(self, limit: int) -> list[Message]:
        """Up to `limit` queued data messages, oldest first; never blocks.

        When this leaves the mailbox empty the reader is armed again (the next
        message calls `on_ready`); otherwise the reader must call again: nothing
        else will wake it for the messages still queued.
        """
        with self._lock:
            count = min(limit, len(self._data))
            taken = [self._data.popleft().message for _ in range(count)]
            self.delivered += count
            if count and self._senders_waiting:
                self._not_full.notify_all()
            if not self._data and self._on_ready is not None:
                self._reader_armed = True
            return taken

    def _pop_data(self) -> _Queued:
        queued = self._data.popleft()
        self.delivered += 1
        if self._senders_waiting:
            self._not_full.notify()
        return queued

    def empty(self) -> bool:
        """pykka's inbox interface (while a reader is attached, data is not the actor's)."""
        return not self._control and (not self._data or self._on_ready is not None)

    # --- lifecycle and inspection ---------------------------------------------------

    def close(self) -> None:
        """Accept no more data; wake blocked senders and pull-style receivers."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def drain(self) -> list[Message]:
        """Remove and return every queued data message."""
        with self._lock:
            messages = [q.message for q in self._data]
            self._data.clear()
            self._not_full.notify_all()
            return messages

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` for the next message to leave; True if now empty."""
        with self._lock:
            if self._data:
                self._wait(self._not_full, timeout)
            return not self._data

    def peek(self, limit: int) -> list[tuple[Message, float]]:
        """Up to `limit` queued messages, oldest first, with their age in seconds."""
        now = self._clock()
        with self._lock:
            head = [self._data[i] for i in range(min(limit, len(self._data)))]
        return [(q.message, now - q.queued_at) for q in head]

    @property
    def depth(self) -> int:
        return len(self._data)

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> MailboxStats:
        with self._lock:
            oldest = self._clock() - self._data[0].queued_at if self._data else 0.0
            return MailboxStats(
                depth=len(self._data),
                capacity=self.capacity,
                received=self.received,
                delivered=self.delivered,
                dropped=self.dropped,
                oldest_age=oldest,
                closed=self._closed,
            )
