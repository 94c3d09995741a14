"""Pure logic: references, the location cache, filtering, merging, messages, relist diffs."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from modules import backoff
from modules.contract import only_status_changed
from modules.edgecontroller.downstream import Downstream, Fresh, Send, build_message, newer
from modules.edgecontroller.location import LocationCache, pod_refs
from modules.edgecontroller.queues import FairQueue, KeyedQueue, QueueFullError
from modules.edgecontroller.reflector import relist_events

CM, SEC = "configmap", "secret"


def _pod(name: str = "p", node: str = "n1", uid: str = "u1", rv: str = "1", **spec: Any) -> Any:
    meta = {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv}
    return {"metadata": meta, "spec": {"nodeName": node, **spec}}


def _obj(name: str, uid: str = "c1", rv: str = "1") -> Any:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"volumes": [{"configMap": {"name": "a"}}]}, {(CM, "a")}, id="configmap volume"
        ),
        pytest.param(
            {"volumes": [{"secret": {"secretName": "s"}}]}, {(SEC, "s")}, id="secret volume"
        ),
        pytest.param(
            {
                "volumes": [
                    {
                        "projected": {
                            "sources": [{"configMap": {"name": "a"}}, {"secret": {"name": "s"}}]
                        }
                    }
                ]
            },
            {(CM, "a"), (SEC, "s")},
            id="projected sources",
        ),
        pytest.param(
            {
                "containers": [
                    {"envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s"}}]}
                ]
            },
            {(CM, "a"), (SEC, "s")},
            id="envFrom",
        ),
        pytest.param(
            {
                "initContainers": [
                    {
                        "env": [
                            {
                                "name": "X",
                                "valueFrom": {"configMapKeyRef": {"name": "i", "key": "k"}},
                            }
                        ]
                    }
                ]
            },
            {(CM, "i")},
            id="init container env valueFrom",
        ),
        pytest.param(
            {
                "containers": [
                    {
                        "env": [
                            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                            {"name": "Y", "value": "v"},
                        ]
                    }
                ]
            },
            {(SEC, "s")},
            id="env valueFrom secret and a plain value",
        ),
        pytest.param(
            {"imagePullSecrets": [{"name": "pull"}]}, {(SEC, "pull")}, id="imagePullSecrets"
        ),
        pytest.param(
            {"volumes": [{"configMap": {}}, "junk", {"secret": None}]},
            set(),
            id="malformed entries ignored",
        ),
        pytest.param({"containers": "not a list"}, set(), id="containers not a list"),
    ],
)
def test_pod_refs_finds_every_kind_of_reference(spec: Any, expected: set[tuple[str, str]]) -> None:
    assert pod_refs(_pod(**spec)) == {(t, "ns", n) for t, n in expected}


def test_location_cache_forgets_a_node_when_its_last_referencing_pod_leaves() -> None:
    cache = LocationCache()
    ref = (CM, "ns", "a")
    first = cache.update_pod(("ns", "p1"), "n1", frozenset({ref}))
    second = cache.update_pod(("ns", "p2"), "n1", frozenset({ref}))
    assert (first.added, second.added) == (((("n1", ref)),), ())
    assert cache.nodes_for(ref) == ["n1"] and cache.needs("n1", ref)
    assert cache.remove_pod(("ns", "p1")).removed == ()
    assert cache.remove_pod(("ns", "p2")).removed == (("n1", ref),)
    assert (cache.nodes_for(ref), cache.needs("n1", ref), cache.pods_on("n1")) == ([], False, [])


def test_location_cache_reports_refs_a_pod_update_adds_and_drops() -> None:
    cache = LocationCache()
    a, b = (CM, "ns", "a"), (SEC, "ns", "b")
    cache.update_pod(("ns", "p"), "n1", frozenset({a}))
    change = cache.update_pod(("ns", "p"), "n1", frozenset({b}))
    assert (change.added, change.removed) == ((("n1", b),), (("n1", a),))
    assert cache.refs_for_node("n1") == [b]


def _downstream(*nodes: str) -> Downstream:
    ds = Downstream(LocationCache())
    for node in nodes:
        ds.apply("node", "ADDED", {"metadata": {"name": node, "uid": f"uid-{node}"}})
    return ds


def _ops(sends: list[Send]) -> list[tuple[str, str, str, str]]:
    return [(s.node, s.operation, s.rtype, s.obj["metadata"]["name"]) for s in sends]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(
            [("ADDED", _pod())],
            [("n1", "insert", "pod", "p")],
            id="new pod on an edge node is inserted",
        ),
        pytest.param(
            [("MODIFIED", _pod())],
            [("n1", "insert", "pod", "p")],
            id="first sight via MODIFIED is still an insert",
        ),
        pytest.param([("ADDED", _pod(node="cloud"))], [], id="pod on a non-edge node is ignored"),
        pytest.param([("ADDED", _pod(node=""))], [], id="unscheduled pod is ignored"),
        pytest.param([("DELETED", _pod())], [], id="delete of a pod never sent is dropped"),
        pytest.param(
            [("ADDED", _pod(node="")), ("MODIFIED", _pod(rv="2"))],
            [("n1", "insert", "pod", "p")],
            id="binding to an edge node is an insert",
        ),
        pytest.param(
            [("ADDED", _pod()), ("MODIFIED", {**_pod(rv="2"), "status": {"phase": "Running"}})],
            [("n1", "insert", "pod", "p")],
            id="status-only update is not sent",
        ),
        pytest.param(
            [
                ("ADDED", _pod()),
                (
                    "MODIFIED",
                    {**_pod(rv="2"), "metadata": {**_pod()["metadata"], "labels": {"a": "b"}}},
                ),
            ],
            [("n1", "insert", "pod", "p"), ("n1", "update", "pod", "p")],
            id="label change is an update",
        ),
        pytest.param(
            [("ADDED", _pod()), ("MODIFIED", _pod(uid="u2", rv="5"))],
            [
                ("n1", "insert", "pod", "p"),
                ("n1", "delete", "pod", "p"),
                ("n1", "insert", "pod", "p"),
            ],
            id="recreated under the same name: delete old then insert new",
        ),
        pytest.param(
            [("ADDED", {**_pod(), "metadata": {**_pod()["metadata"], "deletionTimestamp": "t"}})],
            [("n1", "update", "pod", "p")],
            id="pod already terminating is an update, as pod.go",
        ),
    ],
)
def test_downstream_pod_filtering(events: list[tuple[str, Any]], expected: list[Any]) -> None:
    ds = _downstream("n1")
    sends = [s for event, obj in events for s in ds.apply("pod", event, obj)]
    assert _ops(sends) == expected


def test_secret_first_delivery_is_update_and_configmap_insert_before_the_pod() -> None:
    ds = _downstream("n1")
    ds.apply("configmap", "ADDED", _obj("c"))
    ds.apply("secret", "ADDED", _obj("s", uid="s1"))
    env = [{"envFrom": [{"configMapRef": {"name": "c"}}, {"secretRef": {"name": "s"}}]}]
    ops = _ops(ds.apply("pod", "ADDED", _pod(containers=env)))
    assert sorted(ops[:2]) == [("n1", "insert", "configmap", "c"), ("n1", "update", "secret", "s")]
    assert ops[2:] == [("n1", "insert", "pod", "p")]
    assert _ops(ds.apply("secret", "MODIFIED", _obj("s", uid="s1", rv="2"))) == [
        ("n1", "update", "secret", "s")
    ]


def test_rules_are_watched_but_not_delivered() -> None:
    assert _downstream("n1").apply("rule", "ADDED", _obj("r")) == []


def test_only_status_changed_ignores_volatile_metadata() -> None:
    old = {**_pod(), "metadata": {**_pod()["metadata"], "managedFields": [1]}}
    assert only_status_changed(old, {**_pod(rv="9"), "status": {"phase": "x"}})
    assert not only_status_changed(old, _pod(volumes=[]))


def test_build_message_follows_contract_item_1() -> None:
    msg = build_message(
        Send("n1", "insert", "node", {"metadata": {"name": "n1", "resourceVersion": "7"}})
    )
    assert (msg.route.source, msg.route.group, msg.route.operation) == (
        "edgecontroller",
        "resource",
        "insert",
    )
    assert (msg.route.resource, msg.header.resource_version) == ("node/n1/null/node/n1", "7")


def test_keyed_queue_collapses_versions_of_one_object_and_keeps_the_others_in_order() -> None:
    queue: KeyedQueue[str] = KeyedQueue(10)
    for item in ("a1", "a2", "a3"):
        queue.put("a", item)
    queue.put("b", "b1")
    queue.put("a", "a4")
    assert [queue.take(0), queue.take(0), queue.take(0)] == [("a", "a4"), ("b", "b1"), None]
    assert queue.merged == 3


def test_keyed_queue_batches_merge_like_single_puts_and_come_out_oldest_first() -> None:
    queue: KeyedQueue[str] = KeyedQueue(10)
    queue.put("a", "a1")
    assert queue.put_many([("b", "b1"), ("a", "a2"), ("c", "c1"), ("b", "b2")])
    assert queue.merged == 2
    assert queue.take_many(2, 0) == [("a", "a2"), ("b", "b2")]
    assert queue.take_many(5, 0) == [("c", "c1")]
    assert queue.take_many(5, 0) == []


def test_keyed_queue_put_many_waits_for_room_and_gives_up_when_stopped() -> None:
    queue: KeyedQueue[str] = KeyedQueue(2)
    stop = threading.Event()
    stop.set()
    assert not queue.put_many([("a", "a1"), ("b", "b1"), ("c", "c1")], stop=stop)
    assert queue.take_many(5, 0) == [("a", "a1"), ("b", "b1")]  # what fitted stays queued


def test_keyed_queue_put_of_a_new_key_gives_up_when_stopped_while_full() -> None:
    queue: KeyedQueue[str] = KeyedQueue(1)
    queue.put("a", "1")
    stop = threading.Event()
    stop.set()
    assert queue.put("a", "2", stop=stop) and not queue.put("b", "1", stop=stop)


def test_fair_queue_serves_nodes_round_robin_one_worker_per_node() -> None:
    queue: FairQueue[str] = FairQueue(10)
    for i in range(3):
        queue.put("busy", i, f"busy{i}")
    queue.put("quiet", 0, "quiet0")
    assert queue.take(0) == ("busy", "busy0")
    assert queue.take(0) == ("quiet", "quiet0")  # busy is held by a worker
    assert queue.take(0) is None
    queue.done("busy")
    queue.done("quiet")
    assert queue.take(0) == ("busy", "busy1")


def test_fair_queue_refuses_new_items_when_full() -> None:
    queue: FairQueue[str] = FairQueue(1)
    queue.put("n", "a", "x")
    queue.put("n", "a", "y")  # same key replaces
    with pytest.raises(QueueFullError):
        queue.put("m", "b", "z")


@pytest.mark.parametrize(
    ("store", "listed", "expected"),
    [
        pytest.param({}, {"a": "1"}, [("ADDED", "a")], id="new object"),
        pytest.param({"a": "1"}, {"a": "1"}, [], id="unchanged object not re-sent"),
        pytest.param({"a": "1"}, {"a": "2"}, [("MODIFIED", "a")], id="changed object"),
        pytest.param({"a": "1", "b": "1"}, {"a": "1"}, [("DELETED", "b")], id="delete while down"),
    ],
)
def test_relist_emits_only_differences(
    store: dict[str, str], listed: dict[str, str], expected: list[Any]
) -> None:
    def objs(d: dict[str, str]) -> Any:
        return {("ns", k): {"metadata": {"name": k, "resourceVersion": rv}} for k, rv in d.items()}

    events = relist_events(objs(store), objs(listed))
    assert [(e, o["metadata"]["name"]) for e, o in events] == expected


def test_backoff_is_capped_and_jittered() -> None:
    delays = [backoff.jittered(n, initial=0.5, cap=30) for n in range(1, 40)]
    assert all(0 < d <= 30 for d in delays)
    assert 0.25 <= delays[0] <= 0.5 and delays[-1] >= 15


def _edge(name: str = "n1", rv: str = "1") -> Any:
    meta = {"name": name, "uid": f"node-{name}", "resourceVersion": rv,
            "labels": {"node-role.kubernetes.io/edge": ""}}  # fmt: skip
    return {"metadata": meta}


def test_a_fresh_resync_sends_the_pods_read_each_the_newer_version() -> None:
    down = Downstream(LocationCache())
    down.apply("node", "ADDED", _edge(rv="5"))
    down.apply("pod", "ADDED", _pod("a", uid="ua", rv="10"))  # the cache lags at a@10
    down.apply("pod", "ADDED", _pod("gone", uid="ug", rv="11"))  # deleted since
    down.apply("pod", "ADDED", _pod("ahead", uid="uh", rv="30"))  # newer than the read
    read = [_pod("a", uid="ua", rv="20"), _pod("ahead", uid="uh", rv="25"),
            _pod("new", uid="un", rv="21")]  # fmt: skip
    sends = down.resync("n1", Fresh(_edge(rv="6"), read, list_rv=29))
    got = [(s.rtype, s.obj["metadata"]["name"], s.obj["metadata"]["resourceVersion"])
           for s in sends]  # fmt: skip
    assert got == [("node", "n1", "6"), ("pod", "a", "20"), ("pod", "ahead", "30"),
                   ("pod", "new", "21")]  # fmt: skip
    assert down.resync("n1", Fresh(None, [])) == []  # the Node is gone


def test_newer_takes_the_read_version_unless_the_cached_one_is_newer() -> None:
    cached, read = _obj("x", rv="9"), _obj("x", rv="10")
    assert newer(cached, read) is read and newer(read, cached) is read
    assert newer(_obj("x", uid="old", rv="99"), read) is read  # recreated under its name
    assert newer(None, read) is read and newer(cached, None) is cached
    assert newer(_obj("x", rv="abc"), read) is read  # not comparable: the read one


def test_a_fresh_resync_keeps_the_pods_the_caches_got_after_the_read() -> None:
    # The reads came back at list resourceVersion 50; the downstream thread then took
    # a watch event for a new pod (sent to the node already) before the resync.
    down = Downstream(LocationCache())
    down.apply("node", "ADDED", _edge(rv="5"))
    down.apply("pod", "ADDED", _pod("old", uid="uo", rv="40"))  # deleted before the read
    down.apply("pod", "ADDED", _pod("born", uid="ub", rv="51"))  # created after it
    sends = down.resync("n1", Fresh(_edge(rv="5"), [], list_rv=50))
    assert [s.obj["metadata"]["name"] for s in sends if s.rtype == "pod"] == ["born"]
    unknown = down.resync("n1", Fresh(_edge(rv="5"), []))  # no list version: keep both
    assert sorted(s.obj["metadata"]["name"] for s in unknown if s.rtype == "pod") == [
        "born", "old"]  # fmt: skip
