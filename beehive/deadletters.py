"""Dead letters: every message the hive could not deliver, kept in a bounded ring.

Fed by the hive (unknown targets, full or closed mailboxes, handler failures,
late replies, shutdown leftovers); read by `beehive debug deadletters`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time

from beehive.message import Message

log = logging.getLogger("beehive.deadletters")


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One undelivered message and why."""

    at: float  # wall-clock time (epoch seconds)
    module: str  # the module it was for (or came from, for failed handlers)
    reason: str
    message: Message

    @property
    def msg_id(self) -> str:
        return self.message.msg_id


class DeadLetters:
    """A bounded ring of dead letters plus a total count that never wraps."""

    def __init__(self, capacity: int = 1000) -> None:
        self._ring: collections.deque[DeadLetter] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.total = 0  # dead letters ever recorded, including those the ring forgot

    def add(self, module: str, reason: str, message: Message) -> DeadLetter:
        letter = DeadLetter(time.time(), module, reason, message)
        with self._lock:
            self._ring.append(letter)
            self.total += 1
        log.warning("dead letter: module=%s msg_id=%s reason=%s", module, message.msg_id, reason)
        return letter

    def recent(self, limit: int | None = None) -> list[DeadLetter]:
        """The newest `limit` dead letters (all kept ones by default), oldest first."""
        with self._lock:
            letters = list(self._ring)
        return letters if limit is None else letters[-limit:] if limit else []

    def __len__(self) -> int:
        return len(self._ring)
