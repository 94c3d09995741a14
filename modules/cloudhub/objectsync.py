"""ObjectSync records: read at start, written off the delivery path on their own thread.

Input: `SyncOp`s from `CloudHubCore` (via `submit`, any thread; returns at once).
Output: (Cluster)ObjectSync create / status patch / delete calls to the API
server on the thread "beehive-cloudhub-objectsync"; `read_all` lists the records
for `CloudHubCore.restore` at start.

Writes are coalesced per record until the writer takes them: however many acks
arrive for an object meanwhile, one status write carries the newest version
(never an older one), and a delete cancels a pending create or status write.
API writes per delivered object: one create when it is first queued (the status
is left empty: "queued, not yet acked"; KubeEdge writes "0") and one status
patch per batch of acks; one delete once the edge acked its deletion. Records
as KubeEdge's (cloud/pkg/cloudhub/dispatcher/message_dispatcher.go saveSuccessPoint).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from kubernetes import client

from modules import contract
from modules.cloudhub import classify, objects

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


class ObjectSyncWriter:
    """Coalescing (Cluster)ObjectSync writer with its own thread and API client."""

    def __init__(
        self, api_client: client.ApiClient, *, batch_delay: float = 0.05, retry_delay: float = 1.0
    ) -> None:
        self._api: Any = client.CustomObjectsApi(api_client)  # typed Any: generated client
        self._batch_delay = batch_delay  # wait this long for more ops before a round
        self._retry_delay = retry_delay  # after an API error, before trying again
        self._pending: dict[tuple[str, str], _Pending] = {}  # (node, uid) -> work
        self._cond = threading.Condition()  # guards _pending and _busy
        self._busy = False  # a round is being written
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0  # API calls made
        self.failures = 0  # API calls that failed and were retried

    # Any thread.

    def submit(self, ops: list[objects.SyncOp]) -> None:
        """Add work; merged with what is already waiting for the same record."""
        with self._cond:
            for op in ops:
                self._merge(op)
            self._cond.notify_all()

    def start(self) -> None:
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

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is waiting or being written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def pending(self) -> int:
        with self._cond:
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

    def _merge(self, op: objects.SyncOp) -> None:
        key = (op.node_id, op.ref.uid)
        work = self._pending.get(key)
        if work is None:
            work = self._pending[key] = _Pending(op.ref)
        if isinstance(op, objects.Forget):
            work.create, work.resource_version, work.delete = False, None, True
        elif isinstance(op, objects.Ensure):
            work.create, work.delete = True, False
        else:
            work.delete = False
            work.resource_version = max(work.resource_version or -1, op.resource_version)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping.is_set())
            if self._stopping.wait(self._batch_delay) and not self._pending:
                return
            with self._cond:
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

    def _requeue(self, key: tuple[str, str], work: _Pending) -> None:
        """Put failed work back unless newer work for the record arrived meanwhile."""
        if key not in self._pending:
            self._pending[key] = work

    def _write_batch(
        self, batch: dict[tuple[str, str], _Pending]
    ) -> dict[tuple[str, str], _Pending]:
        failed: dict[tuple[str, str], _Pending] = {}
        for (node_id, _uid), work in batch.items():
            try:
                self._write(node_id, work)
            except (client.ApiException, OSError) as exc:
                self.failures += 1
                reason = getattr(exc, "reason", None) or exc
                log.warning("ObjectSync %s: %s; will retry", work.ref.record_name(node_id), reason)
                failed[(node_id, work.ref.uid)] = work
        return failed

    def _write(self, node_id: str, work: _Pending) -> None:
        name = work.ref.record_name(node_id)
        if work.delete:
            self._call_ignoring(404, "delete_%s_custom_object", work.ref, name)
            return
        if work.create:
            self._call_ignoring(
                409, "create_%s_custom_object", work.ref, _record(node_id, work.ref)
            )
        if work.resource_version is not None:
            body = {"status": {"objectResourceVersion": str(work.resource_version)}}
            try:
                self._patch_status(work.ref, name, body)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                self._call_ignoring(
                    409, "create_%s_custom_object", work.ref, _record(node_id, work.ref)
                )
                self._patch_status(work.ref, name, body)

    def _patch_status(self, ref: objects.ObjectRef, name: str, body: Any) -> None:
        self.writes += 1
        if ref.cluster_scoped:
            self._api.patch_cluster_custom_object_status(
                GROUP, VERSION, CLUSTER_PLURAL, name, body, _content_type=_MERGE_PATCH
            )
        else:
            self._api.patch_namespaced_custom_object_status(
                GROUP, VERSION, ref.namespace, PLURAL, name, body, _content_type=_MERGE_PATCH
            )

    def _call_ignoring(self, status: int, method: str, ref: objects.ObjectRef, arg: Any) -> None:
        """create_/delete_ (namespaced or cluster) custom object; `status` is not an error."""
        self.writes += 1
        try:
            if ref.cluster_scoped:
                getattr(self._api, method % "cluster")(GROUP, VERSION, CLUSTER_PLURAL, arg)
            else:
                getattr(self._api, method % "namespaced")(
                    GROUP, VERSION, ref.namespace, PLURAL, arg
                )
        except client.ApiException as exc:
            if exc.status != status:
                raise


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
