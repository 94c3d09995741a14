"""The metrics module's settings: what the config files use, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from beehive import errors
from modules.cli import APP
from modules.metrics import MetricsSettings

ROOT = Path(__file__).resolve().parents[3]


def load(tmp_path: Path, settings: str) -> object:
    path = tmp_path / "m.yaml"
    path.write_text(f"modules:\n  metrics:\n    settings: {settings}\n")
    return APP.load(str(path))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param("{port: 70000}", "modules.metrics.settings.port: expected an integer <= 65535,"
                     " found 70000", id="a port above 65535"),
        pytest.param("{port: -1}", "modules.metrics.settings.port: expected an integer >= 0,"
                     " found -1", id="a negative port"),
        pytest.param("{prot: 9100}", "modules.metrics.settings.prot: unknown key (did you mean"
                     " 'port'?)", id="a misspelt key"),
        pytest.param("{per_node: edge-1}", "modules.metrics.settings.per_node: expected a list,"
                     " found a string 'edge-1'", id="per_node not a list"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_refused_naming_its_key(
    tmp_path: Path, settings: str, message: str
) -> None:
    with pytest.raises(errors.ConfigError) as raised:
        load(tmp_path, settings)
    assert str(raised.value) == f"{tmp_path / 'm.yaml'}: {message}"


def test_the_shipped_configs_serve_metrics_on_the_cloud_and_not_on_the_edge() -> None:
    cloud = APP.load(str(ROOT / "config/cloudcore.yaml"))
    [metrics] = [m for m in cloud.modules if m.name == "metrics"]
    assert metrics.enable and metrics.settings == MetricsSettings(port=10012)
    local = APP.load(str(ROOT / "config/local.yaml"))
    [metrics] = [m for m in local.modules if m.name == "metrics"]
    assert metrics.enable and metrics.settings.port == 10011
    edge = APP.load(str(ROOT / "config/edgecore.yaml"))
    [metrics] = [m for m in edge.modules if m.name == "metrics"]
    assert not metrics.enable
