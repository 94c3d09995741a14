"""``beehive debug watches`` shows each watch's state, through the admin endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beehive.admin import AdminServer
from modules.cli import main
from tests.fakes import eventually
from tests.modules.edgecontroller.helpers import Cloud


def test_debug_watches_shows_a_row_per_resource(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def watching() -> bool:
        phases = {w["resource"]: w["phase"] for w in cloud.hive.commands["watches"]()["watches"]}
        return all(phases[r] == "watching" for r in ("nodes", "pods", "configmaps", "secrets"))

    assert eventually(watching)  # a loaded machine may still be between list and watch
    address = f"unix://{tmp_path}/admin.sock"
    server = AdminServer(cloud.hive, address)
    server.start()
    try:
        assert main(["debug", "--address", address, "watches"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert main(["debug", "--address", address, "watches", "--json"]) == 0
        state = json.loads(capsys.readouterr().out)
    finally:
        server.stop()
    assert table[0].split()[:5] == ["RESOURCE", "PHASE", "FOR", "RV", "OBJECTS"]
    rows = {line.split()[0]: line.split()[1] for line in table[1:7]}
    assert {rows[r] for r in ("nodes", "pods", "configmaps", "secrets")} == {"watching"}
    assert "upstream queued" in table[-1] and "refused 0" in table[-1]
    watches = {w["resource"]: w for w in state["watches"]}
    assert set(watches) == {"nodes", "pods", "configmaps", "secrets", "rules", "ruleendpoints"}
    assert watches["pods"]["synced"] and watches["pods"]["resource_version"]
