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
import urllib.parse
from collections.abc import Callable

import urllib3
from kubernetes import client

from modules import contract
from modules.edgecontroller.downstream import Fresh
from modules.kube import raw

log = logging.getLogger("modules.edgecontroller.fresh")

_TIMEOUT = 30.0  # seconds for one request
_NO_ANSWER = (OSError, urllib3.exceptions.HTTPError)


def read(api_client: client.ApiClient, node: str) -> Fresh:
    """The node (None if it is gone) and the pods bound to it, as the API has them now.

    Raises:
        kubernetes.client.ApiException: a read failed (not a missing Node).
        OSError, urllib3.exceptions.HTTPError: no answer.
    """
    quoted = urllib.parse.quote(node, safe="")
    try:
        found = raw.request(api_client, "GET", f"/api/v1/nodes/{quoted}", timeout=_TIMEOUT)
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


class FreshReader:
    """A few threads reading nodes (a failover's nodes queue here, hundreds at once)."""

    def __init__(
        self, api_client: client.ApiClient, done: Callable[[str, Fresh | None], None], *,
        workers: int = 4,
    ) -> None:  # fmt: skip
        self._api_client = api_client  # its pool should allow `workers` connections
        self._done = done  # (node, its read or None): called on a reader's thread
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
                node = self._nodes.popleft()
            try:
                fresh: Fresh | None = read(self._api_client, node)
                with self._counts:
                    self.reads += 1
            except (client.ApiException, *_NO_ANSWER) as exc:
                with self._counts:
                    self.failures += 1
                log.warning("node %s: fresh read for its takeover failed (%s): resynced"
                            " from the caches", node, exc)  # fmt: skip
                fresh = None
            self._done(node, fresh)
