"""Kubernetes Events an edge reports: checked, deduplicated and rate-limited, no I/O.

edged reports what happens to its pods (pulled, started, failed) as Events, through
client-go's recorder: ``insert`` with a new Event, ``update`` with one, ``patch`` with
``{"event": <Event>, "patchData": "<strategic-merge patch>"}`` when the recorder counts a
repeat (KubeEdge: edge/pkg/metamanager/client/event.go). KubeEdge's cloudcore writes each
one as it comes, so an edge that resends or floods writes each again. Here a node may
report only on itself and its own pods (`check`), an Event already written at this
``count`` is not written again, and each node gets a token bucket (`EventGate.admit`):
Events beyond it are dropped and counted, as a kubelet's recorder drops them past
its own QPS.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from modules.edgecontroller import reports
from modules.edgecontroller.reports import ReportError, forbidden
from modules.hub.ratelimit import TokenBucket
from modules.kube.correlator import LRU

Obj = dict[str, Any]
PodLookup = Any  # (namespace, name) -> the pod as the watch has it, or None
Departed = Any  # (namespace, name) -> the node a recently deleted pod was bound to, or ""


@dataclasses.dataclass(frozen=True, slots=True)
class EventReport:
    """One Event an edge reported, as the API call needs it."""

    namespace: str
    name: str
    event: Obj  # the Event to create or replace
    patch: Obj | None  # the strategic-merge patch of a ``patch``, else None
    count: int  # the Event's count (1 when absent)


def parse(operation: str, namespace: str, content: Any) -> EventReport:
    """The Event in an ``insert``/``update``/``patch``.

    Raises:
        ReportError: not an Event (or patch), or its namespace is not the resource's.
    """
    patch = None
    if operation == "patch":
        if not isinstance(content, dict) or not isinstance(content.get("event"), dict):
            raise ReportError("event patch needs {event, patchData}")
        data = content.get("patchData")
        if isinstance(data, str):
            patch = reports.patch(data)
        elif isinstance(data, dict):
            patch = data
        else:
            raise ReportError("event patch needs patchData")
        content = content["event"]
    elif operation not in ("insert", "update"):
        raise ReportError(f"unsupported {operation!r} on an event", 405)
    if not isinstance(content, dict) or not isinstance(content.get("metadata"), dict):
        raise ReportError("event needs an Event object")
    meta = content["metadata"]
    name, event_ns = meta.get("name"), meta.get("namespace") or namespace
    if not isinstance(name, str) or not name:
        raise ReportError("event without metadata.name")
    if event_ns != namespace:
        raise ReportError(f"event namespace {event_ns!r} is not the resource's {namespace!r}")
    count = content.get("count")
    return EventReport(namespace, name, content, patch, count if isinstance(count, int) else 1)


def check(node: str, report: EventReport, pod: PodLookup, departed: Departed) -> None:
    """A node reports only on itself and on pods bound to it (or bound to it until they
    were deleted a moment ago: stopping a pod is reported after its delete).

    Raises:
        ReportError: 403 for anything else.
    """
    involved = report.event.get("involvedObject")
    if not isinstance(involved, dict):
        raise ReportError("event without involvedObject")
    kind, name = involved.get("kind"), involved.get("name")
    if kind == "Node" and name == node:
        return
    if kind == "Pod" and isinstance(name, str):
        namespace = involved.get("namespace") or report.namespace
        found = pod(namespace, name)
        if found is not None and (found.get("spec") or {}).get("nodeName") == node:
            return
        if found is None and departed((namespace, name)) == node:
            return
        raise forbidden(f"node {node}: event about pod {namespace}/{name}, not bound to it")
    raise forbidden(f"node {node} may not report events about {kind} {name}")


class EventGate:
    """Per node: a token bucket; over all nodes: the last count written per Event."""

    def __init__(self, *, rate: float, burst: int, remember: int = 4096) -> None:
        self._rate = rate  # Events per second per node
        self._burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        # The last count written per Event; `remember` are kept, least recently used
        # forgotten first (the LRU that cloudcore's own Events are correlated with).
        self._written: LRU[tuple[str, str], int] = LRU(remember)
        self.dropped = 0  # over a node's rate
        self.duplicates = 0  # already written at that count

    def admit(self, node: str, report: EventReport, now: float) -> str:
        """ "" to write it, else why not (``"duplicate"`` or ``"rate"``)."""
        key = (report.namespace, report.name)
        last = self._written.get(key)
        if last is not None and report.count <= last:
            self.duplicates += 1
            return "duplicate"
        bucket = self._buckets.get(node)
        if bucket is None:
            bucket = self._buckets[node] = TokenBucket(rate=self._rate, burst=self._burst, now=now)
        if not bucket.take(now):
            self.dropped += 1
            return "rate"
        return ""

    def written(self, report: EventReport) -> None:
        self._written.put((report.namespace, report.name), report.count)


def creatable(event: Obj) -> Obj:
    """The Event as a create body: no server-set metadata."""
    body = dict(event)
    meta = {
        k: v
        for k, v in (event.get("metadata") or {}).items()
        if k not in ("resourceVersion", "uid", "creationTimestamp", "managedFields")
    }
    body["metadata"] = meta
    body.setdefault("apiVersion", "v1")
    body.setdefault("kind", "Event")
    return body
