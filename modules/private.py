"""Owner-only files and folders, for whatever holds secrets.

Callers: the embedded API (its sqlite data file and the kubeconfig that carries its
token), the edge's and the fleet's sqlite stores (what the cloud delivered, Secrets
among it), the fleet's certificate folder. Files are 0600 and folders 0700 whatever
the process's umask: each is opened or made with that mode and then chmod-ed to it
(the umask can only take bits away, and an existing file keeps its old mode), never by
changing the umask, which is process-wide.

sqlite makes its -wal, -shm and -journal files with the mode of the database file
(unixOpen's findCreateFileMode), so `sqlite_database` makes the database 0600 before
sqlite opens it, and tightens sidecars an older version left readable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600  # read and write for the owner only
DIR_MODE = 0o700  # and enter, for folders
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def make_dir(path: str | os.PathLike[str]) -> Path:
    """Make the folder `path` 0700 (its missing parents as usual) unless it exists.

    An existing folder is left as it is: the user made it and may share it (a working
    directory, /tmp); what goes inside it is owner-only on its own.

    Raises:
        OSError: it cannot be made (or a file is in the way).
    """
    folder = Path(path)
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, DIR_MODE)
    except FileExistsError:
        if not folder.is_dir():
            raise
        return folder  # made by someone else meanwhile
    os.chmod(folder, DIR_MODE)
    return folder


def write_file(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace `path` atomically by a 0600 file holding `data` (readers never see a
    partial file, nor a readable one).

    Raises:
        OSError: the folder is missing or not writable.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def sqlite_database(path: str | os.PathLike[str]) -> None:
    """Make the sqlite file `path` 0600 before sqlite opens it: create it empty (sqlite
    takes an empty file as a new database) or tighten it, and its existing sidecars.
    In-memory and URI names are left to sqlite.

    Raises:
        OSError: the file cannot be created (its folder is missing, say).
    """
    name = os.fspath(path)
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    fd = os.open(name, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in SQLITE_SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name + suffix, FILE_MODE)
