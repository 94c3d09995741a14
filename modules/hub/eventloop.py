"""An asyncio event loop that handles at most `EVENTS_PER_ROUND` ready sockets per turn.

asyncio's selector loop asks epoll for every ready socket at once and runs all their
callbacks in one iteration. When 1,000 edges drop together, that iteration closes
1,000 connections (20-50 µs each, mostly asyncio's own teardown), and every other
node's deliveries wait the tens of milliseconds it takes. Capping what one poll
returns bounds the iteration; epoll hands out the sockets still ready on the next
polls in turn (epoll_wait(2): "successive epoll_wait() calls will round robin
through the set of ready file descriptors"), and callbacks queued meanwhile, such as
the delivery pump, run in between.

Where epoll is missing, this is asyncio's default loop.
"""

from __future__ import annotations

import asyncio
import select
import selectors
from typing import Any

EVENTS_PER_ROUND = 16  # ready sockets one loop iteration takes


class _CappedEpoll:
    """`select.epoll` (which cannot be subclassed) whose `poll` returns at most
    `EVENTS_PER_ROUND` events, whatever the selector asks for."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.register = self._epoll.register
        self.modify = self._epoll.modify
        self.unregister = self._epoll.unregister
        self.fileno = self._epoll.fileno
        self.close = self._epoll.close

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        return self._epoll.poll(timeout, EVENTS_PER_ROUND)


class PacedSelector(selectors.EpollSelector):
    """The standard epoll selector over `_CappedEpoll`."""

    _selector_cls: Any = _CappedEpoll


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop over `PacedSelector`, or asyncio's default where there is no epoll."""
    if not hasattr(select, "epoll"):
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(PacedSelector())
