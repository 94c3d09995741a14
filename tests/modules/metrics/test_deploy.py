"""The Grafana dashboard and the Prometheus alert rules under deploy/ use only metric
names the collector exports (read loosely: every ``beehive_...`` name in an expression),
and the README lists every series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modules.metrics import catalogue

ROOT = Path(__file__).resolve().parents[3]
NAME = re.compile(r"\bbeehive_[a-z0-9_]+\b")


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/cloudcore-dashboard.json").read_text())
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return found


def test_the_alert_rules_use_only_exported_metrics() -> None:
    exported = catalogue.sample_names()
    for rule in alert_rules():
        names = set(NAME.findall(rule["expr"]))
        assert names, f"{rule['alert']}: no beehive metric in {rule['expr']!r}"
        assert names <= exported, f"{rule['alert']}: not exported: {sorted(names - exported)}"


def test_the_alert_rules_cover_disconnects_latency_watches_and_certificates() -> None:
    used = {name for rule in alert_rules() for name in NAME.findall(rule["expr"])}
    assert {
        "beehive_cloudhub_nodes_disconnected",
        "beehive_cloudhub_delivery_latency_seconds_bucket",
        "beehive_edgecontroller_watch_phase",
        "beehive_certificate_expiry_timestamp_seconds",
    } <= used


def test_the_dashboard_uses_only_exported_metrics() -> None:
    exported = catalogue.sample_names()
    expressions = dashboard_expressions()
    assert expressions
    for expr in expressions:
        names = set(NAME.findall(expr))
        assert names and names <= exported, f"{expr!r}: not exported: {sorted(names - exported)}"


def test_the_readme_lists_every_series() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Metrics and health") :]
    missing = [f.name for f in catalogue.FAMILIES if f"`{f.name}`" not in section]
    assert not missing


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) not installed")
def test_prometheus_parses_the_alert_rules_and_every_dashboard_query(tmp_path: Path) -> None:
    # The dashboard's queries go in as recording rules: promtool parses each as PromQL.
    variables = {"$__rate_interval": "1m", "${instance}": ".*", "$instance": ".*"}
    records = []
    for i, expr in enumerate(dashboard_expressions()):
        for variable, value in variables.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a dashboard variable this test does not fill: {expr!r}"
        grafana = re.fullmatch(r"label_values\((.+),\s*\w+\)", expr)  # Grafana's, not PromQL
        expr = grafana.group(1) if grafana else expr
        records.append({"record": f"dashboard:query_{i}", "expr": expr})
    queries = tmp_path / "dashboard-queries.yaml"
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    for rules in (ROOT / "deploy/prometheus/alerts.yaml", queries):
        done = subprocess.run(["promtool", "check", "rules", str(rules)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
