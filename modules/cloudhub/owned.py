"""The nodes this replica owns, and the claims it waits for (with several replicas).

Whoever holds a node's websocket owns the node (`modules.replicas.ownership`). A
session that opens asks for a claim (`Claim`, an output of the core); until the
claim is written nothing is delivered to it. The answer comes back as `claimed`
(the epoch) or `failed`. Another replica's newer claim, seen by the owner Lease
watch, is `foreign`: the node is no longer ours.

Epochs decide every race: a foreign claim at or below the epoch we hold is an old
one (ours came after it), and one seen while our claim is in flight is kept, so
that if it turns out newer than ours the node is given up as soon as ours lands.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """Output: claim `node_id` for the session on `conn`. `known_epoch`: the epoch we
    believe we hold it at (None: we hold nothing), so a reconnect to this replica
    costs no write."""

    node_id: str
    conn: int
    known_epoch: int | None


Verdict = Literal["ours", "lost", "stale"]


class OwnedNodes:
    """Per node: the epoch we hold it at, or the claim in flight. One thread."""

    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}  # node -> epoch we hold it at
        self.claiming: dict[str, int] = {}  # node -> conn whose claim is in flight
        self._foreign: dict[str, int] = {}  # node -> newest foreign epoch seen while claiming
        # Nodes taken over whose session ended before it was served: the next one served
        # still needs the takeover's fresh resync (its claim will write nothing).
        self.fresh_owed: set[str] = set()
        self.taken = 0  # nodes given up to another replica's newer claim
        self.dropped = 0  # downstream messages for nodes not ours (not queued)

    def owns(self, node_id: str) -> bool:
        """Ours, or being claimed for a session of ours (what comes for it is queued)."""
        return node_id in self.epochs or node_id in self.claiming

    def ask(self, node_id: str, conn: int) -> Claim:
        """A session opened: the claim to make."""
        self.claiming[node_id] = conn
        return Claim(node_id, conn, self.epochs.get(node_id))

    def claimed(self, node_id: str, conn: int, epoch: int) -> Verdict:
        """Our claim at `epoch` was written (or found standing). "ours", or "lost" when
        a newer foreign claim was seen meanwhile, or "stale" when the session that
        asked is no longer the one waiting (a newer one asked again)."""
        if self.claiming.get(node_id) == conn:
            del self.claiming[node_id]
        elif node_id in self.claiming:
            self.epochs[node_id] = max(epoch, self.epochs.get(node_id, 0))
            return "stale"
        foreign = self._foreign.pop(node_id, 0)
        if foreign > epoch:
            self.epochs.pop(node_id, None)
            return "lost"
        self.epochs[node_id] = epoch
        return "ours"

    def failed(self, node_id: str, conn: int) -> bool:
        """Our claim could not be written; True if that session was the one waiting."""
        if self.claiming.get(node_id) != conn:
            return False
        del self.claiming[node_id]
        self._foreign.pop(node_id, None)
        return True

    def foreign(self, node_id: str, holder: str, epoch: int) -> bool:
        """Another replica's claim (or a release, holder "") at `epoch` was seen. True
        when it takes the node from us now: the caller drops the node's session, queue
        and records."""
        if node_id in self.claiming:
            self._foreign[node_id] = max(epoch, self._foreign.get(node_id, 0))
            return False
        held = self.epochs.get(node_id)
        if held is None or epoch <= held:
            return False
        del self.epochs[node_id]
        self.fresh_owed.discard(node_id)
        self.taken += 1
        return True

    def forget(self, node_id: str) -> None:
        """The node was deleted."""
        self.epochs.pop(node_id, None)
        self._foreign.pop(node_id, None)
        self.fresh_owed.discard(node_id)
