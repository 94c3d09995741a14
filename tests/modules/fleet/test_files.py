"""What the fleet writes holds keys and delivered Secrets: the `--certs` folder and the
sqlite store's folder and files are owner-only, whatever the umask."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest

from modules.certs import ca as ca_mod
from modules.certs import token
from modules.fleet import FleetOptions, join
from modules.fleet.stats import Counters
from modules.fleet.store import SqliteNodeStore
from tests.filemodes import mode, sqlite_modes, umask
from tests.modules.certs.helpers import running_server
from tests.modules.metamanager.test_store import msg

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_the_certs_folder_and_each_nodes_files_are_owner_only(tmp_path: Path, mask: int) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = ca_mod.generate_ca(now)
    certs = tmp_path / "run" / "certs"
    with umask(mask), running_server(ca) as server:
        options = FleetOptions(
            cloud="127.0.0.1:1", nodes=2, certs=certs, cert_server=server.address,
            token=token.new_token(ca, now=now, refresh=datetime.timedelta(hours=1)),
        )  # fmt: skip
        contexts = asyncio.run(join.enroll_all(options, Counters(nodes=2)))
    assert len(contexts) == 2
    assert mode(certs) == 0o700
    for node in options.node_names:
        assert mode(certs / node) == 0o700
        assert {mode(path) for path in (certs / node).iterdir()} == {0o600}


def test_an_existing_certs_folder_is_left_as_it_is(tmp_path: Path) -> None:
    """A folder the user made (say, a shared one) is not ours to change; the node folders
    inside it are still 0700."""
    now = datetime.datetime.now(datetime.UTC)
    ca = ca_mod.generate_ca(now)
    tmp_path.chmod(0o755)
    with umask(0o022), running_server(ca) as server:
        options = FleetOptions(
            cloud="127.0.0.1:1", nodes=1, certs=tmp_path, cert_server=server.address,
            token=token.new_token(ca, now=now, refresh=datetime.timedelta(hours=1)),
        )  # fmt: skip
        asyncio.run(join.enroll_all(options, Counters(nodes=1)))
    assert (mode(tmp_path), mode(tmp_path / "fleet-0")) == (0o755, 0o700)


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_the_sqlite_store_folder_and_files_are_owner_only(tmp_path: Path, mask: int) -> None:
    folder = tmp_path / "store"
    with umask(mask):
        store = SqliteNodeStore(folder / "fleet-0.db")
        try:
            store.apply(msg("insert", "5"), now=0.0)
            modes = sqlite_modes(folder / "fleet-0.db")
            assert {"fleet-0.db", "fleet-0.db-wal", "fleet-0.db-shm"} <= set(modes)
            assert set(modes.values()) == {0o600}, modes
        finally:
            store.close()
    assert mode(folder) == 0o700
