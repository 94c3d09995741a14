"""The metrics benchmark runs, small, and reads cloudhub's snapshot (it refuses to print
figures otherwise: its stand-in for the transport must keep up with what is read)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "metrics_bench.py"


@pytest.mark.slow
def test_the_metrics_benchmark_scrapes_cloudhub(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--nodes", "50", "--per-node", "2", "--repeat", "2"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cannot read" not in done.stderr, done.stderr[-2000:]
    assert "scrape (generate_latest)" in done.stdout
