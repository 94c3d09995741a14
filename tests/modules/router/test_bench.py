"""bench/router_bench.py runs, small: every request answered on both paths (no timings)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "router_bench.py"


@pytest.mark.slow
@pytest.mark.integration
def test_the_router_benchmark_answers_every_request(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--requests", "20", "--concurrency", "4", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["paths"]["servicebus"]["statuses"] == {"200": 20}
    assert "rate limits raised" in done.stdout
    if shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin"):
        eventbus = result["paths"]["eventbus"]
        assert eventbus["statuses"] == {"200": 20}
        assert eventbus["delivered_to_subscriber"] == 20
    else:
        assert result["paths"]["eventbus"] is None
