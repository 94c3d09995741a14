"""The API writes upstream reports turn into, with bounded retries and a shared rate limit.

Input: calls from the upstream workers; output: requests to the Kubernetes API through
the official client (merge patches on the status subresources, creates, Leases).
"""

from __future__ import annotations

import copy
import datetime
import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client

from modules import contract
from modules.edgecontroller.queues import TokenBucket
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube import raw

log = logging.getLogger("modules.edgecontroller.upstream")

Obj = dict[str, Any]
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
_RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})  # 409: a write raced another


def micro_time(at: datetime.datetime | None = None) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    at = at or datetime.datetime.now(datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    """A Kubernetes Time: RFC 3339, whole seconds, UTC."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{contract.LEASE_NAMESPACE}/leases"


def _node(node: str) -> str:
    return f"/api/v1/nodes/{raw.segment(node)}"


def _pod(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{raw.segment(namespace)}/pods/{raw.segment(name)}"


class KubeOps:
    """The API calls of edge reports, as plain JSON (`modules.kube.raw`)."""

    def __init__(self, api_client: client.ApiClient, settings: EdgeControllerSettings) -> None:
        self._api_client = api_client
        self._core: Any = client.CoreV1Api(api_client)
        self._settings = settings

    def call(
        self, limiter: TokenBucket, stop: threading.Event, func: Callable[..., Any], *args: Any
    ) -> Any:
        """`func(*args)` under the rate limit, retried on transient errors (bounded)."""
        attempts = self._settings.report_attempts
        for attempt in range(1, attempts + 1):
            if not limiter.acquire(stop):
                raise RuntimeError("stopping")
            try:
                return func(*args)
            except (client.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                status = exc.status if isinstance(exc, client.ApiException) else None
                if attempt == attempts or (status is not None and status not in _RETRYABLE):
                    raise
                log.warning("%s failed (%s); retry %d", func.__name__, exc, attempt)
                stop.wait(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _patch(self, path: str, body: Obj, content_type: str) -> Obj:
        """A patch as plain JSON (`modules.kube.raw`): the generated client's validation
        of every call cost more CPU than the request, for the most frequent reports."""
        patched: Obj = raw.request(
            self._api_client, "PATCH", path, body=body, content_type=content_type
        )
        return patched

    # --- nodes -----------------------------------------------------------------------

    def patch_node_status(self, node: str, status: Obj) -> Obj:
        """Merge-patch the node's status; the report itself is the heartbeat."""
        status = copy.deepcopy(status)
        stamp = now()
        for condition in status.get("conditions") or []:
            if isinstance(condition, dict):
                condition["lastHeartbeatTime"] = stamp
        return self._patch(f"{_node(node)}/status", {"status": status}, MERGE)

    def read_node(self, node: str) -> Obj:
        found: Obj = raw.request(self._api_client, "GET", _node(node))
        return found

    def patch_node_metadata(self, node: str, labels: Obj, annotations: Obj) -> Obj:
        """Merge labels and annotations into the Node (``node`` ``update``)."""
        patch = {"metadata": {"labels": labels, "annotations": annotations}}
        return self._patch(_node(node), patch, STRATEGIC)

    def patch_node_status_strategic(self, node: str, patch: Obj) -> Obj:
        """A ``nodepatch``: the edge's own strategic-merge patch of the node's status."""
        return self._patch(f"{_node(node)}/status", patch, STRATEGIC)

    def register_node(self, node: str, body: Obj) -> Obj:
        """Create the Node labelled as an edge node, or label the existing one."""
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        for key in ("resourceVersion", "uid", "creationTimestamp"):
            meta.pop(key, None)
        meta["labels"] = {**(meta.get("labels") or {}), **self._settings.node_labels}
        try:
            created: Obj = raw.request(self._api_client, "POST", "/api/v1/nodes", body=body)
            return created
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        patch = {"metadata": {"labels": self._settings.node_labels}}
        return self._patch(_node(node), patch, MERGE)

    # --- pods ------------------------------------------------------------------------

    def patch_pod_status(self, namespace: str, name: str, status: Obj) -> Obj:
        return self._patch(f"{_pod(namespace, name)}/status", {"status": status}, MERGE)

    def patch_pod_status_strategic(self, namespace: str, name: str, patch: Obj) -> Obj:
        """A ``podpatch``: the edge's own strategic-merge patch of the pod's status."""
        return self._patch(f"{_pod(namespace, name)}/status", patch, STRATEGIC)

    def delete_pod(
        self, namespace: str, name: str, options: Obj, also_done: tuple[int, ...] = ()
    ) -> None:
        """Delete a pod with DeleteOptions; a pod already gone (404), or a status in
        `also_done`, is no error."""
        try:
            # Through `raw`, which reads the answer: a response left unread keeps its
            # connection out of the pool, and each delete opened a new one (TLS included).
            raw.request(self._api_client, "DELETE", _pod(namespace, name), body=options)
        except client.ApiException as exc:
            if exc.status != 404 and exc.status not in also_done:
                raise

    # --- leases ----------------------------------------------------------------------

    def renew_lease(self, node: str) -> Obj:
        """Renew (or create) ``kube-node-lease/<node>``, as the kubelet's lease controller.

        Plain JSON (`modules.kube.raw`): a renewal per connected node every heartbeat is
        the most frequent write cloudcore makes, and the generated client's validation
        cost more CPU than the request."""
        spec = {
            "holderIdentity": node,
            "leaseDurationSeconds": self._settings.lease_duration,
            "renewTime": micro_time(),
        }
        ns = contract.LEASE_NAMESPACE
        api = self._api_client
        try:
            found: Obj = raw.request(
                api, "PATCH", f"{_LEASES}/{raw.segment(node)}", body={"spec": spec},
                content_type=MERGE,
            )  # fmt: skip
            return found
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": ns}, "spec": spec}  # fmt: skip
        try:
            created: Obj = raw.request(api, "POST", _LEASES, body=body)
            return created
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        self._ensure_namespace(ns)
        created = raw.request(api, "POST", _LEASES, body=body)
        return created

    def read_lease(self, node: str) -> Obj:
        found: Obj = raw.request(self._api_client, "GET", f"{_LEASES}/{raw.segment(node)}")
        return found

    def _ensure_namespace(self, name: str) -> None:
        try:
            self._core.create_namespace({"metadata": {"name": name}})
        except client.ApiException as exc:
            if exc.status != 409:
                raise
