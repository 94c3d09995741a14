"""Lists of pods by node go through the store's spec.nodeName index: the same answers as
the selector alone gives, through creates, deletes, namespaces and a reload."""

from __future__ import annotations

from modules.kubeapi import selectors
from modules.kubeapi.resources import Catalogue, ResourceType
from modules.kubeapi.store import Store
from tests.kube_fixtures import pod_manifest


def _pods() -> ResourceType:
    pods = Catalogue().lookup("", "v1", "pods")
    assert pods is not None
    return pods


def _names(store: Store, ns: str, fields: str) -> list[str]:
    """What a list answers, asserted equal to what a scan of every pod answers."""
    pods = _pods()
    selection = selectors.select(pods, {"fieldSelector": fields})
    page, _, _ = store.list(pods, ns, match=selection.match, indexed=selection.indexed)
    scanned, _, _ = store.list(pods, ns, match=selection.match)
    assert page == scanned
    return [entry.obj["metadata"]["name"] for entry in page]


def _store() -> Store:
    store = Store()
    store.bootstrap()
    namespaces = Catalogue().lookup("", "v1", "namespaces")
    assert namespaces is not None
    store.create(namespaces, "", {"metadata": {"name": "other"}})
    pods = _pods()
    for ns, name, node in (("default", "a", "n1"), ("default", "b", "n2"),
                           ("other", "c", "n1"), ("default", "d", "")):  # fmt: skip
        body = pod_manifest(name, **({"nodeName": node} if node else {}))
        store.create(pods, ns, body)
    return store


def test_a_selector_requiring_a_node_reads_that_nodes_pods_only() -> None:
    store = _store()
    assert selectors.select(_pods(), {"fieldSelector": "spec.nodeName=n1"}).indexed == "n1"
    assert _names(store, "", "spec.nodeName=n1") == ["a", "c"]
    assert _names(store, "default", "spec.nodeName==n1") == ["a"]
    assert _names(store, "", "metadata.name=c,spec.nodeName=n1") == ["c"]
    assert _names(store, "", "spec.nodeName=n3") == []
    assert _names(store, "", "spec.nodeName=") == ["d"]  # the unbound pods


def test_other_selectors_are_not_narrowed() -> None:
    store = _store()
    for fields in ("spec.nodeName!=n1", "metadata.name=a", ""):
        assert selectors.select(_pods(), {"fieldSelector": fields}).indexed is None
    assert _names(store, "", "spec.nodeName!=n1") == ["b", "d"]
    configmaps = Catalogue().lookup("", "v1", "configmaps")
    assert configmaps is not None
    assert selectors.select(configmaps, {"fieldSelector": "metadata.name=a"}).indexed is None


def test_the_index_follows_deletes_and_a_reload() -> None:
    store, pods = _store(), _pods()
    store.delete(pods, "default", "a", {"gracePeriodSeconds": 0})
    assert _names(store, "", "spec.nodeName=n1") == ["c"]
    reloaded = Store()
    table = [(pods.key, e.raw) for e in store.list(pods, "")[0]]
    reloaded.load(table, store.resource_version)
    assert _names(reloaded, "", "spec.nodeName=n1") == ["c"]
    assert _names(reloaded, "", "spec.nodeName=n2") == ["b"]
    reloaded.delete(pods, "default", "b", {"gracePeriodSeconds": 0})
    assert _names(reloaded, "", "spec.nodeName=n2") == []


def test_a_paged_list_by_node_continues_within_the_node() -> None:
    store, pods = _store(), _pods()
    for i in range(5):
        store.create(pods, "default", pod_manifest(f"p{i}", nodeName="n2"))
    selection = selectors.select(pods, {"fieldSelector": "spec.nodeName=n2"})
    names, after = [], None
    while True:
        page, after, _ = store.list(pods, "", match=selection.match, limit=2, after=after,
                                    indexed=selection.indexed)  # fmt: skip
        names += [e.obj["metadata"]["name"] for e in page]
        if after is None:
            break
    assert names == ["b", "p0", "p1", "p2", "p3", "p4"]
