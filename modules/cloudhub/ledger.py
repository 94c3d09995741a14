"""The ObjectSync writer's book: what each record holds, and what waits to be written.

Input: the records read at start (`restore`, KubeEdge's merged in), `SyncOp`s from
the core (`apply`), and records read again after a conflict (`refresh`).
Output: for each record with changes, a `Plan` (create, merge patch, delete, or
nothing left to send), which the writer (`modules.cloudhub.objectsync`) sends and
then `settle`s. No I/O and no threads: the writer calls it under its lock.

Changes are coalesced per record: however many acks arrive for its objects, a
record is written once per round, and pending work is bounded by the objects the
nodes hold (one change per node and object), never by the acks. Acked versions only
go up, also over what someone else wrote (a conflict re-reads the record and the
changes are merged into it again), except after the edge acked a delete: a later
send of the same object starts from "not acked" again (`Change.replace`).

With several replicas each writes into its own parts (`writer`), so that replicas
taking nodes over do not conflict on one record. An entry found in another writer's
part (the node was served elsewhere) is moved on its next change: the new version
goes into an own part, and the old copy stays where it was (`_stale`; readers take the
newest) until the edge acked the object's delete, or the leader's cleanup
(`drop_stale`) removes the older copies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from modules.cloudhub import objects, syncrecord
from modules.cloudhub.syncrecord import Held, Nodes

Key = tuple[str, str]  # (node, uid)

_RV_WIDTH = 10**18  # entries are measured with a 19-digit version: acks never grow them


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What a record should say of one object: `held`, or nothing (None)."""

    held: Held | None
    replace: bool  # True: overrides the stored entry (the edge acked a delete since)


@dataclasses.dataclass(eq=False, slots=True)
class Part:
    """One record (a shard's part) as this process knows it."""

    name: str
    writer: str = ""  # whose part: this process's own, or another replica's
    exists: bool = False  # on the server, as far as we know
    resource_version: str = ""  # metadata.resourceVersion last seen: the write's precondition
    stored: Nodes = dataclasses.field(default_factory=dict)  # what the server holds
    stored_size: int = 0  # bytes of the stored entries (kept as writes settle)
    size: int = 0  # bytes of its entries, stored and to be written (for placement)
    pending: dict[Key, Change] = dataclasses.field(default_factory=dict)  # not written yet
    dirty_since: float | None = None  # when the oldest pending change arrived
    broken: bool = False  # not our shape: read, never written

    def entry(self, key: Key) -> Held | None:
        return self.stored.get(key[0], {}).get(key[1])


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One write of a record; `verb` "" when its changes change nothing stored."""

    part: Part
    verb: str  # "create", "patch", "delete" or ""
    body: dict[str, Any] | None
    after: Nodes  # what the record holds once written
    after_size: int  # bytes of its entries once written
    covered: dict[Key, Change]  # the pending changes it writes


class _Places:
    """Which record each known entry is written in, by node (a node's are one lookup)."""

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Part]] = {}

    def get(self, key: Key) -> Part | None:
        uids = self._nodes.get(key[0])
        return uids.get(key[1]) if uids is not None else None

    def __setitem__(self, key: Key, part: Part) -> None:
        self._nodes.setdefault(key[0], {})[key[1]] = part

    def __getitem__(self, key: Key) -> Part:
        return self._nodes[key[0]][key[1]]

    def __delitem__(self, key: Key) -> None:
        uids = self._nodes[key[0]]
        del uids[key[1]]
        if not uids:
            del self._nodes[key[0]]

    def setdefault(self, key: Key, part: Part) -> Part:
        return self._nodes.setdefault(key[0], {}).setdefault(key[1], part)

    def __iter__(self) -> Iterator[Key]:
        for node_id, uids in self._nodes.items():
            for uid in uids:
                yield node_id, uid

    def nodes(self) -> list[str]:
        return list(self._nodes)

    def of(self, node_id: str) -> list[Key]:
        return [(node_id, uid) for uid in self._nodes.get(node_id, ())]


class Ledger:
    """Records, their pending changes, and where each node's objects are written."""

    def __init__(self, *, shards: int, part_bytes: int, writer: str = "") -> None:
        self._shards = shards  # a node's new entries go to shard crc32(node) % shards
        self._part_bytes = part_bytes  # most entry bytes placed in one record
        self._writer = writer  # the parts new entries go to (`syncrecord.writer_token`)
        self._parts: dict[str, Part] = {}  # name -> record
        self._where = _Places()  # the record each known entry is written in
        self._stale: dict[Key, list[Part]] = {}  # other records with an older copy
        self._deleting: set[Key] = set()  # a delete is queued: its acks need no write
        self._dirty: dict[str, Part] = {}  # records with pending changes, oldest first

    # Start.

    def restore(
        self,
        records: list[syncrecord.Record],
        legacy: list[syncrecord.Legacy],
        nodes: set[str] | None,
        now: float,
    ) -> list[objects.Restored]:
        """Seed from what was read at start; returns what the nodes hold, for the core.

        KubeEdge's records are merged in (the newer version wins) and written into
        ours; entries of nodes not in `nodes` (when known) are dropped.
        """
        for record in records:
            part = self._part(record.shard, record.index, record.writer)
            part.exists, part.resource_version = True, record.resource_version
            part.stored, part.broken = record.nodes, record.broken
            part.size = part.stored_size = record_size(record.nodes)
            for node_id, uids in record.nodes.items():
                for uid in uids:
                    self._restore_entry((node_id, uid), part)
        for item in legacy:
            restored = item.restored
            if nodes is None or restored.node_id in nodes:
                self._set((restored.node_id, restored.ref.uid), Held(restored.ref,
                          restored.resource_version), now)  # fmt: skip
        if nodes is not None:
            for key in [key for node_id in self._where.nodes() if node_id not in nodes
                        for key in self._where.of(node_id)]:  # fmt: skip
                self._drop(key, now)
        found = []
        for key in self._where:
            known = self.effective(key)
            if known is not None:
                found.append(objects.Restored(key[0], known.ref, known.rv))
        return found

    def _restore_entry(self, key: Key, part: Part) -> None:
        # In two records (a node served by two replicas in turn): both are read, the
        # newest counts, and `drop_stale` removes the older.
        first = self._where.setdefault(key, part)
        if first is not part:
            self._stale.setdefault(key, []).append(part)

    # Changes from the core.

    def apply(self, op: objects.SyncOp, now: float) -> None:
        key = (op.node_id, op.ref.uid)
        if isinstance(op, objects.Acked):
            if key not in self._deleting:
                self._set(key, Held(op.ref, op.resource_version), now)
        elif isinstance(op, objects.Ensure):
            if self.effective(key) is None:
                self._set(key, Held(op.ref, None), now)
        elif isinstance(op, objects.Deleting):
            self._deleting.add(key)
            part = self._where.get(key)
            change = part.pending.get(key) if part is not None else None
            if part is not None and change is not None and change.held is not None:
                self._moot(part, key, change)
        else:
            self._deleting.discard(key)
            self._drop(key, now)

    @staticmethod
    def _moot(part: Part, key: Key, change: Change) -> None:
        """A delete is queued: a newer version of an entry that stays need not be written."""
        if not change.replace and part.entry(key) is not None:
            del part.pending[key]

    def effective(self, key: Key) -> Held | None:
        """The entry as it will be once the pending change is written."""
        part = self._where.get(key)
        if part is None:
            return None
        change, stored = part.pending.get(key), part.entry(key)
        if change is None:
            best = stored
        elif change.held is None or change.replace:
            return change.held
        else:
            best = syncrecord.newest(stored, change.held)
        copy = self._newest_copy(key)
        return best if copy is None else syncrecord.newest(best, copy)

    def _newest_copy(self, key: Key) -> Held | None:
        """The newest of the copies of an entry left in other records (`_stale`)."""
        found = None
        for other in self._stale.get(key, ()):
            copy = other.entry(key)
            if copy is not None:
                found = syncrecord.newest(found, copy)
        return found

    def _set(self, key: Key, held: Held, now: float) -> None:
        copy = self._newest_copy(key)
        if copy is not None:  # never written below an older copy
            held = syncrecord.newest(copy, held)
        part = self._where.get(key)
        if part is not None and part.writer != self._writer and key not in part.pending:
            copy = part.entry(key)
            if copy is not None and syncrecord.newest(copy, held) is copy:
                return  # says nothing new: stays where it is
            part = self._move(key, part)
        part = part or self._place(key, held)
        change, stored = part.pending.get(key), part.entry(key)
        if change is None:
            if stored is not None and syncrecord.newest(stored, held) is stored:
                return  # says nothing new
            self._mark(part, key, Change(held, replace=False), now)
        elif change.held is None:  # its removal waits: the object was sent again since
            self._mark(part, key, Change(held, replace=True), now)
        else:
            self._mark(part, key, Change(syncrecord.newest(change.held, held), change.replace),
                       now)  # fmt: skip

    def _move(self, key: Key, part: Part) -> Part | None:
        """An entry in another writer's record changes to a newer version (`_set` has
        checked): it goes into an own record that has an older copy, returned, or (None)
        into the first with room; the copy in `part` stays behind as a stale one."""
        stale = self._stale.setdefault(key, [])
        stale.append(part)
        own = next((other for other in stale if other.writer == self._writer), None)
        if own is None:
            del self._where[key]
            return None
        stale.remove(own)
        self._where[key] = own
        return own

    def _drop(self, key: Key, now: float) -> None:
        for other in self._stale.pop(key, ()):  # older copies elsewhere go too
            if other.entry(key) is not None and not other.broken:
                self._mark(other, key, Change(None, replace=True), now)
        part = self._where.get(key)
        if part is None:
            return
        if part.entry(key) is None:  # never written: nothing to remove either
            part.pending.pop(key, None)
            del self._where[key]
        else:
            self._mark(part, key, Change(None, replace=True), now)

    def _mark(self, part: Part, key: Key, change: Change, now: float) -> None:
        part.pending[key] = change
        if part.dirty_since is None:
            part.dirty_since = now
            self._dirty[part.name] = part

    def _place(self, key: Key, held: Held) -> Part:
        """The record a new entry goes to: its node's shard, the writer's first part with
        room."""
        width = _width(key[1], held)
        shard, index = syncrecord.shard_of(key[0], self._shards), 0
        while True:
            part = self._part(shard, index, self._writer)
            if not part.broken and (part.size == 0 or part.size + width <= self._part_bytes):
                break
            index += 1
        part.size += width
        self._where[key] = part
        return part

    def _part(self, shard: int, index: int, writer: str) -> Part:
        name = syncrecord.part_name(shard, index, writer)
        part = self._parts.get(name)
        if part is None:
            part = self._parts[name] = Part(name, writer)
        return part

    # Writing.

    def dirty(self) -> list[Part]:
        """Records with pending changes, the longest waiting first."""
        return list(self._dirty.values())

    def plan(self, part: Part) -> Plan:
        """The write that brings the record up to date (against what it last held)."""
        after = dict(part.stored)
        size = part.stored_size  # kept entry by entry: a record may hold thousands
        patch: dict[str, Any] = {}
        for (node_id, uid), change in part.pending.items():
            have = part.entry((node_id, uid))
            if change.held is None:
                new = None
            elif change.replace:
                new = change.held
            else:
                new = syncrecord.newest(have, change.held)
            if new == have:
                continue
            if node_id not in patch:
                after[node_id] = dict(after.get(node_id, {}))
                patch[node_id] = {}
            size += (0 if new is None else _width(uid, new)) - (
                0 if have is None else _width(uid, have)
            )
            if new is None:
                del after[node_id][uid]
                patch[node_id][uid] = None
            else:
                after[node_id][uid] = new
                patch[node_id][uid] = syncrecord.encode(new)
        for node_id in patch:
            if not after[node_id]:
                del after[node_id]
                patch[node_id] = None  # the node's last entry went: the node goes
        covered = dict(part.pending)
        if not part.exists:  # new, or deleted by someone else: all that is known
            verb, body = ("create", syncrecord.body(part.name, after)) if after else ("", None)
            return Plan(part, verb, body, after, size, covered)
        if not patch:
            return Plan(part, "", None, after, size, covered)
        if not after:
            precondition = {"resourceVersion": part.resource_version}
            return Plan(part, "delete", {"preconditions": precondition}, after, size, covered)
        # The labels again: records made before they were added get them on their next write.
        labels = syncrecord.shard_labels(part.name)
        meta = {"resourceVersion": part.resource_version, "labels": labels}
        body = {"metadata": meta, "spec": {"nodes": patch}}
        return Plan(part, "patch", body, after, size, covered)

    def settle(self, plan: Plan, resource_version: str) -> None:
        """The API took `plan` (or it had nothing to send); changes that arrived while
        it was being sent stay pending."""
        part = plan.part
        for key, change in plan.covered.items():
            if part.pending.get(key) is not change:
                continue
            del part.pending[key]
            if change.held is None and self._where.get(key) is part:
                del self._where[key]
        part.stored, part.stored_size = plan.after, plan.after_size
        if plan.verb:
            part.exists = plan.verb != "delete"
            part.resource_version = resource_version
        self._clean(part)

    def refresh(self, part: Part, record: syncrecord.Record | None, now: float) -> None:
        """The record as read again after a conflict; None: someone deleted it, and it
        is written again with what it held (what this process knows the nodes hold)."""
        part.exists = record is not None
        part.resource_version = record.resource_version if record else ""
        if record is not None:
            part.stored, part.stored_size = record.nodes, record_size(record.nodes)
        if record is not None and record.broken:  # someone else's now: ours go elsewhere
            part.broken = True
            moved = [(key, c.held) for key, c in part.pending.items() if c.held is not None]
            for key in part.pending:
                if self._where.get(key) is part:
                    del self._where[key]
            part.pending.clear()
            for key, held in moved:
                if held is not None:
                    self._set(key, held, now)
        self._clean(part)

    def refresh_records(self, records: list[syncrecord.Record], now: float) -> None:
        """Records just read again (a replica took a node over): what they hold is what
        the server holds; an entry this process did not know is found where it is, and
        a copy in another record is remembered as one (the newest counts)."""
        for record in records:
            part = self._part(record.shard, record.index, record.writer)
            self.refresh(part, record, now)
            if part.broken:
                continue
            for node_id, uids in record.nodes.items():
                for uid, copy in uids.items():
                    key = (node_id, uid)
                    where = self._where.setdefault(key, part)
                    stale = self._stale.setdefault(key, []) if where is not part else None
                    if stale is None or part in stale:
                        continue
                    stale.append(part)
                    change = where.pending.get(key)  # its write: not below this copy
                    if change is not None and change.held is not None and not change.replace:
                        where.pending[key] = Change(syncrecord.newest(change.held, copy),
                                                    replace=False)  # fmt: skip

    def drop_stale(self, now: float) -> int:
        """Remove the older copies of entries found in several records, keeping the
        newest (the leader's cleanup, after reading every record); returns how many
        removals are to be written. An entry with a change waiting is left for later."""
        removed = 0
        for key, stale in list(self._stale.items()):
            where = self._where[key]
            change = where.pending.get(key)
            if where.broken or (change is not None and (change.held is None or change.replace)):
                continue  # its removal or replacement is being written: left as it is
            copies = [(place, entry) for place in (where, *stale)
                      if not place.broken and key not in place.pending
                      and (entry := place.entry(key)) is not None]  # fmt: skip
            if change is not None and change.held is not None:  # its write keeps the newest
                keep, held = where, change.held
                for _, entry in copies:
                    held = syncrecord.newest(held, entry)
                where.pending[key] = Change(held, replace=False)
            elif copies:
                keep, held = copies[0]
                for place, entry in copies[1:]:
                    if syncrecord.newest(held, entry) is entry:
                        keep, held = place, entry
            else:
                continue
            self._where[key] = keep
            del self._stale[key]
            for place, _ in copies:
                if place is not keep:
                    self._mark(place, key, Change(None, replace=True), now)
                    removed += 1
        return removed

    def drop_except(self, nodes: set[str], now: float) -> int:
        """Drop every entry of a node not in `nodes` (deleted); returns how many."""
        gone = [key for node_id in self._where.nodes() if node_id not in nodes
                for key in self._where.of(node_id)]  # fmt: skip
        for key in gone:
            self._drop(key, now)
        return len(gone)

    def _clean(self, part: Part) -> None:
        part.size = part.stored_size + sum(
            _width(key[1], c.held) for key, c in part.pending.items() if c.held is not None
        )
        if not part.pending:
            part.dirty_since = None
            self._dirty.pop(part.name, None)

    # Views.

    def written(self, key: Key) -> bool:
        """Whether what is known of the object is written (nothing pending for it)."""
        part = self._where.get(key)
        return part is None or key not in part.pending

    def held(self, node_id: str) -> dict[str, Held]:
        """uid -> entry of one node, as it will be once written."""
        found = {}
        for key in self._where.of(node_id):
            held = self.effective(key)
            if held is not None:
                found[key[1]] = held
        return found

    def counts(self) -> tuple[int, int, float | None]:
        """(records with pending changes, pending changes, when the oldest arrived)."""
        oldest = next(iter(self._dirty.values()), None)
        changes = sum(len(part.pending) for part in self._dirty.values())
        return len(self._dirty), changes, oldest.dirty_since if oldest else None


def _width(uid: str, held: Held) -> int:
    return syncrecord.entry_size(uid, Held(held.ref, _RV_WIDTH))


def record_size(nodes: Nodes) -> int:
    """Bytes a record's entries take, with every version at its widest (for placement)."""
    return sum(_width(uid, held) for uids in nodes.values() for uid, held in uids.items())
