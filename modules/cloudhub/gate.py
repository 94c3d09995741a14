"""The handshake gate: how many connections may be mid-handshake at once.

Input, from the transport's accept path and its request check: `admit` when a TCP
connection is accepted, `done` when its upgrade request has arrived. Output: whether
to keep an accepted connection. A connection counts as pending from accept until
its request is in, or until its deadline (the handshake timeout, after which the
server has cut it), so a client that sends nothing or half a request holds a slot
for at most the timeout and never more than `limit` slots are held. Established
sessions are not counted. KubeEdge has no such limit (its server relies on Go's
``http.Server`` timeouts); the class of attack is slowloris.

Over TLS, where a handshake costs real CPU, connections past the limit wait in line
instead of being refused (`enter`): up to `queue_limit` of them, each for at most
`queue_timeout` seconds, started in arrival order as slots free (`done`, `leave`,
`expire`). A reconnect storm is then served as fast as the CPU allows, rather than
most of it being refused and retried after the clients' backoff; what waits costs a
socket and no CPU. Beyond the line, connections are refused as before.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable

_MARGIN = 1.0  # seconds past the timeout before a slot is reclaimed without a `done`
Starter = Callable[[], object]  # starts (or cuts) a waiting connection


class HandshakeGate:
    """Counts pending handshakes (see the module docstring); one thread only."""

    def __init__(
        self, *, limit: int, timeout: float, clock: Callable[[], float],
        queue_limit: int = 0, queue_timeout: float = 0.0,
    ) -> None:  # fmt: skip
        self.limit = limit  # most handshakes pending at once
        self.timeout = timeout  # seconds a handshake may take (TLS and upgrade together)
        self.queue_limit = queue_limit  # most connections waiting for a slot (`enter`)
        self.queue_timeout = queue_timeout  # seconds one may wait
        self._clock = clock  # monotonic seconds
        self._pending: dict[Hashable, float] = {}  # peer address -> deadline of its slot
        # peer -> (when it must have started, what starts it, what cuts it); oldest first
        self._line: collections.OrderedDict[Hashable, tuple[float, Starter, Starter]] = (
            collections.OrderedDict()
        )
        self.refused = 0  # connections closed at accept because `limit` were pending
        self.incomplete = 0  # slots reclaimed without a request (TLS failed, timed out, closed)
        self.waited = 0  # connections that waited in line for a slot
        self.given_up = 0  # connections cut after waiting `queue_timeout`

    def admit(self, peer: Hashable) -> bool:
        """A connection from `peer` was accepted: True if it may start its handshake
        (plain websockets: an upgrade costs little, so nothing waits in line)."""
        self.expire()
        if len(self._pending) >= self.limit:
            self.refused += 1
            return False
        self._take_slot(peer)
        return True

    def enter(self, peer: Hashable, start: Starter, cut: Starter) -> bool:
        """A connection from `peer` was accepted: `start` it now if a slot is free, else
        put it in line (started when a slot frees, or `cut` after `queue_timeout`);
        False, with neither called, when the line is full too."""
        self.expire()
        if len(self._pending) < self.limit:
            self._take_slot(peer)
            start()
            return True
        if len(self._line) >= self.queue_limit:
            self.refused += 1
            return False
        self._line[peer] = (self._clock() + self.queue_timeout, start, cut)
        self.waited += 1
        return True

    def done(self, peer: Hashable) -> None:
        """`peer`'s upgrade request arrived (accepted or refused), or its connection
        ended: free its slot (or its place in line) for the next in line."""
        if self._pending.pop(peer, None) is None:
            self._line.pop(peer, None)
            return
        self._start_waiting()

    def expire(self) -> None:
        """Reclaim slots past their deadline and cut who waited too long; start who can.
        Called on every `enter` and `done`, and on the server's tick."""
        now = self._clock()
        for key in [k for k, deadline in self._pending.items() if deadline <= now]:
            del self._pending[key]
            self.incomplete += 1
        while self._line:
            peer, (deadline, _, cut) = next(iter(self._line.items()))
            if deadline > now:
                break
            del self._line[peer]
            self.given_up += 1
            cut()
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._line and len(self._pending) < self.limit:
            peer, (_, start, _) = self._line.popitem(last=False)
            self._take_slot(peer)
            start()

    def _take_slot(self, peer: Hashable) -> None:
        """`peer` holds a slot until its request comes, or a margin past the timeout."""
        self._pending[peer] = self._clock() + self.timeout + _MARGIN

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def waiting(self) -> int:
        return len(self._line)
