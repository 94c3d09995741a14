"""HTTP GETs of the metrics server, and the scraped text parsed by prometheus_client."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from beehive import Hive


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET on 127.0.0.1:`port`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def metrics_port(hive: Hive, module: str = "metrics") -> int:
    port: int = hive.commands[f"{module}.address"]()["port"]
    return port


class Scrape:
    """One scrape: samples by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in self.families.values():
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when it is not there (a counter not counted yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def label_values(self, name: str, label: str) -> set[str]:
        return {
            dict(lbls)[label] for (n, lbls) in self.samples if n == name and label in dict(lbls)
        }

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def scrape(port: int) -> Scrape:
    status, text = get(port, "/metrics")
    assert status == 200, text
    return Scrape(text)


def count(scraped: Scrape, histogram: str, **labels: Any) -> float:
    return scraped.value(f"{histogram}_count", **labels)
