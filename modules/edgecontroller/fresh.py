"""Fresh reads for a takeover resync: a node and its pods straight from the API.

Input: nodes that another replica served until now (cloudhub's ``resync`` with
``takeover``), through `put` (never blocks). Output: a `Fresh` read per node (or
None when the reads failed: the caches answer then) handed to `done` on this
reader's thread, which queues it for the downstream thread. Reads are quorum reads
(no resourceVersion): they are at least as new as anything the replica the node
came from could have sent it, which our watch caches may not be yet.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

import urllib3
from kubernetes import client

from modules import contract
from modules.edgecontroller.downstream import Fresh, Obj
from modules.kube import raw

log = logging.getLogger("modules.edgecontroller.fresh")

_TIMEOUT = 30.0  # seconds for one request
_PAGE = "500"  # items per page of the lists of a batch
BATCH = 16  # nodes waiting at once from which one list of everything may beat a read each
# ... when they are at least this share of the cluster's edge nodes: a list of everything
# parses every pod of the cluster, a read each only the nodes' own (a failover of one
# replica of three at 900 nodes spent 2.4-3 CPU-s per survivor in whole lists).
WHOLE_SHARE = 0.25
_MOST = 1000  # nodes one batch reads at most
_NO_ANSWER = (OSError, urllib3.exceptions.HTTPError)


def read(api_client: client.ApiClient, node: str) -> Fresh:
    """The node (None if it is gone) and the pods bound to it, as the API has them now.

    Raises:
        kubernetes.client.ApiException: a read failed (not a missing Node).
        OSError, urllib3.exceptions.HTTPError: no answer.
    """
    try:
        found = raw.request(
            api_client, "GET", f"/api/v1/nodes/{raw.segment(node)}", timeout=_TIMEOUT
        )
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        return Fresh(None, [])
    query = [("fieldSelector", f"spec.nodeName={node}")]
    listed = raw.request(api_client, "GET", "/api/v1/pods", query=query, timeout=_TIMEOUT)
    pods = listed.get("items") or []
    for pod in pods:  # a list's items come without them
        pod.setdefault("apiVersion", "v1")
        pod.setdefault("kind", "Pod")
    found.setdefault("apiVersion", "v1")
    found.setdefault("kind", "Node")
    list_rv = contract.resource_version(str((listed.get("metadata") or {}).get("resourceVersion")))
    return Fresh(found, pods, list_rv)


def read_many(api_client: client.ApiClient, nodes: list[str]) -> dict[str, Fresh]:
    """`read` for many nodes at once (a failover's): one list of every Node and one of
    every bound pod (a consistent snapshot, page by page), split by node.

    Raises:
        kubernetes.client.ApiException: a list failed.
        OSError, urllib3.exceptions.HTTPError: no answer.
    """
    wanted = set(nodes)
    found: dict[str, Obj] = {}
    for node in _pages(api_client, "/api/v1/nodes", [])[0]:
        name = str((node.get("metadata") or {}).get("name") or "")
        if name in wanted:
            node.setdefault("apiVersion", "v1")
            node.setdefault("kind", "Node")
            found[name] = node
    pods, list_rv = _pages(api_client, "/api/v1/pods", [("fieldSelector", "spec.nodeName!=")])
    by_node: dict[str, list[Obj]] = {name: [] for name in wanted}
    for pod in pods:
        name = str((pod.get("spec") or {}).get("nodeName") or "")
        if name in by_node:
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
            by_node[name].append(pod)
    return {name: Fresh(found.get(name), by_node[name] if name in found else [], list_rv)
            for name in nodes}  # fmt: skip


def _pages(
    api_client: client.ApiClient, path: str, query: list[tuple[str, str]]
) -> tuple[list[Obj], int | None]:
    """Every item of a list (one snapshot, page by page) and its resourceVersion."""
    items: list[Obj] = []
    token, list_rv = "", None
    while True:
        page_query = [*query, ("limit", _PAGE)] + ([("continue", token)] if token else [])
        page = raw.request(api_client, "GET", path, query=page_query, timeout=_TIMEOUT)
        meta = page.get("metadata") or {}
        if list_rv is None:
            list_rv = contract.resource_version(str(meta.get("resourceVersion")))
        items += page.get("items") or []
        token = meta.get("continue") or ""
        if not token:
            return items, list_rv


def whole_lists(waiting: int, cluster_nodes: int) -> bool:
    """Whether `waiting` nodes are read with one list of everything rather than a read
    each: many of them, and a large share of the cluster's `cluster_nodes`."""
    return waiting >= BATCH and waiting >= WHOLE_SHARE * cluster_nodes


class FreshReader:
    """A few threads reading nodes (a failover's nodes queue here, hundreds at once)."""

    def __init__(
        self, api_client: client.ApiClient, done: Callable[[str, Fresh | None], None], *,
        workers: int = 4, cluster_nodes: Callable[[], int] = lambda: 0,
    ) -> None:  # fmt: skip
        self._api_client = api_client  # its pool should allow `workers` connections
        self._done = done  # (node, its read or None): called on a reader's thread
        self._cluster_nodes = cluster_nodes  # how many edge nodes the cluster has now
        self._nodes: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, name=f"beehive-edgecontroller-fresh-{i}",
                             daemon=True)
            for i in range(workers)
        ]  # fmt: skip
        self._counts = threading.Lock()
        self.reads = 0  # nodes read
        self.failures = 0  # reads that failed (the caches answered)
        self.batches = 0  # reads of many nodes at once

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(max(0.1, 4.0 / len(self._threads)))

    def put(self, node: str) -> None:
        with self._cond:
            self._nodes.append(node)
            self._cond.notify()

    def waiting(self) -> int:
        return len(self._nodes)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._nodes or self._stopping)
                if self._stopping:
                    return
                waiting = len(self._nodes)
                many = whole_lists(waiting, self._cluster_nodes())
                take = min(waiting, _MOST) if many else 1
                nodes = [self._nodes.popleft() for _ in range(take)]
            try:
                if many:
                    read_in_batch = read_many(self._api_client, nodes)
                    got: dict[str, Fresh | None] = dict(read_in_batch)
                else:
                    got = {nodes[0]: read(self._api_client, nodes[0])}
                with self._counts:
                    self.reads += len(nodes)
                    self.batches += many
            except (client.ApiException, raw.BadName, *_NO_ANSWER) as exc:
                with self._counts:
                    self.failures += len(nodes)
                log.warning("fresh read of %d node(s) taken over failed (%s): resynced from"
                            " the caches", len(nodes), exc)  # fmt: skip
                got = dict.fromkeys(nodes)
            for node in nodes:
                self._done(node, got[node])
