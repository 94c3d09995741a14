"""Rebalancing's policy, with a fake clock: who hands sessions over, how many, when."""

from __future__ import annotations

from modules.cloudhub import balance

LIVE = ["r1", "r2", "r3"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def policy(clock: Clock, **kwargs: float) -> balance.Rebalance:
    settings = {"slack": 0.1, "rate": 5.0, "settle": 30.0} | kwargs
    return balance.Rebalance(clock=clock, **settings)


def settled(rebalance: balance.Rebalance, clock: Clock, members: list[str] = LIVE) -> None:
    """The live replicas seen, then the settle time passed."""
    assert rebalance.due(me="r1", here=0, owned={}, members=members) == 0
    clock.now += 31.0


def test_a_replica_over_its_share_hands_over_at_the_rate_down_to_its_share() -> None:
    clock = Clock()
    rebalance = policy(clock)
    settled(rebalance, clock)
    owned = {"r1": 700, "r2": 100, "r3": 100}  # 900 nodes: 300 each, 330 allowed
    here, handed = 700, []
    for _ in range(200):
        clock.now += 1.0
        count = rebalance.due(me="r1", here=here, owned=owned, members=LIVE)
        handed.append(count)
        here -= count
        owned["r2"] += count  # they reconnect elsewhere
        owned["r1"] = here
    assert max(handed) == 5  # the rate
    assert here == 330  # its share (300) and the slack
    assert rebalance.due(me="r1", here=here, owned=owned, members=LIVE) == 0


def test_within_the_slack_nothing_moves() -> None:
    clock = Clock()
    rebalance = policy(clock)
    settled(rebalance, clock)
    clock.now += 10.0
    owned = {"r2": 290, "r3": 280}
    assert rebalance.due(me="r1", here=330, owned=owned, members=LIVE) == 0  # 300 x 1.1


def test_nothing_moves_until_the_live_replicas_stayed_the_same_for_the_settle_time() -> None:
    clock = Clock()
    rebalance = policy(clock)
    owned = {"r2": 0, "r3": 0}
    assert rebalance.due(me="r1", here=900, owned=owned, members=LIVE) == 0
    clock.now += 29.0
    assert rebalance.due(me="r1", here=900, owned=owned, members=LIVE) == 0
    clock.now += 2.0
    assert rebalance.due(me="r1", here=900, owned=owned, members=LIVE) == 5
    # A replica went (a failover is moving nodes): wait again.
    clock.now += 1.0
    assert rebalance.due(me="r1", here=900, owned=owned, members=["r1", "r2"]) == 0
    clock.now += 10.0
    assert rebalance.due(me="r1", here=900, owned=owned, members=["r1", "r2"]) == 0


def test_alone_or_not_a_live_member_or_turned_off_it_hands_nothing_over() -> None:
    clock = Clock()
    for members, kwargs in ((["r1"], {}), (["r2", "r3"], {}), (LIVE, {"rate": 0.0})):
        rebalance = policy(clock, **kwargs)
        settled(rebalance, clock, members)
        clock.now += 5.0
        assert rebalance.due(me="r1", here=900, owned={"r2": 0, "r3": 0}, members=members) == 0


def test_the_nodes_of_replicas_that_are_gone_do_not_count() -> None:
    clock = Clock()
    rebalance = policy(clock)
    settled(rebalance, clock, ["r1", "r2"])
    clock.now += 5.0
    # r3 is gone: its Leases still name it, but its nodes are not anyone's share.
    owned = {"r2": 100, "r3": 800}
    assert rebalance.due(me="r1", here=100, owned=owned, members=["r1", "r2"]) == 0
    clock.now += 5.0  # were r3's counted, r1 would be far below its share; r2 is over it
    assert rebalance.due(me="r1", here=300, owned=owned, members=["r1", "r2"]) > 0


def test_a_slow_caller_does_not_save_up_more_than_a_seconds_worth() -> None:
    clock = Clock()
    rebalance = policy(clock)
    settled(rebalance, clock)
    clock.now += 60.0
    assert rebalance.due(me="r1", here=900, owned={"r2": 0, "r3": 0}, members=LIVE) == 5


def test_sessions_just_closed_still_count_for_their_replica_until_claimed_elsewhere() -> None:
    clock = Clock()
    rebalance = policy(clock, rate=100.0)
    settled(rebalance, clock)
    clock.now += 1.0
    owned = {"r1": 60, "r2": 20, "r3": 20}  # 100 nodes: 33.3 each, 37 allowed
    assert rebalance.due(me="r1", here=60, owned=owned, members=LIVE) == 23
    clock.now += 1.0  # the 23 edges have not reconnected anywhere yet
    assert rebalance.due(me="r1", here=37, owned=owned, members=LIVE) == 0
