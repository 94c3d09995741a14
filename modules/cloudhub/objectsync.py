"""What each node acked, kept in the API: read at start, written in rounds on its own thread.

Input: `SyncOp`s from `CloudHubCore` (via `submit`, any thread; returns at once: the
ops are merged into the ledger on the writer's thread, at the start of a round).
Output: creates, merge patches and deletes of our ObjectSyncShard records
(`modules.cloudhub.syncrecord`), made by the thread "beehive-cloudhub-objectsync";
`read_all` reads them at start, with KubeEdge's (Cluster)ObjectSyncs merged in,
for `CloudHubCore.restore`. Calls are raw JSON requests (`modules.kube.raw`): the
generated client's model handling costs more CPU than the request itself.

A round takes every op submitted since the last one and writes each record that
changed once (`modules.cloudhub.ledger`): at most one write per record per
`interval`, so the API writes per second are bounded by the records (a few dozen),
not by the acks, and an ack waits for its write at most `interval` plus the round.
A write carries the record's last seen resourceVersion: a conflict (409) re-reads
the record, merges the changes into it again and retries; so does a record someone
deleted (404). After a failure the record stays pending and the next round (after
`retry_delay`) tries again. KubeEdge's records read at start are deleted once what
they said is written in ours (at most `legacy_deletes` per round).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes import client

from modules.cloudhub import ledger, objects, syncrecord
from modules.kube import raw

log = logging.getLogger("modules.cloudhub.objectsync")

_MERGE_PATCH = "application/merge-patch+json"
_ATTEMPTS = 4  # writes of one record in one round (a conflict re-reads and tries again)
_PAGE = "500"  # items per list request at start
_WRITES = ("create", "patch", "delete")
# What a call raises when no answer came: refused, reset, timed out.
_NO_ANSWER = (OSError, urllib3.exceptions.HTTPError)
_TIMEOUT = 30.0  # seconds for one call: a hung connection must not stop every round


class ObjectSyncWriter:
    """Coalescing writer of the records, with its own thread (uses the given API client)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        interval: float = 1.0,
        shards: int = 32,
        part_bytes: int = 256 * 1024,
        retry_delay: float = 1.0,
        legacy_deletes: int = 100,
        max_queued: int = 50_000,
        writer: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api_client = api_client  # raw requests go through its transport
        self._interval = interval  # least seconds between the starts of two rounds
        self._retry_delay = retry_delay  # after a round with a failed write
        self._legacy_deletes = legacy_deletes  # KubeEdge records deleted per round, at most
        self._max_queued = max_queued  # ops waiting for a round before `submit` merges them
        self._clock = clock
        self._shards = shards  # a node's records are in shard crc32(node) % shards
        # Under _cond. `writer`: this replica's parts (`syncrecord.writer_token`), "" alone.
        self._writer = writer
        self._ledger = ledger.Ledger(shards=shards, part_bytes=part_bytes, writer=writer)
        self._legacy: list[syncrecord.Legacy] = []  # KubeEdge records not deleted yet
        self._inbox: list[tuple[float, list[objects.SyncOp]]] = []  # (when, ops) not merged
        self._queued = 0  # ops in _inbox
        self._cond = threading.Condition()  # guards the ledger, _inbox, _busy, counters
        self._busy = False  # a round is being written
        self._hurry = False  # flush asked: the next round starts now
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts: collections.Counter[str] = collections.Counter()  # see stats()
        self._peak_lag = 0.0  # longest an op waited for its write
        self._last_error = ""  # the last failed call, for stats

    # Any thread.

    def submit(self, ops: list[objects.SyncOp]) -> None:
        """Add work for the next round (merged here, past `max_queued` ops waiting)."""
        with self._cond:
            # Only the first submit since the last merge wakes the writer: later ones
            # would wake it in its wait between rounds for nothing (it merges them all).
            first = not self._inbox
            self._inbox.append((self._clock(), ops))
            self._queued += len(ops)
            if self._queued > self._max_queued:  # a write is slow: what waits stays bounded
                self._merge_inbox()
            if first:
                self._cond.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="beehive-cloudhub-objectsync")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is waiting (within `timeout`), then stop."""
        if self._thread is not None:
            self.flush(timeout)
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def flush(self, timeout: float) -> bool:
        """Write what waits now, without waiting for the interval; True once nothing
        waits or is being written, False on timeout. `flush(0)` only asks."""
        with self._cond:
            if timeout > 0:
                self._hurry = True
                self._cond.notify_all()
            return self._cond.wait_for(self._idle, timeout)

    def pending(self) -> int:
        """Records with changes not written yet."""
        with self._cond:
            return self._ledger.counts()[0] + (1 if self._inbox else 0)

    @property
    def writes(self) -> int:
        """API writes made (records and KubeEdge's deleted records)."""
        with self._cond:
            return sum(self._counts[k] for k in (*_WRITES, "legacy_deleted"))

    @property
    def failures(self) -> int:
        with self._cond:
            return self._counts["failures"]

    def stats(self) -> dict[str, Any]:
        """Writes by kind, conflicts, failures, what waits and how long (seconds)."""
        with self._cond:
            records, changes, oldest = self._ledger.counts()
            if self._inbox:
                oldest = min(oldest if oldest is not None else self._inbox[0][0],
                             self._inbox[0][0])  # fmt: skip
            lag = self._clock() - oldest if oldest is not None else 0.0
            return {
                "writes": {verb: self._counts[verb] for verb in _WRITES},
                "legacy_deleted": self._counts["legacy_deleted"],
                "legacy_left": len(self._legacy),
                "reads": self._counts["reads"],
                "conflicts": self._counts["conflicts"],
                "failures": self._counts["failures"],
                "collected": self._counts["collected"],  # entries of deleted nodes dropped
                "stale_dropped": self._counts["stale_dropped"],  # older copies removed
                "pending_records": records,
                "pending_changes": changes,
                "queued_ops": self._queued,
                "lag": round(lag, 3),
                "peak_lag": round(self._peak_lag, 3),
                "last_error": self._last_error,
            }

    def held(self, node_id: str) -> dict[str, syncrecord.Held]:
        """uid -> what the records say (once written) of one node's objects."""
        with self._cond:
            return self._ledger.held(node_id)

    def read_nodes(self, node_ids: list[str]) -> dict[str, list[objects.Restored]]:
        """What each node acked, read fresh from its shard's records (any thread; a
        replica that takes nodes over must not trust what it knew), merged with what
        this process has not written yet. One list per shard, however many nodes.

        Raises:
            kubernetes.client.ApiException: a list failed.
            OSError, urllib3.exceptions.HTTPError: no answer.
        """
        shards = {syncrecord.shard_of(node_id, self._shards) for node_id in node_ids}
        records = []
        for shard in sorted(shards):
            query = [("labelSelector", f"{syncrecord.SHARD_LABEL}={shard}")]
            found = raw.request(self._api_client, "GET", syncrecord.PATH, query=query,
                                timeout=_TIMEOUT)  # fmt: skip
            parsed = (syncrecord.parse(item) for item in found.get("items") or [])
            records += [r for r in parsed if r is not None and r.shard == shard]
        with self._cond:
            self._counts["reads"] += len(shards)
            self._merge_inbox()  # ours not written yet are newer than the server's
            self._ledger.refresh_records(records, self._clock())
            held = {node_id: self._ledger.held(node_id) for node_id in node_ids}
        return {node_id: [objects.Restored(node_id, h.ref, h.rv) for h in found.values()]
                for node_id, found in held.items()}  # fmt: skip

    def collect(self) -> int | None:
        """Drop the entries of nodes that no longer exist, after reading every record
        again (other replicas wrote since this one started); the leader's duty with
        several replicas. Returns the entries dropped (written in the next round), or
        None when the nodes or the records could not be listed.
        """
        nodes = self._node_names()
        if nodes is None:
            return None
        try:
            records = self._records()
        except (client.ApiException, *_NO_ANSWER) as exc:
            log.warning("cannot list the records (%s): records of deleted nodes are kept", exc)
            return None
        with self._cond:
            self._merge_inbox()
            self._ledger.refresh_records(records, self._clock())
            dropped = self._ledger.drop_except(nodes, self._clock())
            self._counts["collected"] += dropped
            self._counts["stale_dropped"] += self._ledger.drop_stale(self._clock())
            self._cond.notify_all()
        if dropped:
            log.info("dropped what %d object(s) on deleted nodes were recorded as", dropped)
        return dropped

    def node_names(self) -> set[str] | None:
        """The names of the cluster's Nodes (None, logged, when they cannot be listed)."""
        return self._node_names()

    # At start, before `start`.

    def read_all(self) -> list[objects.Restored]:
        """Read our records and KubeEdge's, drop those of nodes that are gone, and
        return what each node holds.

        Raises:
            kubernetes.client.ApiException: a list failed (not for a missing CRD).
        """
        records = self._records()
        legacy = []
        for plural in syncrecord.LEGACY_PLURALS:
            path = f"/apis/{syncrecord.LEGACY_GROUP}/{syncrecord.LEGACY_VERSION}/{plural}"
            legacy += [old for item in self._list(path)
                       if (old := syncrecord.parse_legacy(plural, item)) is not None]  # fmt: skip
        nodes = self._node_names()
        with self._cond:
            restored = self._ledger.restore(records, legacy, nodes, self._clock())
            if not self._writer:  # alone: no one else writes, older copies go now
                self._counts["stale_dropped"] += self._ledger.drop_stale(self._clock())
            self._legacy = legacy
            changes = self._ledger.counts()[1]
        log.info("read %d record(s) of what nodes acked and %d of KubeEdge's: %d object(s)"
                 " on %d node(s); %d change(s) to write (merged, or of deleted nodes)",
                 len(records), len(legacy), len(restored),
                 len({r.node_id for r in restored}), changes)  # fmt: skip
        return restored

    def _list(self, path: str) -> Iterator[Any]:
        return _list(self._api_client, path)

    def _records(self) -> list[syncrecord.Record]:
        """Every one of our records, parsed (those not named as ours are skipped)."""
        return [r for item in self._list(syncrecord.PATH)
                if (r := syncrecord.parse(item)) is not None]  # fmt: skip

    def _node_names(self) -> set[str] | None:
        return node_names(self._api_client)

    # The writer thread.

    def _wanted(self) -> bool:
        """Something to write or delete, or stop."""
        return not self._idle() or bool(self._legacy) or self._stopping.is_set()

    def _idle(self) -> bool:
        return not (self._inbox or self._busy or self._ledger.counts()[0])

    def _run(self) -> None:
        next_round = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(self._wanted)
                if self._stopping.is_set():
                    return
                delay = max(next_round - self._clock(), 0.0)
                if delay and not self._hurry:
                    self._cond.wait_for(lambda: self._hurry or self._stopping.is_set(), delay)
                next_round = self._clock() + self._interval
                parts = self._merge()
            ok = all([self._write(part) for part in parts]) and self._delete_legacy()
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            if not ok:
                self._stopping.wait(self._retry_delay)

    def _merge(self) -> list[ledger.Part]:
        """Start a round (with `_cond` held): merge the inbox, take the dirty records."""
        self._merge_inbox()
        self._hurry = False
        self._busy = True
        return self._ledger.dirty()

    def _merge_inbox(self) -> None:
        """Into the ledger, in order (with `_cond` held)."""
        inbox, self._inbox, self._queued = self._inbox, [], 0
        for at, ops in inbox:
            for op in ops:
                self._ledger.apply(op, at)

    @staticmethod
    def _key(item: syncrecord.Legacy) -> ledger.Key:
        return (item.restored.node_id, item.restored.ref.uid)

    def _write(self, part: ledger.Part) -> bool:
        """Bring one record up to date; False if it failed (it stays pending)."""
        for _ in range(_ATTEMPTS):
            with self._cond:
                plan = self._ledger.plan(part)
                since = part.dirty_since
            try:
                answer = self._send(plan) if plan.verb else None
            except client.ApiException as exc:
                if exc.status == 404 and plan.verb == "delete":
                    answer = None
                elif exc.status in (404, 409):
                    if not self._reread(part, conflict=exc.status == 409):
                        return False
                    continue
                else:
                    return self._failed(part.name, exc)
            except _NO_ANSWER as exc:
                return self._failed(part.name, exc)
            version = (answer or {}).get("metadata", {}).get("resourceVersion", "")
            with self._cond:
                self._ledger.settle(plan, str(version))
                if since is not None:
                    self._peak_lag = max(self._peak_lag, self._clock() - since)
            return True
        log.warning("%s %s: still conflicting after %d writes; next round", syncrecord.KIND,
                    part.name, _ATTEMPTS)  # fmt: skip
        return False

    def _send(self, plan: ledger.Plan) -> Any:
        path = f"{syncrecord.PATH}/{plan.part.name}"
        with self._cond:
            self._counts[plan.verb] += 1
        api = self._api_client
        if plan.verb == "create":
            return raw.request(api, "POST", syncrecord.PATH, body=plan.body, timeout=_TIMEOUT)
        if plan.verb == "patch":
            return raw.request(api, "PATCH", path, body=plan.body, content_type=_MERGE_PATCH,
                               timeout=_TIMEOUT)  # fmt: skip
        return raw.request(api, "DELETE", path, body=plan.body, timeout=_TIMEOUT)

    def _reread(self, part: ledger.Part, *, conflict: bool) -> bool:
        """Read the record again after a 409 or 404; False if that failed."""
        path = f"{syncrecord.PATH}/{part.name}"
        with self._cond:
            self._counts["reads"] += 1
            self._counts["conflicts"] += conflict
        try:
            found = raw.request(self._api_client, "GET", path, timeout=_TIMEOUT)
        except client.ApiException as exc:
            if exc.status != 404:
                return self._failed(part.name, exc)
            found = None
        except _NO_ANSWER as exc:
            return self._failed(part.name, exc)
        record = syncrecord.parse(found) if found is not None else None
        with self._cond:
            self._ledger.refresh(part, record, self._clock())
        return True

    def _delete_legacy(self) -> bool:
        """Delete KubeEdge records whose content is written in ours (a budget per round)."""
        due: list[syncrecord.Legacy] = []
        with self._cond:
            for item in self._legacy:
                if len(due) == self._legacy_deletes:
                    break
                if self._ledger.written(self._key(item)):
                    due.append(item)
        done: set[str] = set()
        try:
            for item in due:
                try:
                    raw.request(self._api_client, "DELETE", item.path, timeout=_TIMEOUT)
                except client.ApiException as exc:
                    if exc.status != 404:
                        return self._failed(item.path, exc)
                except _NO_ANSWER as exc:
                    return self._failed(item.path, exc)
                done.add(item.path)
        finally:
            with self._cond:
                self._counts["legacy_deleted"] += len(done)
                self._legacy = [item for item in self._legacy if item.path not in done]
        return True

    def _failed(self, what: str, exc: Exception) -> bool:
        reason = getattr(exc, "reason", None) or exc
        with self._cond:
            self._counts["failures"] += 1
            self._last_error = f"{what}: {reason}"
        log.warning("ObjectSync write of %s failed: %s; will retry", what, reason)
        return False


def _list(api_client: client.ApiClient, path: str) -> Iterator[Any]:
    """Every item of a list, page by page (none when the resource is not installed)."""
    token = ""
    while True:
        query = [("limit", _PAGE)] + ([("continue", token)] if token else [])
        try:
            page = raw.request(api_client, "GET", path, query=query, timeout=_TIMEOUT)
        except client.ApiException as exc:
            if exc.status == 404:  # the CRD is not installed: no records
                return
            raise
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


def node_names(api_client: client.ApiClient) -> set[str] | None:
    """The names of the cluster's Nodes (None, logged, when they cannot be listed)."""
    try:
        return {
            str((n.get("metadata") or {}).get("name")) for n in _list(api_client, "/api/v1/nodes")
        }
    except (client.ApiException, *_NO_ANSWER) as exc:
        log.warning("cannot list nodes (%s): records of deleted nodes are kept", exc)
        return None


def read_acked(api_client: client.ApiClient, node_id: str) -> dict[str, syncrecord.Held]:
    """What the records in the API say of one node (uid -> entry; the newest over the
    records that hold a copy), for tests and tools.

    Raises:
        kubernetes.client.ApiException: the list failed.
    """
    found: dict[str, syncrecord.Held] = {}
    for _, uid, held in _entries_of(api_client, node_id):
        found[uid] = syncrecord.newest(found.get(uid), held)
    return found


def copies(api_client: client.ApiClient, node_id: str) -> dict[str, list[str]]:
    """uid -> the records holding an entry of one node's object (for tests and tools).

    Raises:
        kubernetes.client.ApiException: the list failed.
    """
    found: dict[str, list[str]] = {}
    for record, uid, _ in _entries_of(api_client, node_id):
        found.setdefault(uid, []).append(record)
    return found


def _entries_of(
    api_client: client.ApiClient, node_id: str
) -> Iterator[tuple[str, str, syncrecord.Held]]:
    """(record name, uid, entry) of each entry of one node in our records (one list)."""
    page = raw.request(api_client, "GET", syncrecord.PATH)
    for item in page.get("items") or []:
        record = syncrecord.parse(item)
        if record is not None:
            for uid, held in record.nodes.get(node_id, {}).items():
                yield record.name, uid, held
