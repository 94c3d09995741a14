"""CloudHubCore with several replicas (`claims=True`), driven directly: a session is
served once its node is claimed, only owned nodes get a queue, a newer claim by another
replica takes the node away, and a takeover starts from the records read fresh."""

from __future__ import annotations

from typing import Any

from modules.cloudhub import objects
from modules.cloudhub.core import CLOSE_NORMAL, CLOSE_TRY_AGAIN, Close, CloudHubCore, HubLimits
from modules.cloudhub.owned import Claim
from tests.fakes import FakeClock
from tests.modules.cloudhub.test_core import (
    CONN,
    NODE,
    ack,
    notices,
    pod,
    pod_ref,
    pumped,
    resynced,
    row,
)


def make(clock: FakeClock, **limits: Any) -> CloudHubCore:
    return CloudHubCore(limits=HubLimits(**limits), clock=clock, claims=True)


def owned(clock: FakeClock, epoch: int = 1) -> CloudHubCore:
    """A core serving NODE on CONN, claimed at `epoch` (nothing known of it before)."""
    core = make(clock)
    assert core.open(CONN, NODE)
    core.take_outputs()
    core.claimed(NODE, CONN, epoch, [])
    core.take_outputs()
    return core


def test_a_session_asks_for_a_claim_and_is_served_once_it_is_written() -> None:
    core = make(FakeClock())
    assert core.open(CONN, NODE)
    out = core.take_outputs()
    assert out.claims == [Claim(NODE, CONN, None)]
    assert out.upstream == []  # no connected, no resync before the claim
    core.downstream(pod("a", 5))  # what comes meanwhile waits for the node
    assert pumped(core) == []
    core.claimed(NODE, CONN, 3, [])
    out = core.take_outputs()
    assert notices(out) == [("connected", "node/edge-1"), ("resync", "node/edge-1")]
    content = out.upstream[1].content
    assert isinstance(content, dict) and content["takeover"] == "true"  # read it all fresh
    [delivered] = pumped(core)
    assert delivered.route.resource.endswith("pod/a")


def test_a_reconnect_to_the_replica_that_holds_the_node_claims_with_its_epoch() -> None:
    core = owned(FakeClock(), epoch=4)
    core.lost(CONN)
    core.take_outputs()
    assert core.open(2, NODE)
    assert core.take_outputs().claims == [Claim(NODE, 2, 4)]
    core.claimed(NODE, 2, 4, None)  # the Lease still said so: nothing written, nothing read
    out = core.take_outputs()
    assert notices(out) == [("connected", "node/edge-1"), ("resync", "node/edge-1")]
    content = out.upstream[1].content
    assert isinstance(content, dict) and "takeover" not in content


def test_a_claim_that_cannot_be_written_closes_the_session_with_1013() -> None:
    core = make(FakeClock())
    core.open(CONN, NODE)
    core.take_outputs()
    core.downstream(pod("a", 5))
    core.claim_failed(NODE, CONN, "500 Internal Server Error")
    out = core.take_outputs()
    assert out.closes == [
        Close(CONN, CLOSE_TRY_AGAIN, "cannot claim the node: 500 Internal Server Error")
    ]
    assert [r for r in core.nodes() if r["node"] == NODE and r["queued"]] == []  # no queue


def test_messages_for_a_node_this_replica_does_not_own_are_not_queued() -> None:
    core = make(FakeClock())
    core.downstream(pod("a", 5))
    assert core.owned is not None and core.owned.dropped == 1
    assert [r["node"] for r in core.nodes()] == []


def test_a_newer_claim_by_another_replica_ends_the_session_and_drops_the_queue() -> None:
    core = owned(FakeClock(), epoch=2)
    core.downstream(pod("a", 5))
    core.downstream(pod("b", 6))
    [first, _] = pumped(core)
    ack(core, first)
    core.foreign_claim(NODE, "r2", 3)
    out = core.take_outputs()
    [close] = out.closes
    assert (close.conn, close.code) == (CONN, CLOSE_NORMAL)
    assert "replica r2 claimed it (epoch 3)" in close.reason
    assert notices(out) == [("disconnected", "node/edge-1")]
    assert [r for r in core.nodes() if r["node"] == NODE and r["queued"]] == []
    core.downstream(pod("c", 7))  # the node is r2's: nothing is queued for it here
    assert core.owned is not None and core.owned.dropped == 1 and core.owned.taken == 1
    assert not any(isinstance(op, objects.Forget) for op in out.syncs)  # records stay


def test_an_older_claim_seen_late_changes_nothing() -> None:
    core = owned(FakeClock(), epoch=5)
    core.foreign_claim(NODE, "r2", 4)  # the claim ours replaced
    core.foreign_claim(NODE, "r2", 5)  # cannot be newer than ours at the same epoch
    assert core.take_outputs().closes == []
    core.downstream(pod("a", 5))
    assert len(pumped(core)) == 1


def test_a_newer_claim_seen_while_ours_is_written_wins_when_ours_lands() -> None:
    core = make(FakeClock())
    core.open(CONN, NODE)
    core.take_outputs()
    core.foreign_claim(NODE, "r2", 7)
    assert core.take_outputs().closes == []  # ours is not answered yet
    core.claimed(NODE, CONN, 6, [])  # ours was written before theirs
    out = core.take_outputs()
    assert [c.code for c in out.closes] == [CLOSE_NORMAL]
    assert notices(out) == []  # neither connected nor disconnected: it was never served


def test_a_takeover_starts_from_the_records_read_fresh() -> None:
    # This replica served the node at epoch 1 and acked a@5; then another took it and
    # the node acked a@9 there. Taking it back, a@8 from a lagging cache is not sent.
    clock = FakeClock()
    core = owned(clock, epoch=1)
    core.downstream(pod("a", 5))
    [first] = pumped(core)
    ack(core, first)
    core.foreign_claim(NODE, "r2", 2)
    core.take_outputs()
    core.open(2, NODE)
    assert core.take_outputs().claims == [Claim(NODE, 2, None)]
    fresh = [objects.Restored(NODE, pod_ref("a"), 9), objects.Restored(NODE, pod_ref("b"), None)]
    core.claimed(NODE, 2, 3, fresh)
    core.take_outputs()
    core.downstream(pod("a", 8))
    assert pumped(core, 2) == []  # not newer than what the node acked at the other replica
    assert row(core)["objects"] == 2  # a and b (queued there, never acked): both known
    core.downstream(resynced(["uid-a"]))  # b is not wanted: its delete is owed
    [delete] = pumped(core, 2)
    assert delete.route.operation == "delete" and delete.route.resource.endswith("pod/b")


def test_what_is_queued_while_the_claim_is_written_is_recorded_when_acked() -> None:
    core = make(FakeClock())
    core.open(CONN, NODE)
    core.take_outputs()
    core.downstream(pod("c", 7))  # its record was not written before the fresh read
    assert [type(op) for op in core.take_outputs().syncs] == [objects.Ensure]
    core.claimed(NODE, CONN, 2, [objects.Restored(NODE, pod_ref("a"), 3)])
    core.take_outputs()
    [delivered] = pumped(core)
    out = ack(core, delivered)
    assert [(type(op), op.ref.uid) for op in out.syncs] == [(objects.Acked, "uid-c")]
    assert row(core)["objects"] == 2


def test_a_takeover_whose_session_ended_before_it_was_served_still_resyncs_fresh() -> None:
    core = make(FakeClock())
    core.open(CONN, NODE)
    core.take_outputs()
    core.lost(CONN)  # gone while its claim was written
    assert core.take_outputs().upstream == []  # never announced connected: nor disconnected
    core.claimed(NODE, CONN, 4, [])  # written, records read: the node came from elsewhere
    assert core.take_outputs().upstream == []
    core.open(2, NODE)
    assert core.take_outputs().claims == [Claim(NODE, 2, 4)]
    core.claimed(NODE, 2, 4, None)  # still ours: nothing written, nothing read
    out = core.take_outputs()
    content = out.upstream[1].content
    assert isinstance(content, dict) and content["takeover"] == "true"
