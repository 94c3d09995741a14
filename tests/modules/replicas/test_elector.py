"""The sans-I/O elector, driven with a fake clock and an in-memory Lease store that
does what the API server does with resourceVersion (a compare-and-swap)."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from modules.replicas.elector import Elector, Write, holder_of, spec_of
from tests.fakes import FakeClock

WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class LeaseStore:
    """One Lease with resourceVersion checks: 409 (False) on a stale write."""

    def __init__(self) -> None:
        self.lease: Any = None
        self.version = 0

    def apply(self, write: Write) -> Any:
        """The stored Lease after `write`, or None when the CAS failed."""
        if write.verb == "create":
            if self.lease is not None:
                return None
        elif self.lease is None or (
            write.body["metadata"].get("resourceVersion")
            != self.lease["metadata"]["resourceVersion"]
        ):
            return None
        self.version += 1
        self.lease = copy.deepcopy(write.body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


def elector(identity: str, **kw: Any) -> Elector:
    kw = {"duration": 15.0, "renew_deadline": 10.0, **kw}
    return Elector(identity=identity, name="leader", namespace="ns", labels={"a": "b"}, **kw)


def round_(e: Elector, store: LeaseStore, clock: FakeClock, *, read: bool = True) -> bool:
    """What the keeper does in one round; True when a write succeeded."""
    if read:
        e.observe(copy.deepcopy(store.lease), clock())
    write = e.next_write(clock(), WALL)
    if write is None:
        return False
    result = store.apply(write)
    if result is None:
        return False
    e.written(result, clock())
    return True


def test_first_candidate_creates_the_lease_and_holds_it_with_epoch_zero() -> None:
    clock, store, a = FakeClock(), LeaseStore(), elector("a")
    assert round_(a, store, clock)
    assert a.held(clock()) and a.epoch == 0
    spec = spec_of(store.lease)
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
    assert spec["renewTime"].endswith("Z") and len(spec["renewTime"].split(".")[1]) == 7
    assert store.lease["metadata"]["labels"] == {"a": "b"}


def test_a_second_candidate_waits_while_the_holder_renews() -> None:
    clock, store, a, b = FakeClock(), LeaseStore(), elector("a"), elector("b")
    round_(a, store, clock)
    for _ in range(20):
        clock.advance(2)
        assert round_(a, store, clock, read=False)  # a renews without reading
        assert not round_(b, store, clock)
    assert holder_of(store.lease) == "a" and not b.held(clock())
    assert spec_of(store.lease)["leaseTransitions"] == 0


def test_two_candidates_racing_on_create_end_with_one_holder() -> None:
    clock, store, a, b = FakeClock(), LeaseStore(), elector("a"), elector("b")
    a.observe(None, clock())
    b.observe(None, clock())
    wa, wb = a.next_write(clock(), WALL), b.next_write(clock(), WALL)
    assert wa is not None and wb is not None
    assert store.apply(wa) is not None
    assert store.apply(wb) is None  # AlreadyExists
    a.written(store.lease, clock())
    assert a.held(clock()) and not b.held(clock())


def test_a_stale_replace_is_refused_by_the_resource_version() -> None:
    clock, store, a, b = FakeClock(), LeaseStore(), elector("a"), elector("b")
    round_(a, store, clock)
    b.observe(copy.deepcopy(store.lease), clock())
    clock.advance(16)  # b saw no change for a lease duration
    stale = b.next_write(clock(), WALL)
    assert round_(a, store, clock, read=False)  # but a renewed meanwhile
    assert stale is not None and store.apply(stale) is None
    assert holder_of(store.lease) == "a"


def test_the_holder_stops_trusting_its_lease_at_the_renew_deadline() -> None:
    clock, store, a = FakeClock(), LeaseStore(), elector("a")
    round_(a, store, clock)
    clock.advance(9.9)
    assert a.held(clock()) and not a.expired(clock())
    clock.advance(0.1)
    assert not a.held(clock())
    assert a.expired(clock()) and a.epoch is None
    assert not a.expired(clock())  # reported once


def test_another_takes_over_only_after_a_lease_duration_without_change() -> None:
    clock, store, a, b = FakeClock(), LeaseStore(), elector("a"), elector("b")
    round_(a, store, clock)
    assert not round_(b, store, clock)
    clock.advance(14.9)
    assert not round_(b, store, clock)
    assert not a.held(clock())  # a fenced itself 4.9 s before b may take over
    clock.advance(0.1)
    assert round_(b, store, clock)
    assert b.held(clock()) and b.epoch == 1
    assert spec_of(store.lease)["leaseTransitions"] == 1
    # a comes back: it reads, sees b, and holds nothing
    assert not round_(a, store, clock)
    assert not a.held(clock()) and a.epoch is None


def test_a_holder_that_reads_another_holder_has_lost_the_lease() -> None:
    clock, store, a = FakeClock(), LeaseStore(), elector("a")
    round_(a, store, clock)
    taken = copy.deepcopy(store.lease)
    taken["spec"]["holderIdentity"] = "b"
    a.observe(taken, clock())
    assert not a.held(clock()) and a.epoch is None


def test_release_empties_the_holder_and_another_takes_it_at_once() -> None:
    clock, store, a, b = FakeClock(), LeaseStore(), elector("a"), elector("b")
    round_(a, store, clock)
    assert not round_(b, store, clock)
    release = a.release(WALL)
    assert not a.held(clock())  # stops holding before the write
    assert release is not None and store.apply(release) is not None
    assert holder_of(store.lease) == "" and spec_of(store.lease)["leaseDurationSeconds"] == 1
    assert round_(b, store, clock)
    assert b.epoch == 1
    assert a.release(WALL) is None  # nothing left to release


def test_a_restarted_process_with_the_same_identity_gets_a_new_epoch() -> None:
    clock, store = FakeClock(), LeaseStore()
    round_(elector("a"), store, clock)
    again = elector("a")
    assert round_(again, store, clock)
    assert again.epoch == 1


@pytest.mark.parametrize(
    "labels",
    [pytest.param({}, id="no labels on the old lease"), pytest.param({"x": "y"}, id="others kept")],
)
def test_takeover_adds_its_labels_and_keeps_others(labels: dict[str, str]) -> None:
    clock, store, b = FakeClock(), LeaseStore(), elector("b")
    store.lease = {"metadata": {"name": "leader", "resourceVersion": "0", "labels": labels},
                   "spec": {"holderIdentity": ""}}  # fmt: skip
    assert round_(b, store, clock)
    assert store.lease["metadata"]["labels"] == {**labels, "a": "b"}


def test_annotations_set_while_holding_go_out_with_the_next_renewal() -> None:
    clock, store, a = FakeClock(), LeaseStore(), elector("a")
    assert round_(a, store, clock)
    assert "annotations" not in store.lease["metadata"]  # none asked for: none written
    store.lease["metadata"]["annotations"] = {"someone": "else"}  # another writer's
    a.annotations["router"] = "http://10.0.0.7:9443"
    clock.advance(2)
    assert round_(a, store, clock)
    assert store.lease["metadata"]["annotations"] == {"someone": "else",
                                                      "router": "http://10.0.0.7:9443"}  # fmt: skip
