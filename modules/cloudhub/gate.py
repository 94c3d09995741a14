"""The handshake gate: how many connections may be mid-handshake at once.

Input, from the transport's accept path and its request check: `admit` when a TCP
connection is accepted, `done` when its upgrade request has arrived. Output: whether
to keep an accepted connection. A connection counts as pending from accept until
its request is in, or until its deadline (the handshake timeout, after which the
server has cut it), so a client that sends nothing or half a request holds a slot
for at most the timeout and never more than `limit` slots are held. Established
sessions are not counted. KubeEdge has no such limit (its server relies on Go's
``http.Server`` timeouts); the class of attack is slowloris.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

_MARGIN = 1.0  # seconds past the timeout before a slot is reclaimed without a `done`


class HandshakeGate:
    """Counts pending handshakes (see the module docstring); one thread only."""

    def __init__(self, *, limit: int, timeout: float, clock: Callable[[], float]) -> None:
        self.limit = limit  # most handshakes pending at once
        self.timeout = timeout  # seconds a handshake may take (TLS and upgrade together)
        self._clock = clock  # monotonic seconds
        self._pending: dict[Hashable, float] = {}  # peer address -> deadline of its slot
        self.refused = 0  # connections closed at accept because `limit` were pending
        self.incomplete = 0  # slots reclaimed without a request (TLS failed, timed out, closed)

    def admit(self, peer: Hashable) -> bool:
        """A connection from `peer` was accepted: True if it may start its handshake."""
        now = self._clock()
        for key in [k for k, deadline in self._pending.items() if deadline <= now]:
            del self._pending[key]
            self.incomplete += 1
        if len(self._pending) >= self.limit:
            self.refused += 1
            return False
        self._pending[peer] = now + self.timeout + _MARGIN
        return True

    def done(self, peer: Hashable) -> None:
        """The upgrade request from `peer` arrived (accepted or refused): free its slot."""
        self._pending.pop(peer, None)

    @property
    def pending(self) -> int:
        return len(self._pending)
