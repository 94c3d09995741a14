"""ObjectSync records: read at start, written off the delivery path on their own threads.

Input: `SyncOp`s from `CloudHubCore` (via `submit`, any thread; returns at once:
the ops are merged on the writer's thread, not the caller's).
Output: (Cluster)ObjectSync create / status patch / delete calls to the API
server, made by the thread "beehive-cloudhub-objectsync" and a few helper threads
(one record per helper at a time, so each record's writes stay in order);
`read_all` lists the records for `CloudHubCore.restore` at start. Calls are raw
JSON requests (`modules.kube.raw`): the generated client's model handling costs
more CPU than the request itself, and that CPU is taken from delivery.

Writes are coalesced per record until the writer takes them: however many acks
arrive for an object meanwhile, one status write carries the newest version
(never an older one). Once a delete of the object is queued (`Deleting`) its
status is not written again: a UID is never reused, so the record only waits for
its delete. A delete cancels a pending status write, and cancels a pending
create outright (no call at all) when the record was never written. API writes
per delivered object: one create when it is first queued (the status is left
empty: "queued, not yet acked"; KubeEdge writes "0"), one status patch per batch
of acks while no delete is queued, and one delete once the edge acked its
deletion. Records as KubeEdge's (cloud/pkg/cloudhub/dispatcher/message_dispatcher.go
saveSuccessPoint, which creates them at the first ack instead).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
from typing import Any

from kubernetes import client

from modules import contract
from modules.cloudhub import classify, objects
from modules.kube import raw

log = logging.getLogger("modules.cloudhub.objectsync")

GROUP = "reliablesyncs.kubeedge.io"
VERSION = "v1alpha1"
PLURAL = "objectsyncs"
CLUSTER_PLURAL = "clusterobjectsyncs"
_MERGE_PATCH = "application/merge-patch+json"


@dataclasses.dataclass(slots=True)
class _Pending:
    ref: objects.ObjectRef
    create: bool = False  # the record must exist
    resource_version: int | None = None  # newest acked version to write
    delete: bool = False  # the record must go
    unwritten: bool = False  # created here by Ensure: no call for this record yet


Key = tuple[str, str]  # (node, uid)


class ObjectSyncWriter:
    """Coalescing (Cluster)ObjectSync writer with its own thread and API client."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        batch_delay: float = 0.05,
        retry_delay: float = 1.0,
        workers: int = 1,  # more writers only add contention for the GIL and the API
    ) -> None:
        self._api_client = api_client  # raw requests go through its transport
        self._api: Any = client.CustomObjectsApi(api_client)  # read_all only
        self._batch_delay = batch_delay  # wait this long for more ops before a round
        self._retry_delay = retry_delay  # after an API error, before trying again
        self._workers = workers  # records written at once
        self._inbox: list[objects.SyncOp] = []  # submitted, not merged into _pending yet
        self._pending: dict[Key, _Pending] = {}  # (node, uid) -> work
        self._deleting: set[Key] = set()  # records whose object's delete is queued
        self._cond = threading.Condition()  # guards _inbox, _pending, _deleting, _busy, counters
        self._busy = False  # a round is being written
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None  # the helpers
        self.writes = 0  # API calls made
        self.failures = 0  # API calls that failed and were retried

    # Any thread.

    def submit(self, ops: list[objects.SyncOp]) -> None:
        """Add work; merged (on the writer's thread) with what waits for the same record."""
        with self._cond:
            self._inbox.extend(ops)
            self._cond.notify_all()

    def start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._workers, thread_name_prefix="beehive-cloudhub-objectsync-w"
        )
        self._thread = threading.Thread(target=self._run, name="beehive-cloudhub-objectsync")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is waiting (within `timeout`), then stop."""
        self.flush(timeout)
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is waiting or being written; False on timeout."""
        with self._cond:
            idle = lambda: not (self._inbox or self._pending or self._busy)  # noqa: E731
            return self._cond.wait_for(idle, timeout)

    def pending(self) -> int:
        with self._cond:
            self._merge_inbox()
            return len(self._pending)

    def read_all(self) -> list[objects.Restored]:
        """Every ObjectSync and ClusterObjectSync, as `Restored` facts."""
        found: list[objects.Restored] = []
        for plural in (PLURAL, CLUSTER_PLURAL):
            listing = self._api.list_cluster_custom_object(GROUP, VERSION, plural)
            for item in listing.get("items", []):
                restored = _restored(item)
                if restored is not None:
                    found.append(restored)
        return found

    # The writer thread.

    def _merge_inbox(self) -> None:
        """Merge submitted ops in order (with `_cond` held)."""
        inbox, self._inbox = self._inbox, []
        for op in inbox:
            self._merge(op)

    def _merge(self, op: objects.SyncOp) -> None:
        key = (op.node_id, op.ref.uid)
        work = self._pending.get(key)
        if isinstance(op, objects.Deleting):
            self._deleting.add(key)
            if work is not None:
                work.resource_version = None
            return
        if work is None:
            fresh = isinstance(op, objects.Ensure)
            work = self._pending[key] = _Pending(op.ref, unwritten=fresh)
        if isinstance(op, objects.Forget):
            self._deleting.discard(key)
            if work.unwritten:  # never written: nothing to delete either
                del self._pending[key]
                return
            work.create, work.resource_version, work.delete = False, None, True
        elif isinstance(op, objects.Ensure):
            work.create, work.delete = True, False
        elif key not in self._deleting:
            work.delete = False
            work.resource_version = max(work.resource_version or -1, op.resource_version)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                ready = lambda: self._inbox or self._pending or self._stopping.is_set()  # noqa: E731
                self._cond.wait_for(ready)
            if self._stopping.wait(self._batch_delay) and not (self._pending or self._inbox):
                return
            with self._cond:
                self._merge_inbox()
                batch, self._pending = self._pending, {}
                self._busy = True
            failed = self._write_batch(batch)
            with self._cond:
                for key, work in failed.items():
                    self._requeue(key, work)
                self._busy = False
                self._cond.notify_all()
            if failed:
                self._stopping.wait(self._retry_delay)

    def _requeue(self, key: Key, work: _Pending) -> None:
        """Put failed work back unless newer work for the record arrived meanwhile."""
        if key not in self._pending:
            self._pending[key] = work

    def _write_batch(self, batch: dict[Key, _Pending]) -> dict[Key, _Pending]:
        assert self._pool is not None, "started"
        outcomes = self._pool.map(self._try_write, batch.items())
        return {key: work for key, work, ok in outcomes if not ok}

    def _try_write(self, item: tuple[Key, _Pending]) -> tuple[Key, _Pending, bool]:
        (node_id, _uid), work = item
        try:
            self._write(node_id, work)
        except (client.ApiException, OSError) as exc:
            with self._cond:
                self.failures += 1
            reason = getattr(exc, "reason", None) or exc
            log.warning("ObjectSync %s: %s; will retry", work.ref.record_name(node_id), reason)
            return item[0], work, False
        return item[0], work, True

    def _write(self, node_id: str, work: _Pending) -> None:
        name = work.ref.record_name(node_id)
        if work.delete:
            self._request("DELETE", _path(work.ref, name), ignore=404)
            return
        if work.create:
            self._request("POST", _path(work.ref), _record(node_id, work.ref), ignore=409)
        if work.resource_version is None or (node_id, work.ref.uid) in self._deleting:
            return
        body = {"status": {"objectResourceVersion": str(work.resource_version)}}
        status = _path(work.ref, name) + "/status"
        if self._request("PATCH", status, body, ignore=404):
            return
        self._request("POST", _path(work.ref), _record(node_id, work.ref), ignore=409)
        self._request("PATCH", status, body)

    def _request(self, method: str, path: str, body: Any = None, *, ignore: int = 0) -> bool:
        """One raw call; False if it failed with the `ignore` status (not an error here)."""
        with self._cond:
            self.writes += 1
        content_type = _MERGE_PATCH if method == "PATCH" else "application/json"
        try:
            raw.request(self._api_client, method, path, body=body, content_type=content_type)
        except client.ApiException as exc:
            if exc.status != ignore:
                raise
            return False
        return True


def _path(ref: objects.ObjectRef, name: str = "") -> str:
    """The collection (or, with `name`, the item) URL of a ref's record."""
    if ref.cluster_scoped:
        base = f"/apis/{GROUP}/{VERSION}/{CLUSTER_PLURAL}"
    else:
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def _record(node_id: str, ref: objects.ObjectRef) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": ref.record_name(node_id)}
    if not ref.cluster_scoped:
        metadata["namespace"] = ref.namespace
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterObjectSync" if ref.cluster_scoped else "ObjectSync",
        "metadata": metadata,
        "spec": {"objectAPIVersion": ref.api_version, "objectKind": ref.kind,
                 "objectName": ref.name},
    }  # fmt: skip


def _restored(item: dict[str, Any]) -> objects.Restored | None:
    """A record as `Restored`, or None if its name or spec is not KubeEdge's."""
    metadata, spec = item.get("metadata") or {}, item.get("spec") or {}
    node_id, dot, uid = str(metadata.get("name", "")).rpartition(".")
    kind, name = spec.get("objectKind"), spec.get("objectName")
    if not (dot and node_id and uid and isinstance(kind, str) and isinstance(name, str)):
        log.warning("ignored ObjectSync %r: not <node>.<uid> with a spec", metadata.get("name"))
        return None
    ref = objects.ObjectRef(
        uid=uid,
        namespace=metadata.get("namespace") or contract.NULL_NAMESPACE,
        type=objects.type_of_kind(kind),
        name=name,
        api_version=str(spec.get("objectAPIVersion") or "v1"),
        kind=kind,
    )
    status = item.get("status") or {}
    rv = classify.parse_rv(str(status.get("objectResourceVersion", "")))
    return objects.Restored(node_id, ref, rv)
