"""config/local.yaml's router section: the router, edge-1's buses and the router demo
load, point at each other, and the demo's Rules are valid; a bad router setting is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beehive import errors
from modules.cli import APP
from modules.eventbus.module import EventBusSettings
from modules.router import rules
from modules.router.settings import RouterSettings
from modules.routerdemo import RouterDemoSettings, demo_objects
from modules.servicebus import ServiceBusSettings

ROOT = Path(__file__).resolve().parents[3]


def local_modules() -> dict[str, Any]:
    cfg = APP.load(str(ROOT / "config/local.yaml"))
    return {m.name: m for m in cfg.modules}


def test_the_local_demo_runs_a_router_and_edge_1s_buses() -> None:
    mods = local_modules()
    router = mods["router"].settings
    assert isinstance(router, RouterSettings) and mods["router"].enable
    assert (router.address, router.port) == ("127.0.0.1", 10012)
    hub = mods["edgehub-1"].settings
    assert (hub.eventbus_module, hub.servicebus_module) == ("eventbus-1", "servicebus-1")
    bus = mods["eventbus-1"].settings
    assert isinstance(bus, EventBusSettings)
    assert (bus.node_name, bus.hub_module, bus.broker) == ("edge-1", "edgehub-1", "127.0.0.1:1883")
    assert isinstance(mods["servicebus-1"].settings, ServiceBusSettings)
    assert mods["servicebus-1"].settings.hub_module == "edgehub-1"
    demo = mods["routerdemo"].settings
    assert isinstance(demo, RouterDemoSettings)
    assert demo.router == f"127.0.0.1:{router.port}" and demo.broker == bus.broker
    names = list(mods)
    assert names.index("cloudhub") < names.index("router") < names.index("routerdemo")


def test_the_demo_rules_are_valid_and_route_both_ways() -> None:
    demo = local_modules()["routerdemo"].settings
    table = rules.RuleTable()
    for kind, _plural, name, spec in demo_objects(demo, demo.app_port):
        obj = {"metadata": {"name": name, "namespace": demo.namespace}, "spec": spec}
        table.apply(kind.lower(), "insert", obj)
    assert [r.problem for r in table.rules.values()] == ["", "", ""]
    lamp = table.match_rest(f"/{demo.node}/{demo.namespace}/lamp")
    assert lamp.rule.target_type == rules.EVENTBUS
    assert rules.publish_topic(lamp.rule, lamp.param) == "lamp"
    app = table.match_rest(f"/{demo.node}/{demo.namespace}/app/x")
    assert rules.service_path(app.rule, app.param) == f"{demo.app_port}:/hello/x"
    assert table.subscriptions() == {(demo.node, f"{demo.namespace}/sensor")}
    [up] = table.match_upload(demo.node, f"{demo.namespace}/sensor")
    assert up.rule.target_resource["resource"].endswith("/sensor")


def test_a_bad_router_setting_is_refused_naming_its_key(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("modules:\n  router:\n    settings: {rest_timeout: 0}\n")
    with pytest.raises(errors.ConfigError) as raised:
        APP.load(str(path))
    assert "modules.router.settings.rest_timeout" in str(raised.value)
