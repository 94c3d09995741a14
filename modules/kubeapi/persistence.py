"""Optional persistence of the store to a sqlite file (stdlib `sqlite3`).

Input: the `Event`s the store queued for each write; output: rows committed before the
server replies, so an acknowledged write survives a crash of the process. On start,
`load()` hands every stored object and the last resourceVersion back to the store.
The service account signing key (`tokens.py`), the server's bearer token and its serving
CA (`server.py`) are kept here too (`load_key`/`save_key`/`keep_key`), so the file is
owner-only (0600, as are the -wal and -shm files sqlite makes beside it).
The event history is not persisted (as etcd compaction, a restart forgets it), so a
watch from a version older than the restart is answered 410 Gone.

WAL journal with `synchronous=NORMAL`: a committed transaction survives the process
being killed; only a power loss or OS crash can lose the last commits.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator

from modules import private
from modules.kubeapi.store import Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, raw BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, pem BLOB NOT NULL);
"""


class SqlitePersistence:
    """Objects of every type in one table, keyed by (resource, namespace, name)."""

    def __init__(self, path: str) -> None:
        """Open (or create, 0600) the file at `path`.

        Raises:
            OSError: the file cannot be created.
            sqlite3.Error: it is not a database.
        """
        private.sqlite_database(path)  # before sqlite, which copies its mode to the sidecars
        # One connection used from request threads, always under the server's lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # guards the connection against stray callers

    def load(self) -> tuple[Iterator[tuple[str, bytes]], int]:
        """(resource key, raw JSON) of every object, and the last resourceVersion."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        rows = self._db.execute("SELECT resource, raw FROM objects ORDER BY rowid")
        return ((key, bytes(raw)) for key, raw in rows.fetchall()), int(row[0]) if row else 0

    def write(self, events: Iterable[Event]) -> None:
        """Store the outcome of the events in one transaction, committed on return."""
        last = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for event in events:
                    last = event.rv
                    if event.type == "DELETED":
                        self._db.execute(
                            "DELETE FROM objects WHERE resource=? AND namespace=? AND name=?",
                            (event.key, event.namespace, event.entry.obj["metadata"]["name"]),
                        )
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
                            (
                                event.key,
                                event.namespace,
                                event.entry.obj["metadata"]["name"],
                                event.entry.raw,
                            ),
                        )
                if last:
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (last,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_key(self, name: str) -> bytes | None:
        """A key saved under `name`, PEM, or None."""
        with self._lock:
            row = self._db.execute("SELECT pem FROM keys WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def save_key(self, name: str, pem: bytes) -> None:
        """Keep a key (committed on return)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO keys VALUES (?, ?)", (name, pem))

    def keep_key(self, name: str, pem: bytes) -> bytes:
        """The value saved under `name`, saving `pem` first if there is none (so two
        servers starting on one file agree on the value)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO keys VALUES (?, ?)", (name, pem))
            row = self._db.execute("SELECT pem FROM keys WHERE name = ?", (name,)).fetchone()
        return bytes(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
