"""Rebalancing, with several replicas: a replica serving more than its share of the
nodes hands some over, a few at a time.

Edges reconnect to whichever replica the load balancer picks when their replica
goes away, and never move otherwise: after a failover or a rolling restart one
replica serves most nodes (the last one restarted in a rollout served three quarters
of them in the benchmark), and the next failure puts all of those on the others at
once. So every `interval` a replica compares the sessions it serves with its share of
the nodes the live replicas own (their owner Leases) and, when it is over the share
by more than `slack`, closes a few sessions (1001): their edges reconnect through the
balancer, most of them to another replica. At most `rate` sessions a second, and only
once the set of live replicas has stayed the same for `settle` seconds (not while a
failover or a rollout is still moving nodes).

Input: `Rebalance.due`'s arguments, from the caller's reads (a fake clock in tests).
Output: how many sessions to close now. `Rebalancer` is the thread that reads and
closes.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import urllib3
from kubernetes import client

log = logging.getLogger("modules.cloudhub.balance")

_NO_ANSWER = (OSError, urllib3.exceptions.HTTPError, client.ApiException)


class Rebalance:
    """The policy: how many sessions to hand over now (one caller; its clock)."""

    def __init__(
        self, *, slack: float, rate: float, settle: float, clock: Callable[[], float]
    ) -> None:
        self.slack = slack  # share of the fair count a replica may be over
        self.rate = rate  # sessions handed over per second at most (0: never)
        self.settle = settle  # seconds the live replicas must stay the same first
        self._clock = clock
        self._members: frozenset[str] = frozenset()  # the live replicas last seen
        self._since = 0.0  # when they became these
        self._budget = 0.0  # sessions that may be handed over now
        self._last = clock()  # when the budget was last topped up

    def due(self, *, me: str, here: int, owned: dict[str, int], members: list[str]) -> int:
        """Sessions to close now. `here`: the sessions this replica serves; `owned`: the
        nodes each replica holds the owner Lease of (the nodes it serves, and those whose
        session ended that no one claimed since); `members`: the live replicas."""
        now = self._clock()
        elapsed, self._last = now - self._last, now
        live = frozenset(members)
        if live != self._members:
            self._members, self._since, self._budget = live, now, 0.0
            return 0
        if self.rate <= 0 or me not in live or len(live) < 2 or now - self._since < self.settle:
            self._budget = 0.0
            return 0
        # By the Leases, which still name this replica for a node whose session it just
        # closed until another claims it: the total does not shrink while edges move.
        mine = max(here, owned.get(me, 0))
        total = mine + sum(count for holder, count in owned.items() if holder in live - {me})
        limit = math.ceil(total / len(live) * (1 + self.slack))
        excess = here - limit
        if excess <= 0:
            self._budget = 0.0
            return 0
        self._budget = min(self._budget + elapsed * self.rate, max(1.0, self.rate))
        take = min(excess, math.floor(self._budget))
        self._budget -= take
        return take


class Rebalancer:
    """A thread asking `Rebalance` every `interval` seconds and closing what it says."""

    def __init__(
        self, policy: Rebalance, *, me: str, sessions: Callable[[], int],
        owned: Callable[[], dict[str, int]], members: Callable[[], list[str]],
        hand_over: Callable[[int], None], interval: float = 1.0,
    ) -> None:  # fmt: skip
        self._policy = policy
        self._me = me  # this replica's identity
        self._sessions = sessions  # the sessions this replica serves now
        self._owned = owned  # holder -> nodes it holds the owner Lease of (the watch's)
        self._members = members  # the live replicas (an API list: asked every 5 rounds)
        self._hand_over = hand_over  # closes that many sessions (on the loop)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beehive-cloudhub-balance",
                                        daemon=True)  # fmt: skip
        self.handed_over = 0  # sessions closed to rebalance

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        members: list[str] = []
        rounds = 0
        while not self._stop.wait(self._interval):
            try:
                if rounds % 5 == 0:
                    members = self._members()
                rounds += 1
                count = self._policy.due(me=self._me, here=self._sessions(),
                                         owned=self._owned(), members=members)  # fmt: skip
            except _NO_ANSWER as exc:
                log.warning("rebalancing: cannot list the live replicas: %s", exc)
                continue
            if count:
                log.info("rebalancing: handing %d session(s) over to the other replicas", count)
                self._hand_over(count)
                self.handed_over += count
