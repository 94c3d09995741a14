"""The edge's meta store: what the cloud delivered, in a sqlite file, applied in order.

Input: cloud ``insert``/``update``/``delete`` messages as edgehub received them
(resource ``<namespace>/<type>/<name>``). Output: an `Applied` verdict the caller
acks on (every verdict is acked: a stale or repeated message is already
reflected), and the stored objects for local queries and `beehive debug store`.

Table ``meta`` keeps KubeEdge's columns (edge/pkg/metamanager/dao/meta.go: key,
type, value as JSON text) plus the object's uid and resourceVersion, which make
applying idempotent and ordered: an update is stored only if its resourceVersion
is higher than the stored one (RVs are etcd revisions, so this also orders a
recreated object after its predecessor); a delete removes the row only if the uid
matches, in one statement (KubeEdge PR #4631), and leaves a tombstone so a late
update of the deleted uid cannot bring it back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from enum import StrEnum

from beehive import errors
from beehive.message import JsonValue, Message, Operation
from modules import contract, private

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    uid TEXT NOT NULL DEFAULT '',
    resource_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta_tombstone (
    uid TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    resource_version INTEGER NOT NULL
);
"""
_COLUMNS = "key, type, value, uid, resource_version"


class StoreError(errors.BeehiveError):
    """A message the store cannot apply, or the database failed (answer with an error)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot store {self.key!r}: {self.reason}"


class Applied(StrEnum):
    """What `MetaStore.apply` did; every verdict is acked."""

    STORED = "stored"  # inserted or replaced
    DELETED = "deleted"  # the row was removed
    STALE = "stale"  # not newer than what is stored: ignored
    GONE = "gone"  # an update for a uid already deleted: ignored
    ABSENT = "absent"  # a delete for nothing, or for another incarnation of the name

    @property
    def stored(self) -> bool:
        """Whether the database changed."""
        return self in (Applied.STORED, Applied.DELETED)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredObject:
    key: str  # <namespace>/<type>/<name>, the trimmed resource
    type: str
    uid: str
    resource_version: int
    value: JsonValue

    @property
    def namespace(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 2)[2]


@dataclasses.dataclass(frozen=True, slots=True)
class _Change:
    key: str
    type: str
    uid: str
    rv: int | None
    content: JsonValue


class MetaStore:
    """A sqlite meta store owned by one thread at a time (the metamanager actor)."""

    def __init__(self, path: str | os.PathLike[str], *, max_tombstones: int = 10_000) -> None:
        """Open (or create) the store at `path`, owner-only (0600, as sqlite's files beside it).

        Raises:
            StoreError: the file cannot be opened as a database.
        """
        self.path = os.fspath(path)  # the sqlite file
        self._max_tombstones = max_tombstones  # deleted uids remembered, newest kept
        try:
            private.sqlite_database(self.path)  # what the cloud sent includes Secrets
        except OSError as exc:
            raise StoreError(self.path, f"cannot open database: {exc}") from exc
        try:
            # Created on one thread, then used by the actor's: hence check_same_thread.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # committed means on disk: then we ack
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot open database: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MetaStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def apply(self, message: Message) -> Applied:
        """Apply a cloud insert/update/delete, atomically.

        Raises:
            StoreError: another operation, a resource that is not
                ``<namespace>/<type>/<name>``, an update without a numeric
                resourceVersion, or a database failure.
        """
        change = _change(message)
        is_delete = message.route.operation == Operation.DELETE
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                applied = self._delete(change) if is_delete else self._upsert(change)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(change.key, f"database error: {exc}") from exc
        except (UnicodeError, RecursionError, ValueError, OverflowError) as exc:
            # What a hostile cloud may send: a lone surrogate, content nested too deep
            # to encode. Refused (the store unchanged), never a crash of the caller.
            raise StoreError(change.key, f"cannot encode it: {type(exc).__name__}") from None
        return applied

    def get(self, key: str) -> StoredObject | None:
        """The stored object under a key such as ``default/pod/nginx``."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM meta WHERE key = ?", (key,)).fetchone()
        return _object(row) if row else None

    def list_objects(self, resource_type: str | None = None) -> list[StoredObject]:
        """Stored objects (of one type, such as ``pod``, if given), by key."""
        query, args = f"SELECT {_COLUMNS} FROM meta", tuple[str, ...]()
        if resource_type is not None:
            query, args = query + " WHERE type = ?", (resource_type,)
        return [_object(row) for row in self._db.execute(query + " ORDER BY key", args)]

    def _upsert(self, change: _Change) -> Applied:
        if change.uid and self._is_tombstoned(change.uid):
            return Applied.GONE
        row = self._db.execute(
            "SELECT resource_version FROM meta WHERE key = ?", (change.key,)
        ).fetchone()
        assert change.rv is not None  # _change requires it for updates
        if row is not None and change.rv <= row[0]:
            return Applied.STALE
        self._db.execute(
            f"INSERT OR REPLACE INTO meta ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (change.key, change.type, _dumps(change), change.uid, change.rv),
        )
        return Applied.STORED

    def _delete(self, change: _Change) -> Applied:
        if not change.uid:  # e.g. KubeEdge's node delete, which carries no object
            cursor = self._db.execute("DELETE FROM meta WHERE key = ?", (change.key,))
            return Applied.DELETED if cursor.rowcount else Applied.ABSENT
        self._tombstone(change)
        cursor = self._db.execute(
            "DELETE FROM meta WHERE key = ? AND uid = ?", (change.key, change.uid)
        )
        return Applied.DELETED if cursor.rowcount else Applied.ABSENT

    def _is_tombstoned(self, uid: str) -> bool:
        found = self._db.execute("SELECT 1 FROM meta_tombstone WHERE uid = ?", (uid,))
        return found.fetchone() is not None

    def _tombstone(self, change: _Change) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta_tombstone (uid, key, resource_version) VALUES (?, ?, ?)",
            (change.uid, change.key, change.rv or 0),
        )
        self._db.execute(
            "DELETE FROM meta_tombstone WHERE rowid <= (SELECT MAX(rowid) FROM meta_tombstone) - ?",
            (self._max_tombstones,),
        )


def _change(message: Message) -> _Change:
    """What a message asks to store, validated."""
    key = message.route.resource
    operation = message.route.operation
    if operation not in (Operation.INSERT, Operation.UPDATE, Operation.DELETE):
        raise StoreError(key, f"operation {operation[:32]!r} does not change the store")
    parts = key.split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise StoreError(key, "resource is not <namespace>/<type>/<name>")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise StoreError(key, "resource is not valid text (a lone surrogate)") from None
    if operation != Operation.DELETE and not isinstance(message.content, dict):
        kind = type(message.content).__name__
        raise StoreError(key, f"content is not an object but {kind}")
    metadata = contract.metadata(message.content)
    uid = metadata.get("uid")
    rv_text = message.header.resource_version or metadata.get("resourceVersion") or ""
    rv = contract.resource_version(rv_text) if isinstance(rv_text, str) else None
    if rv is None and (operation != Operation.DELETE or rv_text):
        raise StoreError(
            key, f"resourceVersion {str(rv_text)[:32]!r} is not an unsigned 64-bit integer"
        )
    return _Change(key, parts[1], uid if isinstance(uid, str) else "", rv, message.content)


def _dumps(change: _Change) -> str:
    return json.dumps(change.content, ensure_ascii=False, separators=(",", ":"))


def _object(row: tuple[str, str, str, str, int]) -> StoredObject:
    key, type_, value, uid, rv = row
    return StoredObject(key=key, type=type_, uid=uid, resource_version=rv, value=json.loads(value))
