"""What each fleet node holds: objects the cloud delivered, and when each arrived.

Input: cloud ``insert``/``update``/``delete`` messages a session received (resource
``<namespace>/<type>/<name>``) and the arrival time. Output: a `Verdict` (the
session acks every verdict, as metamanager does) and, for reports and benchmarks,
``objects`` (key -> resourceVersion, arrival time) and ``deleted`` (key -> time).

`MemoryNodeStore` applies with metamanager's rules (a newer resourceVersion
replaces, an older or equal one is stale, a delete removes and a late update of the
deleted uid is ignored). `SqliteNodeStore` writes through `MetaStore` first, so
what is acked is on disk, and keeps the same arrival records.
"""

from __future__ import annotations

import collections
import enum
from pathlib import Path

from beehive.message import Message, Operation
from modules import contract, private
from modules.metamanager.store import Applied, MetaStore, StoreError

CHANGES = frozenset({Operation.INSERT, Operation.UPDATE, Operation.DELETE})


class Verdict(enum.Enum):
    NEW = "new"  # a key not held before
    NEWER = "newer"  # replaced an older version
    STALE = "stale"  # not newer than what is held: a duplicate or reordered delivery
    DELETED = "deleted"  # removed
    IGNORED = "ignored"  # a delete of nothing, an update of a deleted uid, or no object


def resource_version(message: Message) -> int | None:
    """The message's resourceVersion as an integer (header first, then the object)."""
    return contract.resource_version(contract.message_resource_version(message))


_uid = contract.object_uid


def kind_of(key: str) -> str:
    """The type token of a store key ``<namespace>/<type>/<name>`` (the key if none)."""
    return key.split("/", 2)[1] if key.count("/") >= 2 else key


class MemoryNodeStore:
    """One node's objects in dicts: key -> (resourceVersion, uid, arrival time)."""

    def __init__(self, held: collections.Counter[str] | None = None) -> None:
        self.objects: dict[str, tuple[int, str, float]] = {}  # what the node holds now
        self.deleted: dict[str, tuple[str, float]] = {}  # key -> (uid, when the delete came)
        # Objects held by type; the fleet passes one tally that all its stores share.
        self.held: collections.Counter[str] = collections.Counter() if held is None else held

    def apply(self, message: Message, now: float) -> Verdict:
        """What the message did to the node's objects.

        Raises:
            StoreError: an insert or update whose content is not an object (as the
                sqlite store refuses it).
        """
        key = message.route.resource
        if message.route.operation == Operation.DELETE:
            return self._delete(key, _uid(message), now)
        if not isinstance(message.content, dict):
            raise StoreError(key, f"content is not an object but {type(message.content).__name__}")
        rv = resource_version(message)
        if rv is None:
            return Verdict.IGNORED
        uid = _uid(message)
        held = self.objects.get(key)
        if held is not None and rv <= held[0]:
            return Verdict.STALE
        gone = self.deleted.get(key)
        if gone is not None and uid and gone[0] == uid:
            return Verdict.IGNORED
        self.objects[key] = (rv, uid, now)
        self.deleted.pop(key, None)
        if held is None:
            self.held[kind_of(key)] += 1
            return Verdict.NEW
        return Verdict.NEWER

    def _delete(self, key: str, uid: str, now: float) -> Verdict:
        held = self.objects.get(key)
        if held is None or (uid and held[1] and held[1] != uid):
            return Verdict.IGNORED
        del self.objects[key]
        self.held[kind_of(key)] -= 1
        self.deleted[key] = (uid or held[1], now)
        return Verdict.DELETED

    def close(self) -> None:
        """Nothing to release."""

    def count(self, rtype: str) -> int:
        """Objects of one type (``pod``) held."""
        marker = f"/{rtype}/"
        return sum(1 for key in self.objects if marker in key)


class SqliteNodeStore(MemoryNodeStore):
    """Writes through a per-node `MetaStore` (sqlite, synchronous=FULL) before recording."""

    def __init__(self, path: Path, held: collections.Counter[str] | None = None) -> None:
        super().__init__(held)
        private.make_dir(path.parent)  # 0700 if made here; the file is 0600 (MetaStore)
        self._meta = MetaStore(path)  # the node's sqlite file; raises StoreError

    def apply(self, message: Message, now: float) -> Verdict:
        applied = self._meta.apply(message)  # raises StoreError: the session answers error
        if applied in (Applied.STALE, Applied.GONE, Applied.ABSENT):
            return Verdict.STALE if applied is Applied.STALE else Verdict.IGNORED
        return super().apply(message, now)

    def close(self) -> None:
        self._meta.close()
