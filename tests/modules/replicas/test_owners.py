"""Owner Leases in the API under test: claims are compare-and-swaps with an epoch, a
standing claim costs no write, a release names no one, and the watch reports others'
claims (list, then changes)."""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest

from modules.replicas import ownership
from modules.replicas.leases import LeaseAPI
from modules.replicas.owners import ClaimError, OwnerLeases, OwnerWatch
from tests.fakes import eventually

pytestmark = pytest.mark.integration


def leases(kube: Any, namespace: str, identity: str) -> OwnerLeases:
    return OwnerLeases(LeaseAPI(kube.new_client(), namespace, timeout=10), identity)


def test_each_claim_raises_the_epoch_and_the_newest_names_its_replica(kube, kube_namespace):
    r1, r2 = leases(kube, kube_namespace, "r1"), leases(kube, kube_namespace, "r2")
    assert r1.claim("edge-a").epoch == 1
    assert r2.claim("edge-a").epoch == 2
    assert r1.claim("edge-a", known_epoch=1).epoch == 3  # it is no longer r1's at 1
    [owner] = r2.owners()
    assert owner == ownership.Owner("edge-a", "r1", 3)
    lease = kube.coordination.read_namespaced_lease("edge-owner-edge-a", kube_namespace)
    assert lease.metadata.labels[ownership.OWNER_LABEL] == "r1"
    assert lease.spec.lease_transitions == 3


def test_a_standing_claim_is_not_written_again(kube, kube_namespace):
    r1 = leases(kube, kube_namespace, "r1")
    first = r1.claim("edge-b")
    assert first.wrote
    again = r1.claim("edge-b", known_epoch=first.epoch)
    assert (again.epoch, again.wrote) == (first.epoch, False)
    assert r1.claims == 1


def test_concurrent_claims_each_get_their_own_epoch(kube, kube_namespace):
    claimers = [leases(kube, kube_namespace, f"r{i}") for i in range(4)]
    epochs: dict[int, str] = {}  # epoch -> who got it
    lock = threading.Lock()

    def claim(owner: OwnerLeases) -> None:
        got = owner.claim("edge-c").epoch
        with lock:
            epochs[got] = owner.identity

    threads = [threading.Thread(target=claim, args=(c,)) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(epochs) == [1, 2, 3, 4]  # a compare-and-swap each: no epoch twice
    [owner] = claimers[0].owners()
    assert owner.epoch == 4 and owner.holder == epochs[4]


def test_a_release_only_gives_up_our_own_newest_claim(kube, kube_namespace):
    r1, r2 = leases(kube, kube_namespace, "r1"), leases(kube, kube_namespace, "r2")
    old = r1.claim("edge-d").epoch
    r2.claim("edge-d")
    assert not r1.release("edge-d", old)  # r2's now: untouched
    assert r1.owners()[0].holder == "r2"
    assert r2.release("edge-d", old + 1)
    assert r1.owners()[0] == ownership.Owner("edge-d", "", old + 1)


def test_a_claim_the_api_refuses_says_which_node(kube, kube_namespace):
    bad = OwnerLeases(LeaseAPI(kube.new_client(), "Not_A_Namespace", timeout=10), "r1")
    with pytest.raises(ClaimError, match="node edge-e"):
        bad.claim("edge-e")


def test_the_watch_lists_then_reports_each_claim(kube, kube_namespace):
    r1, r2 = leases(kube, kube_namespace, "r1"), leases(kube, kube_namespace, "r2")
    r1.claim("edge-f")
    seen: list[ownership.Owner] = []
    watch = OwnerWatch(r1.api, seen.append, name="test-owner-watch")
    watch.start()
    try:
        assert watch.listed.wait(15)
        assert seen == [ownership.Owner("edge-f", "r1", 1)]
        r2.claim("edge-f")
        r2.claim("edge-g")
        assert eventually(lambda: ownership.Owner("edge-g", "r2", 1) in seen)
        assert ownership.Owner("edge-f", "r2", 2) in seen
    finally:
        watch.stop()


def test_a_long_node_name_gets_a_valid_lease_name():
    node = "n" * 253
    name = ownership.owner_lease_name(node)
    assert len(name) <= 253 and name != ownership.owner_lease_name("n" * 252)
    assert ownership.label_value("replica/" + "x" * 80).isascii()
    assert len(ownership.label_value("x" * 80)) <= 63


def test_a_claim_body_keeps_what_the_lease_held_and_records_the_node():
    now = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    first = ownership.claim(None, node="Edge-H", namespace="ns", identity="r1", now=now)
    assert (first.verb, first.epoch) == ("create", 1)
    assert first.body["metadata"]["name"] == "edge-owner-edge-h"
    assert ownership.node_of(first.body) == "Edge-H"
    first.body["metadata"]["resourceVersion"] = "17"
    second = ownership.claim(first.body, node="Edge-H", namespace="ns", identity="r2", now=now)
    assert (second.verb, second.epoch) == ("replace", 2)
    assert second.body["metadata"]["resourceVersion"] == "17"  # the compare-and-swap
    assert second.body["spec"]["holderIdentity"] == "r2"


def lease_of(owners: OwnerLeases, node: str) -> dict[str, Any]:
    found = owners.api.get(ownership.owner_lease_name(node))
    assert found is not None
    return found


def test_a_claim_against_a_fresh_copy_of_the_lease_reads_nothing(kube, kube_namespace):
    r1, r2 = leases(kube, kube_namespace, "r1"), leases(kube, kube_namespace, "r2")
    r1.claim("edge-i")
    seen = lease_of(r2, "edge-i")
    reads = r2.reads
    got = r2.claim("edge-i", seen=seen)
    assert (got.epoch, got.wrote, r2.reads, r2.conflicts) == (2, True, reads, 0)
    assert r1.owners()[0] == ownership.Owner("edge-i", "r2", 2)


def test_a_stale_copy_loses_its_swap_and_the_claim_reads_and_wins(kube, kube_namespace):
    r1, r2 = leases(kube, kube_namespace, "r1"), leases(kube, kube_namespace, "r2")
    r1.claim("edge-j")
    stale = lease_of(r2, "edge-j")
    r1.claim("edge-j", known_epoch=0)  # epoch 2, written after the copy was taken
    got = r2.claim("edge-j", seen=stale)
    assert (got.epoch, r2.conflicts, r2.reads) == (3, 1, 1)
    assert r1.owners()[0] == ownership.Owner("edge-j", "r2", 3)


def test_a_copy_saying_the_claim_stands_is_checked_before_nothing_is_written(kube, kube_namespace):
    """The copy says r1 holds the node at epoch 1, but r2 took it since: r1 must not
    believe it still owns the node."""
    r1, r2 = leases(kube, kube_namespace, "r1"), leases(kube, kube_namespace, "r2")
    mine = r1.claim("edge-k")
    stale = lease_of(r1, "edge-k")
    r2.claim("edge-k")
    got = r1.claim("edge-k", known_epoch=mine.epoch, seen=stale)
    assert (got.epoch, got.wrote) == (3, True)
    standing = r1.claim("edge-k", known_epoch=3, seen=lease_of(r1, "edge-k"))
    assert (standing.epoch, standing.wrote) == (3, False)


def test_a_copy_of_a_deleted_lease_makes_the_claim_create_it_again(kube, kube_namespace):
    r1, r2 = leases(kube, kube_namespace, "r1"), leases(kube, kube_namespace, "r2")
    r1.claim("edge-l")
    seen = lease_of(r2, "edge-l")
    assert r1.collect(set()) == 1  # the node was deleted: its Lease goes
    got = r2.claim("edge-l", seen=seen)
    assert (got.epoch, got.wrote) == (1, True)
    assert r1.owners() == [ownership.Owner("edge-l", "r2", 1)]


def test_the_watch_keeps_each_lease_and_reports_deleted_ones(kube, kube_namespace):
    r1 = leases(kube, kube_namespace, "r1")
    r1.claim("edge-m")
    seen: list[ownership.Owner] = []
    gone: list[str] = []
    watch = OwnerWatch(r1.api, seen.append, on_gone=gone.append, name="test-owner-watch")
    watch.start()
    try:
        assert watch.listed.wait(15)
        name_m, name_n = ownership.owner_lease_name("edge-m"), ownership.owner_lease_name("edge-n")
        kept = watch.lease(name_m)
        assert kept is not None and ownership.epoch_of(kept) == 1
        assert "managedFields" not in kept["metadata"]
        r1.claim("edge-n")
        assert eventually(lambda: watch.lease(name_n) is not None)
        assert r1.collect({"edge-n"}) == 1  # edge-m was deleted
        assert eventually(lambda: gone == ["edge-m"])
        assert watch.lease(name_m) is None and watch.lease(name_n) is not None
    finally:
        watch.stop()
