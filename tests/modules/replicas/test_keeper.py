"""LeaseKeeper's rounds against an in-memory Lease API on a fake clock: a renewal counts
from when it was sent, so that a slow answer never stretches the holding past the time
another replica may take the Lease over."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from modules.replicas.elector import Elector
from modules.replicas.keeper import LeaseKeeper
from tests.fakes import FakeClock

WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class SlowLeaseAPI:
    """One Lease, stored at once when written (with resourceVersion checks), whose
    answers come `delay` seconds of the fake clock later."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delay = 0.0  # seconds each answer takes
        self.lease: dict[str, Any] | None = None
        self.written_at: list[float] = []  # when the server stored each write

    def get(self, name: str) -> dict[str, Any] | None:
        self.clock.advance(self.delay)
        return copy.deepcopy(self.lease)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is None
        return self._store(body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        assert body["metadata"]["resourceVersion"] == self.lease["metadata"]["resourceVersion"]
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        version = int((self.lease or {"metadata": {}})["metadata"].get("resourceVersion", 0))
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(version + 1)
        self.written_at.append(self.clock())
        self.clock.advance(self.delay)  # stored; the answer is on its way
        return copy.deepcopy(self.lease)


def slow_keeper() -> tuple[FakeClock, SlowLeaseAPI, LeaseKeeper]:
    """A keeper of a 12 s Lease with a 10 s renew deadline and a 2 s retry: valid settings
    (duration > renew deadline > 1.2 x retry) where a call may take more than duration -
    renew deadline (the replicas give a call half the deadline)."""
    clock = FakeClock()
    api = SlowLeaseAPI(clock)
    elector = Elector(identity="a", name="m", namespace="ns", labels={}, duration=12.0,
                      renew_deadline=10.0)  # fmt: skip
    keeper = LeaseKeeper(elector, api, retry_period=2.0, clock=clock, wall=lambda: WALL)  # type: ignore[arg-type]
    return clock, api, keeper


def test_a_renewal_counts_from_when_it_was_sent_not_from_when_its_answer_came() -> None:
    clock, api, keeper = slow_keeper()
    keeper.step()
    assert keeper.held()
    api.delay = 4.9  # the API server stores the renewal at once, its answer is slow
    keeper.step()
    stored = api.written_at[-1]
    assert clock() == stored + 4.9 and keeper.held()
    # Another replica sees the renewal from when it was stored on: it may take the Lease
    # over 12 s later. The holder must have stopped trusting it before then.
    clock.advance(stored + 10.0 - clock())
    assert not keeper.held()


def test_a_fast_renewal_keeps_holding_for_the_renew_deadline() -> None:
    clock, _, keeper = slow_keeper()
    keeper.step()
    clock.advance(9.9)
    keeper.step()  # renewed
    clock.advance(9.9)
    assert keeper.held()
    clock.advance(0.1)
    assert not keeper.held()


def test_a_lapse_is_reported_even_when_the_next_round_takes_the_lease_again() -> None:
    """A process paused past its renew deadline (SIGSTOP) renews its own Lease in the
    first round after it resumes: the lapse is still told, before that renewal."""
    clock, _, keeper = slow_keeper()
    told: list[tuple[bool, bool]] = []  # (held as told, held by the keeper's reckoning then)
    keeper.on_change = lambda held: told.append((held, keeper.held()))
    keeper.step()
    clock.advance(30.0)  # paused: no round ran for three renew deadlines
    keeper.step()
    assert keeper.held()
    assert [held for held, _ in told] == [True, False, True]
    assert told[1] == (False, False)  # told before the round that took it again
