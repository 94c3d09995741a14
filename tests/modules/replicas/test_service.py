"""Replicas against a Kubernetes API: membership, one leader, failover on a clean
stop, and self-fencing when renewals fail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modules.replicas import service
from modules.replicas.settings import ReplicaSettings
from tests.fakes import FakeClock
from tests.kube_fixtures import KubeTestCluster

FAST: dict[str, Any] = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.1}


@pytest.fixture
def replicas(kube: KubeTestCluster, kube_namespace: str) -> Iterator[list[service.Replica]]:
    made: list[service.Replica] = []
    yield made
    for replica in made:
        replica.stop()


def make(kube: KubeTestCluster, namespace: str, identity: str, **kw: Any) -> service.Replica:
    fields: dict[str, Any] = {"id": identity, "namespace": namespace, **FAST, **kw}
    settings = ReplicaSettings(**fields)
    return service.Replica(kube.new_client(), settings)


class Unreachable:
    """A LeaseAPI whose every call fails as a lost connection does."""

    def __getattr__(self, name: str) -> object:
        def fail(*args: object, **kwargs: object) -> object:
            raise OSError("connection refused")

        return fail


@pytest.mark.integration
def test_replicas_started_together_elect_one_leader_and_see_each_other(
    kube: KubeTestCluster, kube_namespace: str, replicas: list[service.Replica]
) -> None:
    replicas += [make(kube, kube_namespace, f"cloudcore-{i}") for i in range(3)]
    for replica in replicas:
        replica.start()
    assert replicas[0].wait_for(lambda: sum(r.is_leader() for r in replicas) == 1, timeout=5)
    assert replicas[0].members() == ["cloudcore-0", "cloudcore-1", "cloudcore-2"]
    leader = next(r for r in replicas if r.is_leader())
    assert all(r.leader_identity() in ("", leader.identity) for r in replicas)
    lease = kube.coordination.read_namespaced_lease("cloudcore-leader", kube_namespace)
    assert lease.spec.holder_identity == leader.identity
    assert lease.metadata.labels[service.LEADER_LABEL] == "true"


@pytest.mark.integration
def test_a_clean_stop_releases_both_leases_and_another_replica_leads(
    kube: KubeTestCluster, kube_namespace: str, replicas: list[service.Replica]
) -> None:
    # a long lease: only the release can explain a takeover within the wait
    slow = {"lease_duration": 60.0, "renew_deadline": 40.0, "retry_period": 0.1}
    first, second = (make(kube, kube_namespace, name, **slow) for name in ("first", "second"))
    replicas += [first, second]
    first.start()
    assert first.is_leader()
    second.start()
    assert not second.is_leader()
    events: list[str] = []
    second.add_listener(events.append)
    first.stop()
    assert second.wait_for(second.is_leader, timeout=5)
    assert events == [service.LEADER]
    assert second.leader_epoch == 1
    assert second.members() == ["second"]


@pytest.mark.integration
def test_a_replica_that_cannot_renew_fences_itself_at_the_renew_deadline(
    kube: KubeTestCluster, kube_namespace: str, replicas: list[service.Replica]
) -> None:
    clock = FakeClock()
    # the threads wait a long retry period: the test drives the rounds itself
    slow = {"lease_duration": 300.0, "renew_deadline": 200.0, "retry_period": 100.0}
    replica = make(kube, kube_namespace, "alone", **slow)
    replica = service.Replica(replica.api.api_client, replica.settings, clock=clock)
    replicas.append(replica)
    events: list[str] = []
    replica.add_listener(events.append)
    replica.start()
    assert replica.is_leader() and replica.fenced() is None
    replica.member.api = replica.leader.api = Unreachable()  # type: ignore[assignment]
    clock.advance(199)
    replica.member.step()
    assert replica.fenced() is None
    clock.advance(1)
    assert replica.fenced() is not None and not replica.is_leader()  # before any round
    replica.member.step()
    replica.leader.step()
    assert events == [service.MEMBER, service.LEADER, service.FENCED, service.NOT_LEADER]
    assert replica.member.errors == 2


@pytest.mark.integration
def test_what_a_replica_advertises_is_read_by_the_others_while_it_lives(
    kube: KubeTestCluster, kube_namespace: str, replicas: list[service.Replica]
) -> None:
    first, second = (make(kube, kube_namespace, name) for name in ("first", "second"))
    replicas += [first, second]
    first.start()
    second.start()
    first.advertise("where", "http://10.0.0.7:9443")
    assert second.wait_for(lambda: second.peer_annotation("first", "where") != "", timeout=5)
    assert second.peer_annotation("first", "where") == "http://10.0.0.7:9443"
    assert second.peer_annotation("first", "other") == ""
    assert second.peer_annotation("nobody", "where") == ""
    first.owners.claim("edge-1")
    assert second.owner_of("edge-1") == "first" and second.owner_of("edge-2") == ""
    first.stop()  # released: not live any more
    assert second.peer_annotation("first", "where") == ""
