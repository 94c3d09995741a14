"""The fleet memory benchmark runs, small: cloudhub and two fleets as processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "fleet_memory_bench.py"


@pytest.mark.slow
@pytest.mark.integration
def test_the_memory_benchmark_measures_each_size_before_and_after_a_storm(
    tmp_path: Path,
) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "1,4", "--settle", "0.5", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["fleet_rss_mib"]) == set(result["after_storm_rss_mib"]) == {"1", "4"}
    assert set(result["fleet_kib_per_edge"]) == {"1-4"}
    assert "per edge between sizes" in done.stdout
