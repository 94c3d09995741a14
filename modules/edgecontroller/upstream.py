"""Upstream: what edges report and ask, applied to the Kubernetes API by a pool of workers.

Input: cloudhub's messages (contract items 2 and 4), put per node into a `FairQueue`
by the module thread; output: API writes (node and pod status, node registration,
Leases, Events, tokens) and replies to cloudhub (contract item 3), routed and shaped as
KubeEdge's cloudcore replies (`modules.replies`). Content formats are those KubeEdge
edges send (cloud/pkg/edgecontroller/controller/upstream.go): NodeStatusRequest
``{"UID", "Status"}``, PodStatusRequest ``{"UID", "Name", "Status"}`` or a list of them,
and a Node for ``insert``; what kubelet-based edges (KubeEdge 1.12 and later) add:
``node`` query and update, ``nodepatch`` and ``podpatch`` (strategic-merge patches
of status, as JSON text), ``pod`` delete (DeleteOptions, or the legacy pod UID),
``lease`` query, and what `asks` and `events` handle (service-account tokens, volume
queries, mirror pods, CSRs, Events, rule status). Content checks are in `reports`. A
failing API call is retried (bounded) by the worker that holds that node; other nodes
are served by the other workers meanwhile.

Per-node authorization happens here, for every report, as Kubernetes' Node
authorizer and NodeRestriction would judge it (cloudhub has already refused any
resource naming another node, and the node is the one its certificate names): a node
may report status, register, read, update and patch only itself, report on, patch
and delete only pods bound to it (`_one_pod_status`, `_bound_pod`), renew and read
only its own Lease, and query only configmaps and secrets its pods reference
(`_query`); `asks` states its own rules. Each refusal is a failure reply (a
``Status`` with 403, 404 or 400), logged with node and message id, and counted per
node (``beehive debug watches``). Events and rule status get no reply, as in KubeEdge
(the edge sends them without waiting).

Each report is counted by resource type and result (`report_counts`): ``applied``,
``unchanged`` (a pod status that changed nothing, so nothing was written),
``refused`` (judged here: 4xx) or ``error`` (the API failed, or a 5xx).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from beehive import JsonValue, Message, codec, errors
from modules import contract, replies
from modules.edgecontroller import asks, kube_ops, nodestatus, podstatus, reports
from modules.edgecontroller.asks import NO_REPLY
from modules.edgecontroller.downstream import DELETE, Send, build_message
from modules.edgecontroller.location import LocationCache
from modules.edgecontroller.queues import FairQueue, QueueFullError, TokenBucket
from modules.edgecontroller.reports import ReportError
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube import raw

log = logging.getLogger("modules.edgecontroller.upstream")

Obj = dict[str, Any]
Lookup = Callable[[str, str, str], Obj | None]  # (rtype, namespace, name) -> cached object

# Resource types counted under their own name; anything else an edge sends is "other",
# so what an edge writes cannot grow the counters' label set.
_REPORT_TYPES = frozenset({
    contract.NODE, contract.NODESTATUS, contract.NODEPATCH, contract.POD, contract.PODSTATUS,
    contract.PODPATCH, contract.LEASE, contract.CONFIGMAP, contract.SECRET,
} | asks.HANDLED)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class RenewLease:
    """Work item: renew `node`'s Lease."""

    node: str


class Upstream:
    """The worker pool and the handlers for each kind of report."""

    def __init__(
        self,
        *,
        hive: Any,
        api_client: client.ApiClient,
        settings: EdgeControllerSettings,
        location: LocationCache,
        lookup: Lookup,
    ) -> None:
        self._hive = hive  # replies and downstream deletes go through it
        self._api = kube_ops.KubeOps(api_client, settings)  # the API writes
        self._settings = settings
        self._location = location  # which node may read which configmap/secret
        self._lookup = lookup  # the reflectors' stores
        self._queue: FairQueue[Message | RenewLease] = FairQueue(settings.upstream_buffer)
        self._limiter = TokenBucket(settings.qps, settings.burst)  # API requests
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._renewed: dict[str, float] = {}  # node -> monotonic time of its last renewal
        self._lock = threading.Lock()  # guards _renewed
        self.handled = 0  # reports handled (replied to), for tests and debug
        self.refused = 0  # reports answered with an error
        self.refused_by_node: dict[str, int] = {}  # the same, per node (debug watches)
        self._last_writes = podstatus.LastWrites()  # pod status writes the cache lags
        self.unchanged = 0  # pod status reports that changed nothing (no API write)
        self._reports: dict[tuple[str, str], int] = {}  # (type, result) -> count; _lock
        self._local = threading.local()  # per worker: whether its report wrote nothing
        self._asks = asks.Asks(
            api_client=api_client, call=self._call, lookup=lookup, location=location,
            settings=settings,
        )  # fmt: skip

    def start(self) -> None:
        for i in range(self._settings.upstream_workers):
            thread = threading.Thread(
                target=self._work, name=f"beehive-edgecontroller-upstream-{i}", daemon=True
            )
            thread.start()
            self._workers.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.close()
        for thread in self._workers:
            thread.join(timeout)

    def queued(self) -> int:
        return len(self._queue)

    # --- from the module thread ------------------------------------------------------

    def submit(self, node: str, message: Message) -> None:
        """Queue a report from `node`; refused at once when the queue is full."""
        try:
            self._queue.put(node, message.msg_id, message)
        except QueueFullError as exc:
            busy = ReportError(f"edgecontroller busy: {exc}", 429)
            self._refuse(node, message, _rtype(message), busy)

    def session(self, node: str, operation: str) -> None:
        """Contract item 4: connected / keepalive renew the Lease (at most per interval)."""
        now = time.monotonic()
        with self._lock:
            if operation == "disconnected":
                # Kept: a node back within the interval holds a Lease renewed less than an
                # interval ago (a reconnect storm would otherwise write every Lease again);
                # one back later is renewed at once.
                return
            last = self._renewed.get(node)
            if last is not None and now - last < self._settings.lease_renew_interval:
                return
            self._renewed[node] = now
        try:
            self._queue.put(node, "lease", RenewLease(node))
        except QueueFullError:
            log.warning("node %s: lease renewal skipped, upstream queue full", node)

    # --- workers ---------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            entry = self._queue.take(0.2)
            if entry is None:
                continue
            node, item = entry
            try:
                if isinstance(item, RenewLease):
                    self._api.call(self._limiter, self._stop, self._api.renew_lease, node)
                else:
                    self._handle(node, item)
            except Exception:  # one bad item must not end the worker
                log.exception("node %s: upstream item failed", node)
            finally:
                self._queue.done(node)

    def _handle(self, node: str, message: Message) -> None:
        try:
            resource = contract.parse_resource(message.route.resource)
        except ValueError as exc:
            self._refuse(node, message, "", ReportError(str(exc)))
            return
        self._local.unchanged = False
        try:
            content = self._dispatch(node, resource, message)
        except ReportError as exc:
            self._refuse(node, message, resource.type, exc)
        except raw.BadName as exc:  # a name no object can have, in a request's path
            self._refuse(node, message, resource.type, ReportError(str(exc), 400))
        except client.ApiException as exc:
            self._refuse(node, message, resource.type, exc)
        except Exception as exc:
            failed = ReportError(f"{type(exc).__name__}: {exc}"[:256], 500)
            self._refuse(node, message, resource.type, failed)
        else:
            self.handled += 1
            self._count(resource.type, "unchanged" if self._local.unchanged else "applied")
            if content is not NO_REPLY:
                self._send(replies.response(message, content))

    def _dispatch(self, node: str, resource: contract.Resource, message: Message) -> Any:
        rtype, operation = resource.type, message.route.operation
        if rtype == contract.NODESTATUS and operation == "update":
            return self._node_status(node, resource.name, message.content)
        if rtype in (contract.NODESTATUS, contract.NODE) and operation == "insert":
            body = reports.node_body(node, message.content)
            created = self._registered(node) or self._call(self._api.register_node, node, body)
            return "OK" if rtype == contract.NODESTATUS else replies.object_resp(created)
        if rtype == contract.PODSTATUS and operation in ("update", "insert"):
            return self._pod_status(node, resource, message.content)
        if rtype == contract.LEASE and operation in ("update", "insert"):
            reports.own(node, resource.name, "renew the lease of")
            renewed = self._call(self._api.renew_lease, node)
            with self._lock:  # an edge that renews its own (a kubelet's) is not renewed twice
                self._renewed[node] = time.monotonic()
            return replies.object_resp(renewed)
        if rtype in (contract.CONFIGMAP, contract.SECRET) and operation == "query":
            return self._query(node, rtype, resource.namespace, resource.name)
        if asks.handles(rtype, operation):
            return self._asks.handle(node, resource, operation, message.content)
        return self._dispatch_more(node, resource, operation, message.content)

    def _dispatch_more(
        self, node: str, resource: contract.Resource, operation: str, content: Any
    ) -> JsonValue:
        """What a kubelet-based edge (KubeEdge 1.12 and later) also sends, for itself only."""
        rtype, namespace, name = resource.type, resource.namespace, resource.name
        if rtype == contract.NODE and operation == "query":
            reports.own(node, name, "read")
            read: Obj = self._call(self._api.read_node, node)
            return read
        if rtype == contract.NODE and operation == "update":
            reports.own(node, name, "update")
            labels, annotations = reports.node_metadata(node, content)
            self._call(self._api.patch_node_metadata, node, labels, annotations)
            return "OK"
        if rtype == contract.NODEPATCH:
            reports.own(node, name, "patch")
            patched = self._call(
                self._api.patch_node_status_strategic, node, reports.patch(content)
            )
            return replies.object_resp(patched)
        if rtype == contract.PODPATCH:
            self._bound_pod(node, namespace, name, missing_ok=False)
            patch = reports.patch(content)
            patched = self._call(self._api.patch_pod_status_strategic, namespace, name, patch)
            return replies.object_resp(patched)
        if rtype == contract.POD and operation == "delete":
            if self._bound_pod(node, namespace, name, missing_ok=True):
                self._call(self._api.delete_pod, namespace, name, reports.delete_options(content))
            return "OK"
        if rtype == contract.LEASE and operation == "query":
            reports.own(node, name, "read the lease of")
            return replies.object_resp(self._call(self._api.read_lease, node))
        raise ReportError(f"unsupported {operation!r} on resource type {rtype!r}", 405)

    def _bound_pod(self, node: str, namespace: str, name: str, *, missing_ok: bool) -> bool:
        """Whether the pod exists (as the watch has it); refused unless bound to `node`."""
        pod = self._lookup(contract.POD, namespace, name)
        if pod is None and missing_ok:
            return False
        reports.bound_pod(node, namespace, name, pod)
        return True

    # --- handlers --------------------------------------------------------------------

    def _registered(self, node: str) -> Obj | None:
        """The Node as the watch has it when it is already labelled as ours, else None.

        Edges register again on every connect; after a reconnect storm that would be
        a create (409) and a patch per node for nothing.
        """
        cached = self._lookup(contract.NODE, "", node)
        labels = ((cached or {}).get("metadata") or {}).get("labels") or {}
        wanted = self._settings.node_labels.items()
        return cached if cached is not None and all(labels.get(k) == v for k, v in wanted) else None

    def _node_status(self, node: str, name: str, content: Any) -> JsonValue:
        if name and name != node:
            raise reports.forbidden(f"node {node} may not report the status of node {name}")
        if not isinstance(content, dict) or not isinstance(content.get("Status"), dict):
            raise ReportError(f"node {node}: NodeStatusRequest needs a Status object")
        held = (self._lookup(contract.NODE, "", node) or {}).get("status")
        now = datetime.datetime.now(datetime.UTC)
        every = self._settings.node_status_report_interval
        if nodestatus.unchanged(held, content["Status"], now, every):
            self._local.unchanged = True
            return "OK"
        self._call(self._api.patch_node_status, node, content["Status"])
        return "OK"

    def _pod_status(self, node: str, resource: contract.Resource, content: Any) -> JsonValue:
        entries = content if isinstance(content, list) else [content]
        problems, codes, wrote = [], set(), False
        for entry in entries:
            try:
                wrote |= self._one_pod_status(node, resource.namespace, entry)
            except ReportError as exc:
                problems.append(str(exc))
                codes.add(exc.code)
            except raw.BadName as exc:
                problems.append(str(exc))
                codes.add(400)
            except client.ApiException as exc:
                problems.append(_api_text(exc))
                codes.add(int(exc.status or 500))
        if problems:
            raise ReportError("; ".join(problems), codes.pop() if len(codes) == 1 else 400)
        self._local.unchanged = not wrote
        return "OK"

    def _one_pod_status(self, node: str, namespace: str, entry: Any) -> bool:
        """Apply one PodStatusRequest; False when it wrote nothing."""
        if not isinstance(entry, dict) or not isinstance(entry.get("Status"), dict):
            raise ReportError(f"node {node}: PodStatusRequest needs Name and a Status object")
        name = entry.get("Name")
        if not isinstance(name, str) or not name:
            raise ReportError(f"node {node}: PodStatusRequest without a Name")
        pod = self._lookup(contract.POD, namespace, name)
        if pod is None or pod["metadata"].get("uid") != entry.get("UID"):
            # upstream.go: the edge holds a pod the cloud no longer has; tell it to drop it.
            self._send_pod_delete(node, namespace, name, entry.get("UID"))
            return True
        if (pod.get("spec") or {}).get("nodeName") != node:
            raise reports.forbidden(
                f"node {node}: pod {namespace}/{name} is not bound to this node"
            )
        uid = pod["metadata"]["uid"]
        current, caught_up = self._last_writes.latest(uid, pod)
        status = podstatus.normalized(entry["Status"], current, kube_ops.now())
        after = podstatus.merged(current, status)  # the status the write would leave
        wrote = not (caught_up and after == current)
        if not wrote:
            self.unchanged += 1  # the same state reported again: nothing to write
        else:
            written = self._call(self._api.patch_pod_status, namespace, name, status)
            self._last_writes.wrote(uid, namespace, name, written, self._lookup_pod)
        deleting = pod["metadata"].get("deletionTimestamp")
        if deleting and podstatus.terminated(after):
            # upstream.go: the edge has stopped a pod being deleted; finish the delete.
            log.info("node %s: pod %s/%s stopped; deleting it", node, namespace, name)
            options = reports.grace_zero(uid)  # 409: another pod by that name by now
            self._call(self._api.delete_pod, namespace, name, options, (409,))
            wrote = True
        return wrote

    def _lookup_pod(self, namespace: str, name: str) -> Obj | None:
        return self._lookup(contract.POD, namespace, name)

    def _query(self, node: str, rtype: str, namespace: str, name: str) -> JsonValue:
        if not self._location.needs(node, (rtype, namespace, name)):
            raise reports.forbidden(
                f"node {node}: no pod on it references {rtype} {namespace}/{name}"
            )
        obj = self._lookup(rtype, namespace, name)
        if obj is None:
            raise reports.not_found(f'{rtype}s "{name}" not found')
        return obj

    # --- helpers ---------------------------------------------------------------------

    def report_counts(self) -> list[list[str | int]]:
        """``[[type, result, count], ...]`` (see the module docstring)."""
        with self._lock:
            return [[rtype, result, n] for (rtype, result), n in sorted(self._reports.items())]

    def _count(self, rtype: str, result: str) -> None:
        key = (rtype if rtype in _REPORT_TYPES else "other", result)
        with self._lock:
            self._reports[key] = self._reports.get(key, 0) + 1

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        return self._api.call(self._limiter, self._stop, func, *args)

    def _send_pod_delete(self, node: str, namespace: str, name: str, uid: Any) -> None:
        meta = {"name": name, "namespace": namespace, "uid": uid if isinstance(uid, str) else ""}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta}
        log.info("node %s reports pod %s/%s which is gone; sending a delete", node, namespace, name)
        self._send(build_message(Send(node, DELETE, contract.POD, pod)))

    def _refuse(
        self, node: str, message: Message, rtype: str, exc: ReportError | client.ApiException
    ) -> None:
        """Every refusal and failure: a failure reply (none for events and rule status,
        which get no reply), logged, counted."""
        failed = _status_of(exc)
        self.refused += 1
        judged = isinstance(exc, ReportError) and exc.code < 500
        self._count(rtype, "refused" if judged else "error")
        with self._lock:
            self.refused_by_node[node] = self.refused_by_node.get(node, 0) + 1
        log.error(
            "node %s: refused %s %s (msg %s): %s",
            node,
            message.route.operation,
            message.route.resource,
            message.msg_id,
            failed["message"],
        )
        if replies.answered(message.route.operation, rtype):
            self._send(replies.failure(message, failed, rtype=rtype))

    def _send(self, message: Message) -> None:
        """To cloudhub, waiting while its mailbox is full (a lost reply leaves the edge
        waiting a minute; a lost delete leaves it holding a pod)."""
        try:
            self._hive.send_all(contract.CLOUDHUB, [message], stop=self._stop)
        except errors.BeehiveError as exc:
            log.error("could not send %s to cloudhub: %s", message.route.resource, exc)


def _rtype(message: Message) -> str:
    try:
        return contract.parse_resource(message.route.resource).type
    except ValueError:
        return ""


def _api_text(exc: client.ApiException) -> str:
    return f"Kubernetes API: {exc.status} {exc.reason}"


def _status_of(exc: ReportError | client.ApiException) -> dict[str, JsonValue]:
    """The ``Status`` to send the edge: the API server's own, or one for our refusal."""
    if isinstance(exc, ReportError):
        return replies.status(exc.code, str(exc))
    try:
        body = codec.loads(exc.body) if exc.body else None
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status" and "code" in body:
        return body
    return replies.status(int(exc.status or 500), _api_text(exc))
