"""Two certserver replicas on one API, started at the same moment: exactly one CA,
one token, and a fenced replica that stops signing (KubeEdge #5922: two replicas
each made a CA)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from beehive import Hive
from modules.certs import ca as ca_mod
from modules.certs import cloud, enroll, token
from modules.certs.errors import CAStoreError
from modules.certs.module import ADMIN_COMMAND, CertServer
from modules.certs.settings import CertSettings
from modules.kube.connection import KubeConnection
from modules.replicas.service import Replica
from modules.replicas.settings import ReplicaSettings
from tests.fakes import eventually
from tests.kube_fixtures import KubeTestCluster

FAST: dict[str, Any] = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.1}


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        replica.stop()


def start_together(count: int, start: Callable[[int], Any]) -> list[Any]:
    """Run `start(i)` for each i on its own thread, released by one barrier."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait(timeout=5)
        try:
            results[i] = start(i)
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(isinstance(r, BaseException) for r in results), results
    return results


def certserver_hive(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, namespace: str, replica: Replica
) -> Hive:
    hive = make_hive()
    settings = CertSettings(
        address="127.0.0.1", port=0, namespace=namespace, advertise_addresses=["127.0.0.1"],
        token_refresh_hours=1, node_events=False,
    )  # fmt: skip
    services = {"kube": KubeConnection(kube.kubeconfig_path), "replica": replica}
    hive.add("certserver", CertServer, settings=settings, services=services)
    return hive


@pytest.mark.integration
def test_two_replicas_started_together_make_exactly_one_ca_and_one_token(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, store: Any, replicas: list[Replica]
) -> None:
    namespace = store.namespace  # not created yet: the replicas race to create it too
    replicas += [
        Replica(kube.new_client(), ReplicaSettings(id=f"cc-{i}", namespace=namespace, **FAST))
        for i in range(2)
    ]
    hives = [certserver_hive(make_hive, kube, namespace, r) for r in replicas]

    def start(i: int) -> None:
        replicas[i].start()
        hives[i].start()

    start_together(2, start)
    statuses = [hive.commands[ADMIN_COMMAND]() for hive in hives]
    assert sum(s["created_ca"] for s in statuses) == 1
    assert statuses[0]["ca_sha256"] == statuses[1]["ca_sha256"]
    assert sum(s["token_rotations"] for s in statuses) == 1
    leader = next(s for s in statuses if s["replica"]["leader"])
    assert leader["created_ca"] and leader["token_rotations"] == 1
    assert eventually(
        lambda: len({h.commands[ADMIN_COMMAND]()["token_expires"] for h in hives}) == 1, timeout=5
    )
    secrets = kube.core.list_namespaced_secret(namespace).items
    assert sorted(s.metadata.name for s in secrets) == sorted(
        [ca_mod.CA_SECRET, ca_mod.SERVER_SECRET, token.TOKEN_SECRET]
    )
    join_token = token.read_token(store)
    assert join_token is not None and join_token.startswith(statuses[0]["ca_sha256"] + ".")
    for hive in hives:
        hive.stop()


@pytest.mark.integration
def test_a_replica_that_is_not_the_leader_loads_the_leaders_ca_and_takes_over_the_token(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, store: Any, replicas: list[Replica],
    tmp_path: Any,
) -> None:  # fmt: skip
    namespace = store.namespace
    first, second = (
        Replica(kube.new_client(), ReplicaSettings(id=name, namespace=namespace, **FAST))
        for name in ("first", "second")
    )
    replicas += [first, second]
    first.start()
    leader_hive = certserver_hive(make_hive, kube, namespace, first)
    leader_hive.start()
    second.start()
    follower_hive = certserver_hive(make_hive, kube, namespace, second)
    follower_hive.start()
    status = follower_hive.commands[ADMIN_COMMAND]()
    assert not status["created_ca"] and status["token_rotations"] == 0
    assert status["ca_sha256"] == leader_hive.commands[ADMIN_COMMAND]()["ca_sha256"]
    # the follower signs with the shared CA and the leader's token
    join_token = token.read_token(store)
    assert join_token is not None
    paths = enroll.EdgeCertPaths.in_directory(tmp_path)
    enroll.enroll(f"127.0.0.1:{status['port']}", join_token, "edge-1", paths)
    # the leader stops cleanly: the follower leads, and the token is still fresh, so
    # it is not rewritten
    leader_hive.stop()
    first.stop()
    assert second.wait_for(second.is_leader, timeout=5)
    assert follower_hive.commands[ADMIN_COMMAND]()["token_rotations"] == 0
    assert token.read_token(store) == join_token
    follower_hive.stop()


@pytest.mark.integration
def test_a_fenced_replica_refuses_to_sign_and_is_not_ready(
    make_hive: Callable[..., Hive], kube: KubeTestCluster, store: Any, replicas: list[Replica],
    tmp_path: Any,
) -> None:  # fmt: skip
    replica = Replica(
        kube.new_client(), ReplicaSettings(id="alone", namespace=store.namespace, **FAST)
    )
    replicas.append(replica)
    replica.start()
    hive = certserver_hive(make_hive, kube, store.namespace, replica)
    hive.start()
    assert eventually(lambda: ADMIN_COMMAND in hive.commands, timeout=5)
    assert hive.commands["certserver.ready"](timeout=1) == []
    replica.member.stop(release=False)  # renewals stop, as when the API is out of reach
    assert replica.wait_for(lambda: replica.fenced() is not None, timeout=5)
    assert hive.commands["certserver.ready"](timeout=1) != []
    join_token = token.read_token(store)
    assert join_token is not None
    port = hive.commands[ADMIN_COMMAND]()["port"]
    with pytest.raises(Exception, match="503"):
        enroll.enroll(
            f"127.0.0.1:{port}", join_token, "edge-1", enroll.EdgeCertPaths.in_directory(tmp_path)
        )
    assert hive.commands[ADMIN_COMMAND]()["requests_refused"] == 1
    hive.stop()


@pytest.mark.integration
def test_cloudhubs_of_two_replicas_serve_the_leaders_ca_and_server_certificate(
    kube: KubeTestCluster, store: Any, replicas: list[Replica]
) -> None:
    namespace = store.namespace  # nothing in it yet: only the leader may create
    replicas += [
        Replica(kube.new_client(), ReplicaSettings(id=f"hub-{i}", namespace=namespace, **FAST))
        for i in range(2)
    ]

    def start(i: int) -> Any:
        replicas[i].start()
        return cloud.from_secrets(kube.core, namespace, ips=["127.0.0.1"], dns_names=[],
                                  now=token.utc_now(), replica=replicas[i])  # fmt: skip

    first, second = start_together(2, start)
    assert first.ca == second.ca
    assert first.cert.serial_number == second.cert.serial_number  # one made, both use it
    kept = ca_mod.KeyPair.from_der(*[store.read(ca_mod.SERVER_SECRET)[key]
                                     for key in (ca_mod.SERVER_CERT_KEY, ca_mod.SERVER_KEY_KEY)])  # fmt: skip
    assert kept.cert.serial_number == first.cert.serial_number


@pytest.mark.integration
def test_a_replica_that_is_not_the_leader_makes_no_server_certificate(
    kube: KubeTestCluster, store: Any
) -> None:
    class Follower:  # never the leader; the Secrets never come
        settings = ReplicaSettings(id="f", namespace=store.namespace, ca_wait=0.3, **FAST)

        def is_leader(self) -> bool:
            return False

        def leader_identity(self) -> str:
            return "someone-else"

        def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
            return eventually(predicate, timeout=timeout)

    with pytest.raises(CAStoreError, match="not the leader \\(leader: someone-else\\)"):
        cloud.from_secrets(kube.core, store.namespace, ips=["127.0.0.1"], dns_names=[],
                           now=token.utc_now(), replica=Follower())  # fmt: skip
    assert store.read(ca_mod.SERVER_SECRET) is None and store.read(ca_mod.CA_SECRET) is None
