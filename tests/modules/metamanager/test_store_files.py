"""The edge's sqlite store holds what the cloud sent (Secrets among it): the database and
the -wal/-shm/-journal files sqlite makes beside it are owner-only, whatever the umask."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from beehive.message import JsonValue
from modules.metamanager.store import MetaStore, StoreError
from tests.filemodes import mode, sqlite_modes, umask
from tests.modules.metamanager.test_store import msg

SECRET: JsonValue = {
    "metadata": {"uid": "s1", "name": "db-password"},
    "data": {"password": "aHVudGVyMg=="},
}


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_a_new_store_and_its_sidecars_are_owner_only(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "edge.db"
    with umask(mask), MetaStore(path) as store:
        store.apply(msg("insert", "5", resource="default/secret/db-password", content=SECRET))
        modes = sqlite_modes(path)
        assert {"edge.db", "edge.db-wal", "edge.db-shm"} <= set(modes)
        assert set(modes.values()) == {0o600}, modes
    assert set(sqlite_modes(path).values()) == {0o600}


def test_an_existing_readable_store_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")  # leaves -wal and -shm while open
    for name, bits in sqlite_modes(path).items():
        (tmp_path / name).chmod(0o644)
        assert bits  # exists
    try:
        with umask(0o022), MetaStore(path):
            assert set(sqlite_modes(path).values()) == {0o600}
    finally:
        db.close()
    assert mode(path) == 0o600


def test_a_store_in_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        MetaStore(tmp_path / "missing" / "edge.db")
