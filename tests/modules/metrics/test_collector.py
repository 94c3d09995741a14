"""The collector over a hive with no module running: the hive's families always, each
snapshot by its kind, and a snapshot that fails leaves the rest of the scrape whole."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from beehive import Hive, Message, Module
from modules import histogram
from modules.metrics import catalogue, collector
from tests.modules.metrics.helpers import Scrape


def render(hive: Hive, **kwargs: Any) -> Scrape:
    registry = CollectorRegistry()
    registry.register(collector.HiveCollector(hive, **kwargs))
    return Scrape(generate_latest(registry).decode())


def test_a_failing_snapshot_is_marked_down_and_the_others_are_rendered() -> None:
    hive = Hive()
    latency = histogram.Histogram([0.1, 1.0])
    latency.observe(0.5)

    def broken(nodes: list[str]) -> dict[str, Any]:
        raise TimeoutError("no answer")

    def certs(nodes: list[str]) -> dict[str, Any]:
        return {"kind": "certserver", "certificates": {"ca": 2e9, "server": 1.9e9},
                "token_expires": 1.8e9, "issued": 3, "refused": 1}  # fmt: skip

    hive.register_command("cloudhub.metrics", broken)
    hive.register_command("certserver.metrics", certs)
    scraped = render(hive)
    assert scraped.value("beehive_metrics_source_up", module="cloudhub") == 0
    assert scraped.value("beehive_metrics_source_up", module="certserver") == 1
    expiry = "beehive_certificate_expiry_timestamp_seconds"
    assert scraped.value(expiry, module="certserver", certificate="ca") == 2e9
    assert scraped.value(expiry, module="certserver", certificate="server") == 1.9e9
    assert (
        scraped.value("beehive_join_token_expiry_timestamp_seconds", module="certserver") == 1.8e9
    )
    assert not scraped.has("beehive_cloudhub_nodes_connected")


def test_dead_letters_for_names_that_are_no_module_are_counted_as_other() -> None:
    hive = Hive()
    for target in ("typo-1", "typo-2", "typo-3"):
        hive.dead_letters.add(target, "unknown module", Message.new())
    scraped = render(hive)
    assert scraped.value("beehive_dead_letters_total", module="other") == 3
    assert scraped.label_values("beehive_dead_letters_total", "module") == {"other"}


def test_the_snapshot_commands_get_the_configured_nodes() -> None:
    hive = Hive()
    asked: list[list[str]] = []

    def snapshot(nodes: list[str]) -> dict[str, Any]:
        asked.append(nodes)
        return {"kind": "unknown"}

    hive.register_command("x.metrics", snapshot)
    scraped = render(hive, per_node=["edge-1"])
    assert asked == [["edge-1"]]
    assert scraped.value("beehive_metrics_source_up", module="x") == 0  # unknown kind


def test_every_family_the_collector_adds_is_in_the_catalogue() -> None:
    families = collector.Families()
    for group in {f.group for f in catalogue.FAMILIES}:
        families.touch(group)
    assert {metric.name for metric in families} == {
        f.name.removesuffix("_total") for f in catalogue.FAMILIES
    }


def test_the_snapshot_of_a_module_that_is_not_running_is_not_asked_for() -> None:
    hive = Hive()
    hive.add("cloudhub", Module)  # registered, never started

    def snapshot(nodes: list[str]) -> dict[str, Any]:
        raise AssertionError("asked a module that does not run")

    hive.register_command("cloudhub.metrics", snapshot)
    scraped = render(hive)
    assert scraped.value("beehive_metrics_source_up", module="cloudhub") == 0
    assert scraped.value("beehive_module_state", module="cloudhub", state="registered") == 1
