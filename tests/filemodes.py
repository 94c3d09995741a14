"""File modes for the tests of owner-only files: a umask set for one block, and the mode
bits of a file, of a sqlite database's files (the database and its -wal, -shm, -journal)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block under `mask` (process-wide), restoring the old umask after it."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: str | os.PathLike[str]) -> int:
    """The permission bits of `path` (0o600 for an owner-only file)."""
    return stat.S_IMODE(os.stat(path).st_mode)


def sqlite_modes(database: Path) -> dict[str, int]:
    """Name -> permission bits of the database file and those of its sidecars that exist."""
    files = [database, *(database.with_name(database.name + s) for s in SQLITE_SIDECARS)]
    return {path.name: mode(path) for path in files if path.exists()}
