"""The end-to-end benchmark runs, small: API server, cloudcore and fleet as processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "e2e_bench.py"


@pytest.mark.slow
@pytest.mark.integration
def test_quick_benchmark_delivers_every_phase_and_loses_nothing_in_the_storm(
    tmp_path: Path,
) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [p["phase"] for p in result["cloudcore"]] == ["create", "update", "delete"]
    assert [p["phase"] for p in result["floor"]] == ["create", "update", "delete"]
    assert all(p["objects"] == 20 * 3 for p in result["cloudcore"])
    assert result["storm"]["lost"] == 0 and result["storm"]["dropped"] == 20
    assert result["fleet_errors"] == 0
    assert "storm:" in done.stdout
