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

    def __init__(self, capacity: int = 1000, *, log_per_second: int = 10) -> None:
        self._ring: collections.deque[DeadLetter] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.total = 0  # dead letters ever recorded, including those the ring forgot
        self.by_module: dict[str, int] = {}  # the same per module (for metrics)
        self._log_limit = log_per_second  # warnings per second before they are summarised
        self._window = 0  # the whole second the current log budget is for
        self._logged = 0  # warnings logged in that second
        self._suppressed = 0  # dead letters not logged in that second

    def add(self, module: str, reason: str, message: Message) -> DeadLetter:
        letter = DeadLetter(time.time(), module, reason, message)
        with self._lock:
            self._ring.append(letter)
            self.total += 1
            self.by_module[module] = self.by_module.get(module, 0) + 1
            loud, suppressed = self._budget(int(letter.at))
        if suppressed:
            log.warning(
                "%d more dead letter(s) not logged (see `beehive debug deadletters`)", suppressed
            )
        if loud:
            log.warning(
                "dead letter: module=%s msg_id=%s reason=%s", module, message.msg_id, reason
            )
        return letter

    def _budget(self, second: int) -> tuple[bool, int]:
        """Whether to log this one, and how many were suppressed in the past window."""
        suppressed = 0
        if second != self._window:
            suppressed, self._suppressed = self._suppressed, 0
            self._window, self._logged = second, 0
        if self._logged < self._log_limit:
            self._logged += 1
            return True, suppressed
        self._suppressed += 1
        return False, suppressed

    def recent(self, limit: int | None = None) -> list[DeadLetter]:
        """The newest `limit` dead letters (all kept ones by default), oldest first."""
        with self._lock:
            letters = list(self._ring)
        return letters if limit is None else letters[-limit:] if limit else []

    def __len__(self) -> int:
        return len(self._ring)
