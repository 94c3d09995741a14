"""ObjectSyncWriter against an API server (the embedded one, or $BEEHIVE_TEST_KUBECONFIG's):
rounds of coalesced writes, conflicts, failures, and what is read at start."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client

from modules.cloudhub import objects, objectsync, syncrecord
from modules.kube import crds, raw
from tests.fakes import eventually
from tests.kube_fixtures import KubeTestCluster, delete_if_present, manifest, unique

pytestmark = pytest.mark.integration

Writer = Callable[..., objectsync.ObjectSyncWriter]


@pytest.fixture
def api(kube: KubeTestCluster) -> Any:
    crds.install(kube.api_client)
    for definition in crds.KUBEEDGE_CRDS + crds.BEEHIVE_CRDS:
        kube.wait_for_crd(definition["metadata"]["name"])
    return kube.api_client


@pytest.fixture
def make_writer(api: Any) -> Iterator[Writer]:
    started: list[objectsync.ObjectSyncWriter] = []

    def make(*, read: bool = True, **kwargs: Any) -> objectsync.ObjectSyncWriter:
        kwargs.setdefault("interval", 0.0)
        kwargs.setdefault("retry_delay", 0.01)
        writer = objectsync.ObjectSyncWriter(api, **kwargs)
        if read:
            writer.read_all()
        writer.start()
        started.append(writer)
        return writer

    yield make
    for writer in started:
        writer.stop(timeout=5)


@pytest.fixture
def nodes(kube: KubeTestCluster) -> Iterator[Callable[[str], str]]:
    """Node objects with unique names (records of nodes that do not exist are dropped)."""
    made: list[str] = []

    def node(prefix: str) -> str:
        name = unique(prefix)
        kube.core.create_node(manifest({"metadata": {"name": name}}))
        made.append(name)
        return name

    yield node
    for name in made:
        delete_if_present(kube.core.delete_node, name)


def pod(uid: str, namespace: str = "default") -> objects.ObjectRef:
    return objects.ObjectRef(uid, namespace, "pod", f"pod-{uid}", "v1", "Pod")


def acked(api: Any, node: str) -> dict[str, int | None]:
    return {uid: held.rv for uid, held in objectsync.read_acked(api, node).items()}


def write(writer: objectsync.ObjectSyncWriter, ops: list[objects.SyncOp]) -> None:
    writer.submit(ops)
    assert writer.flush(10.0)


def test_acks_of_many_nodes_become_a_write_per_record_with_the_newest_versions(
    api: Any, make_writer: Writer
) -> None:
    writer = make_writer(shards=4)
    names = [unique("n") for _ in range(20)]
    ops: list[objects.SyncOp] = []
    for node in names:
        for i in range(5):
            ref = pod(f"{node}-{i}")
            ops += [objects.Ensure(node, ref), objects.Acked(node, ref, 3),
                    objects.Acked(node, ref, 9)]  # fmt: skip
    write(writer, ops)
    stats = writer.stats()
    # one create per record: 300 ops, 100 objects (a delete may clean up a record other
    # tests left on a shared cluster, for nodes that are gone)
    assert stats["writes"]["create"] + stats["writes"]["patch"] <= 4
    for node in names:
        assert acked(api, node) == {f"{node}-{i}": 9 for i in range(5)}
    assert stats["pending_records"] == stats["pending_changes"] == 0


def test_deleted_objects_leave_the_record_and_an_empty_record_is_deleted(
    api: Any, kube: KubeTestCluster, make_writer: Writer
) -> None:
    writer = make_writer(shards=1)
    node, refs = unique("n"), [pod(unique("u")) for _ in range(3)]
    write(writer, [objects.Acked(node, ref, 1) for ref in refs])
    write(writer, [objects.Deleting(node, refs[0]), objects.Forget(node, refs[0])])
    assert acked(api, node).keys() == {refs[1].uid, refs[2].uid}
    write(writer, [objects.Forget(node, ref) for ref in refs[1:]])
    assert acked(api, node) == {}
    if kube.embedded:  # a shared cluster's record may hold other nodes' entries
        assert writer.stats()["writes"] == {"create": 1, "patch": 1, "delete": 1}
        assert raw.request(api, "GET", syncrecord.PATH)["items"] == []


def test_a_record_changed_by_someone_else_is_read_again_and_merged(
    api: Any, make_writer: Writer
) -> None:
    writer = make_writer(shards=1)
    node, other = unique("n"), unique("n")
    a, b = pod(unique("a")), pod(unique("b"))
    write(writer, [objects.Acked(node, a, 5), objects.Acked(node, b, 5)])
    path = f"{syncrecord.PATH}/{syncrecord.part_name(0, 0)}"
    theirs = {node: {a.uid: syncrecord.encode(syncrecord.Held(a, 9))},
              other: {"c": "1|default|Pod|||c"}}  # fmt: skip
    raw.request(api, "PATCH", path, body={"spec": {"nodes": theirs}},
                content_type="application/merge-patch+json")  # fmt: skip
    write(writer, [objects.Acked(node, a, 6), objects.Acked(node, b, 6)])
    assert acked(api, node) == {a.uid: 9, b.uid: 6}  # acked versions only go up
    assert acked(api, other) == {"c": 1}
    assert writer.stats()["conflicts"] == 1


def test_a_record_deleted_by_someone_else_is_written_again_with_all_it_held(
    api: Any, make_writer: Writer
) -> None:
    writer = make_writer(shards=1)
    node, a, b = unique("n"), pod(unique("a")), pod(unique("b"))
    write(writer, [objects.Acked(node, a, 5)])
    raw.request(api, "DELETE", f"{syncrecord.PATH}/{syncrecord.part_name(0, 0)}")
    write(writer, [objects.Acked(node, b, 1)])
    assert acked(api, node) == {a.uid: 5, b.uid: 1}


def test_failed_writes_are_retried_and_counted(
    api: Any, make_writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    send, failures = (
        raw.request,
        [
            client.ApiException(status=500, reason="Internal Server Error"),
            urllib3.exceptions.MaxRetryError(None, "/", "connection refused"),  # type: ignore[arg-type]
        ],
    )

    def flaky(api_client: Any, method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET" and failures:
            raise failures.pop(0)
        return send(api_client, method, path, **kwargs)

    monkeypatch.setattr(raw, "request", flaky)
    writer = make_writer(shards=1)
    node, a = unique("n"), pod(unique("a"))
    write(writer, [objects.Acked(node, a, 5)])
    assert acked(api, node) == {a.uid: 5}
    assert writer.stats()["failures"] == 2


def test_what_waits_while_a_write_hangs_is_bounded_by_the_objects_not_the_acks(
    api: Any, make_writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    send, release, entered = raw.request, threading.Event(), threading.Event()

    def slow(api_client: Any, method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET" and not release.is_set():
            entered.set()
            release.wait(10)
        return send(api_client, method, path, **kwargs)

    monkeypatch.setattr(raw, "request", slow)
    writer = make_writer(shards=2, max_queued=100)
    node, refs = unique("n"), [pod(unique("u")) for _ in range(10)]
    writer.submit([objects.Acked(node, refs[0], 1)])
    assert entered.wait(10)  # the first write hangs
    for rv in range(2, 202):  # 2,000 acks of 10 objects
        writer.submit([objects.Acked(node, ref, rv) for ref in refs])
    stats = writer.stats()
    release.set()
    # bounded by the 10 objects (the one whose write hangs may be counted again), not the acks
    assert stats["queued_ops"] <= 100 and stats["pending_changes"] <= len(refs) + 1
    assert stats["pending_records"] <= 2
    assert writer.flush(10)
    assert acked(api, node) == {ref.uid: 201 for ref in refs}


def test_stop_writes_what_waits_for_the_next_round(api: Any, make_writer: Writer) -> None:
    writer = make_writer(interval=3600.0)
    node, a = unique("n"), pod(unique("a"))
    writer.submit([objects.Acked(node, a, 4)])
    writer.stop(timeout=10)
    assert acked(api, node) == {a.uid: 4}


# Read at start.


def kubeedge_record(namespace: str, node: str, ref: objects.ObjectRef, rv: str) -> Any:
    kind = "ClusterObjectSync" if ref.cluster_scoped else "ObjectSync"
    metadata = {"name": f"{node}.{ref.uid}"} | (
        {} if ref.cluster_scoped else {"namespace": namespace}
    )
    return manifest({
        "apiVersion": "reliablesyncs.kubeedge.io/v1alpha1", "kind": kind, "metadata": metadata,
        "spec": {"objectAPIVersion": "v1", "objectKind": ref.kind, "objectName": ref.name},
        "status": {"objectResourceVersion": rv},
    })  # fmt: skip


def test_kubeedge_records_are_read_written_in_ours_and_then_deleted(
    api: Any, kube: KubeTestCluster, kube_namespace: str, make_writer: Writer, nodes: Any
) -> None:
    node = nodes("edge")
    a = pod(unique("a"), kube_namespace)
    n = objects.ObjectRef(unique("n"), "null", "node", node, "v1", "Node")
    group, version = "reliablesyncs.kubeedge.io", "v1alpha1"
    custom = kube.custom
    # As KubeEdge writes them: created, then the acked version through the status.
    custom.create_namespaced_custom_object(
        group,
        version,
        kube_namespace,
        "objectsyncs",
        kubeedge_record(kube_namespace, node, a, "17"),
    )
    custom.patch_namespaced_custom_object_status(
        group,
        version,
        kube_namespace,
        "objectsyncs",
        f"{node}.{a.uid}",
        {"status": {"objectResourceVersion": "17"}},
    )
    custom.create_cluster_custom_object(
        group, version, "clusterobjectsyncs", kubeedge_record("", node, n, "4")
    )
    custom.patch_cluster_custom_object_status(group, version, "clusterobjectsyncs",
                                              f"{node}.{n.uid}",
                                              {"status": {"objectResourceVersion": "4"}})  # fmt: skip
    writer = objectsync.ObjectSyncWriter(api, interval=0.0)
    restored = {(r.node_id, r.ref.uid): r for r in writer.read_all()}
    assert restored[(node, a.uid)] == objects.Restored(node, a, 17)
    assert restored[(node, n.uid)] == objects.Restored(node, n, 4)
    writer.start()
    try:
        assert writer.flush(10)
        assert acked(api, node) == {a.uid: 17, n.uid: 4}
        assert eventually(lambda: writer.stats()["legacy_left"] == 0)
    finally:
        writer.stop()
    with pytest.raises(client.ApiException) as gone:
        kube.custom.get_namespaced_custom_object(group, version, kube_namespace, "objectsyncs",
                                                 f"{node}.{a.uid}")  # fmt: skip
    assert gone.value.status == 404


def test_records_of_nodes_that_are_gone_are_dropped_at_start(
    api: Any, make_writer: Writer, nodes: Any
) -> None:
    alive, gone = nodes("alive"), unique("gone")
    a, b = pod(unique("a")), pod(unique("b"))
    first = make_writer(shards=1)
    write(first, [objects.Acked(alive, a, 3), objects.Acked(gone, b, 3)])
    first.stop()
    again = make_writer(read=False, shards=1)
    restored = {(r.node_id, r.ref.uid) for r in again.read_all()}
    assert (alive, a.uid) in restored and (gone, b.uid) not in restored
    assert again.flush(10)
    assert acked(api, gone) == {} and acked(api, alive) == {a.uid: 3}


def test_malformed_records_are_skipped_with_a_log_naming_them_and_nothing_else_is_lost(
    api: Any,
    kube: KubeTestCluster,
    kube_namespace: str,
    make_writer: Writer,
    nodes: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = nodes("edge")
    a, b = pod(unique("a")), pod(unique("b"))
    first = make_writer(shards=1)
    write(first, [objects.Acked(node, a, 3)])
    first.stop()
    garbage = {"apiVersion": f"{syncrecord.GROUP}/{syncrecord.VERSION}",
               "kind": syncrecord.KIND, "metadata": {"name": "shard-0-7"},
               "spec": {"nodes": "garbage"}}  # fmt: skip
    stray = dict(garbage, metadata={"name": "not-a-shard"}, spec={"nodes": {}})
    mixed = dict(garbage, metadata={"name": "shard-0-8"},
                 spec={"nodes": {node: {b.uid: "5|default|Pod|||pod-b", "x": "junk"}}})  # fmt: skip
    for body in (garbage, stray, mixed):
        raw.request(api, "POST", syncrecord.PATH, body=body)
    bad_legacy = {"apiVersion": "reliablesyncs.kubeedge.io/v1alpha1", "kind": "ObjectSync",
                  "metadata": {"name": "nodot"}, "spec": {"objectKind": "Pod"}}  # fmt: skip
    kube.custom.create_namespaced_custom_object(
        "reliablesyncs.kubeedge.io", "v1alpha1", kube_namespace, "objectsyncs", bad_legacy
    )
    caplog.set_level(logging.WARNING, "modules.cloudhub.objectsync")
    try:
        writer = make_writer(read=False, shards=1)
        restored = {(r.node_id, r.ref.uid): r.resource_version for r in writer.read_all()}
        assert restored[(node, a.uid)] == 3 and restored[(node, b.uid)] == 5
        for name in ("shard-0-7", "not-a-shard", "shard-0-8", "nodot"):
            assert name in caplog.text
        write(writer, [objects.Acked(node, pod(unique("c")), 1)])  # goes on writing
    finally:
        for name in ("shard-0-7", "not-a-shard", "shard-0-8"):
            delete_if_present(raw.request, api, "DELETE", f"{syncrecord.PATH}/{name}")


def test_the_leaders_cleanup_drops_records_of_gone_nodes_another_replica_wrote(
    api: Any, make_writer: Writer, nodes: Any
) -> None:
    leader = make_writer(shards=2)  # started before the other replica wrote anything
    other = make_writer(shards=2)
    alive, gone = nodes("alive"), unique("gone")
    a, b = pod(unique("a")), pod(unique("b"))
    write(other, [objects.Ensure(alive, a), objects.Acked(alive, a, 3),
                  objects.Ensure(gone, b), objects.Acked(gone, b, 4)])  # fmt: skip
    assert leader.collect() == 1
    assert leader.flush(10)
    assert acked(api, gone) == {} and acked(api, alive) == {a.uid: 3}
    assert leader.stats()["collected"] == 1


def test_a_takeover_reads_what_its_nodes_acked_a_list_per_shard(
    api: Any, make_writer: Writer
) -> None:
    taker = make_writer(shards=2)  # started before the other replica wrote anything
    other = make_writer(shards=2)
    names = [unique("t") for _ in range(6)]
    refs = {node: pod(unique("p")) for node in names}
    write(other, [op for node, ref in refs.items()
                  for op in (objects.Ensure(node, ref), objects.Acked(node, ref, 7))])  # fmt: skip
    reads = taker.stats()["reads"]
    got = taker.read_nodes(names)
    assert {node: [(r.ref.uid, r.resource_version) for r in found]
            for node, found in got.items()} == {node: [(refs[node].uid, 7)] for node in names}  # fmt: skip
    shards = {syncrecord.shard_of(node, 2) for node in names}
    assert taker.stats()["reads"] - reads == len(shards)  # not one per node


def test_replicas_write_their_own_parts_and_a_takeover_never_conflicts(
    api: Any, make_writer: Writer, nodes: Any
) -> None:
    tokens = [syncrecord.writer_token(name) for name in ("cloudcore-0", "cloudcore-1", "leader")]
    first, second, leader = (make_writer(shards=1, writer=token) for token in tokens)
    moved, stays = nodes("moved"), nodes("stays")
    a, b, c = pod(unique("a")), pod(unique("b")), pod(unique("c"))
    write(first, [objects.Acked(moved, a, 3), objects.Acked(moved, b, 3),
                  objects.Acked(stays, c, 3)])  # fmt: skip
    second.read_nodes([moved])  # the node is claimed by the second replica
    write(second, [objects.Acked(moved, a, 5), objects.Ensure(moved, b)])
    write(first, [objects.Acked(stays, c, 4)])  # each in its own record: no conflict
    assert first.stats()["conflicts"] == second.stats()["conflicts"] == 0
    assert acked(api, moved) == {a.uid: 5, b.uid: 3} and acked(api, stays) == {c.uid: 4}
    where = objectsync.copies(api, moved)
    assert sorted(where[a.uid]) == sorted(f"shard-0-0-{token}" for token in tokens[:2])
    assert where[b.uid] == [f"shard-0-0-{tokens[0]}"]  # b said nothing new: not moved
    assert leader.collect() == 0 and leader.flush(10)  # the older copy of a goes
    assert objectsync.copies(api, moved) == {a.uid: [f"shard-0-0-{tokens[1]}"],
                                              b.uid: [f"shard-0-0-{tokens[0]}"]}  # fmt: skip
    assert acked(api, moved) == {a.uid: 5, b.uid: 3}
    write(second, [objects.Deleting(moved, b), objects.Forget(moved, b)])
    assert objectsync.copies(api, moved) == {a.uid: [f"shard-0-0-{tokens[1]}"]}
