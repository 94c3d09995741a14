"""Claims of nodes through their owner Leases, off the loop (with several replicas).

Input: `Claim`s from the core (the loop hands them over with `put`; never blocks),
and the owner Lease watch. Output: answers applied to the core on the loop
(`ServerTransport.apply`): `claimed` with the epoch, and what the node acked read
fresh from the API when the claim was written (the node comes from elsewhere: what
this replica knew of it may be stale); `claim_failed`; `foreign_claim` for every
other replica's claim the watch reports.

Threads make the claims in small batches (a failover brings hundreds at once, each a
write against the owner watch's copy of the Lease, or a read and a write); a node has
at most one claim waiting and one in flight, so its claims never race each other
here: a newer one for the same node replaces the one waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client

from modules.cloudhub import core, objects, stats
from modules.cloudhub.owned import Claim
from modules.replicas import ownership
from modules.replicas.owners import ClaimError, OwnerLeases, OwnerWatch

log = logging.getLogger("modules.cloudhub.claims")

Apply = Callable[[Callable[[core.CloudHubCore], object]], None]
ReadNodes = Callable[[list[str]], dict[str, list[objects.Restored]]]
_NO_ANSWER = (OSError, urllib3.exceptions.HTTPError, client.ApiException)
# A failover brings hundreds of claims at once to an API server that is slow under the
# load (100-300 ms a request on the bench's real kube-apiserver): many small batches in
# parallel, not a few long serial ones (4 workers of 32 left the last claims of a batch
# seconds behind its first). A batch's records are read a list per shard anyway: with
# 32 shards, nodes of one batch rarely share one.
WORKERS = 16  # claim threads: the replica's API pool must hold as many connections
_BATCH = 4  # claims a worker takes at once


class Claimer:
    """The claims thread and the owner watch of one cloudhub."""

    def __init__(
        self, owners: OwnerLeases, *, apply: Apply, read_nodes: ReadNodes | None,
        workers: int = WORKERS,
    ) -> None:  # fmt: skip
        self._owners = owners  # claims through the API
        self._apply = apply  # runs a call on the core, on the loop
        self._read_nodes = read_nodes  # fresh records of nodes (None: records not kept)
        self._claims: dict[str, Claim] = {}  # node -> its newest claim waiting, oldest first
        self._inflight: set[str] = set()  # nodes a worker is claiming now
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._run, name=f"beehive-cloudhub-claims-{i}",
                                          daemon=True) for i in range(workers)]  # fmt: skip
        self._watch = OwnerWatch(owners.api, self._seen, on_gone=self._gone,
                                 name="beehive-cloudhub-owners")  # fmt: skip
        self._holders: dict[str, str] = {}  # node -> its owner, as the watch last told
        self.failed = 0  # claims that could not be written

    def start(self) -> None:
        self._watch.start()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._watch.stop(timeout=2.0)
        for thread in self._threads:  # a claim in flight ends at its request's timeout
            thread.join(max(0.1, 2.0 / len(self._threads)))

    def put(self, claims: list[Claim]) -> None:
        """On the loop thread: queue claims (never blocks); a node's newer claim replaces
        its waiting one (the core waits for the newest session's only)."""
        with self._cond:
            for claim in claims:
                self._claims.pop(claim.node_id, None)  # to the back of the line
                self._claims[claim.node_id] = claim
            self._cond.notify(len(claims))

    def waiting(self) -> int:
        return len(self._claims)

    def stats(self) -> dict[str, Any]:
        return {"claims_written": self._owners.claims, "claim_conflicts": self._owners.conflicts,
                "claim_reads": self._owners.reads,
                "claims_failed": self.failed, "claims_waiting": len(self._claims),
                "owner_watch_events": self._watch.events,
                "owner_watch_restarts": self._watch.restarts}  # fmt: skip

    def with_owners(
        self, rows: list[dict[str, Any]], live: Callable[[], list[str]], node: str = ""
    ) -> list[dict[str, Any]]:
        """`rows` (this replica's view of its nodes) with each node's owner from the owner
        Leases, plus a row for each node only another replica serves (for `debug nodes`):
        ``owner`` names the holder, with " (gone)" when its member Lease has expired."""
        try:
            owners = {o.node: o for o in self._owners.owners()}
            alive = set(live())
        except (*_NO_ANSWER,) as exc:
            log.warning("debug nodes: cannot read the owner Leases: %s", exc)
            return [{**row, "owner": "?", "epoch": None} for row in rows]
        here = {row["node"] for row in rows}
        rows = rows + [
            stats.NodeStats().view(name, 0.0, None, connected=False, objects=0)
            for name in sorted(owners)
            if name not in here and (not node or name == node)
        ]
        for row in rows:
            found = owners.get(row["node"])
            holder = found.holder if found is not None else ""
            row["owner"] = holder + ("" if not holder or holder in alive else " (gone)")
            row["epoch"] = found.epoch if found is not None else None
        return rows

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._ready() or self._stopping)
                if self._stopping:
                    return
                batch = self._ready()[:_BATCH]
                for claim in batch:
                    del self._claims[claim.node_id]
                    self._inflight.add(claim.node_id)
            try:
                self._claim(batch)
            finally:
                with self._cond:
                    self._inflight.difference_update(c.node_id for c in batch)
                    self._cond.notify_all()

    def _ready(self) -> list[Claim]:
        """The waiting claims of nodes no worker is claiming, oldest first (with `_cond`
        held; stops at a batch)."""
        ready: list[Claim] = []
        for node, claim in self._claims.items():
            if node not in self._inflight:
                ready.append(claim)
                if len(ready) == _BATCH:
                    break
        return ready

    def _claim(self, batch: list[Claim]) -> None:
        """Claim each node, then read what the ones taken over acked, a list per shard
        (after every claim of the batch is written: the reads are newer than them)."""
        taken: dict[str, int] = {}  # node -> epoch, for claims that were written
        for claim in batch:
            node, conn = claim.node_id, claim.conn
            try:
                seen = self._watch.lease(ownership.owner_lease_name(node))
                got = self._owners.claim(node, claim.known_epoch, seen)
            except (ClaimError, *_NO_ANSWER) as exc:
                self._failed(claim, str(exc))
                continue
            if got.wrote:
                taken[node] = got.epoch
            else:
                self._apply(_claimed(node, conn, got.epoch, None))
        if not taken:
            return
        try:
            read = self._read_nodes(list(taken)) if self._read_nodes is not None else {}
        except _NO_ANSWER as exc:
            for claim in batch:
                if claim.node_id in taken:
                    self._failed(claim, f"cannot read its records: {exc}")
            return
        for claim in batch:
            if claim.node_id in taken:
                node, conn, epoch = claim.node_id, claim.conn, taken[claim.node_id]
                self._apply(_claimed(node, conn, epoch, read.get(node, [])))

    def _failed(self, claim: Claim, why: str) -> None:
        with self._cond:
            self.failed += 1
        node, conn = claim.node_id, claim.conn
        self._apply(lambda hub: hub.claim_failed(node, conn, why))

    def owned(self) -> dict[str, int]:
        """Any thread: how many nodes each replica holds the owner Lease of (the watch's
        view; a released Lease counts for no one)."""
        counts: dict[str, int] = {}
        for holder in list(self._holders.values()):
            if holder:
                counts[holder] = counts.get(holder, 0) + 1
        return counts

    def _seen(self, owner: ownership.Owner) -> None:
        """The watch's thread: a claim by someone else goes to the core."""
        self._holders[owner.node] = owner.holder
        if owner.holder == self._owners.identity:
            return
        node, holder, epoch = owner.node, owner.holder, owner.epoch
        self._apply(lambda hub: hub.foreign_claim(node, holder, epoch))

    def _gone(self, node: str) -> None:
        """The watch's thread: the node's owner Lease was deleted (the node was)."""
        self._holders.pop(node, None)


def _claimed(
    node: str, conn: int, epoch: int, records: list[objects.Restored] | None
) -> Callable[[core.CloudHubCore], None]:
    """The core's `claimed` with these arguments, to run on the loop."""
    return lambda hub: hub.claimed(node, conn, epoch, records)
