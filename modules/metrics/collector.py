"""The Prometheus collector: reads the hive and each module's snapshot at scrape time.

Input, per scrape (on the HTTP server's thread): `Hive.modules()` and the dead
letters for the hive's families, and every ``<module>.metrics`` admin command
(`modules.probes`), whose JSON-ready snapshot names its shape in ``kind``.
Output: `prometheus_client` metric families, as `catalogue` lists them. The snapshot
of a module that is not running is not asked for (its command would reach a stopped
instance): its ``beehive_metrics_source_up`` is 0, as when a snapshot fails. Nothing
here is kept between scrapes: the modules keep their counters (running totals, so
a scrape at 10,000 nodes reads a few numbers) and this only renders them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from beehive import Hive
from modules import histogram, probes
from modules.metrics import catalogue

log = logging.getLogger("modules.metrics")

STATES = (
    "registered",
    "starting",
    "running",
    "restarting",
    "stopping",
    "stopped",
    "finished",
    "failed",
)  # fmt: skip  (beehive's ModuleState values)
PHASES = ("listing", "watching", "backoff", "absent", "stopped")  # a reflector's


class Families:
    """The families of one scrape, made on first use from the catalogue."""

    def __init__(self) -> None:
        self._made: dict[str, Metric] = {}  # name -> family, in the order first used

    def touch(self, group: str) -> None:
        """Export every family of `group`, with samples or without."""
        for family in catalogue.FAMILIES:
            if family.group == group:
                self._family(family.name)

    def add(self, name: str, labels: Sequence[str], value: float) -> None:
        self._family(name).add_metric(list(labels), value)  # type: ignore[attr-defined]

    def histogram(self, name: str, labels: Sequence[str], data: histogram.HistogramData) -> None:
        buckets = [(_le(bound), n) for bound, n in histogram.cumulative(data)]
        family = self._family(name)
        assert isinstance(family, HistogramMetricFamily)
        family.add_metric(list(labels), buckets, data["sum"])

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._made.values())

    def _family(self, name: str) -> Metric:
        made = self._made.get(name)
        if made is None:
            spec = catalogue.BY_NAME[name]
            make = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
                    "histogram": HistogramMetricFamily}[spec.kind]  # fmt: skip
            made = self._made[name] = make(name, spec.help, labels=list(spec.labels))
        return made


class HiveCollector(Collector):
    """Renders one hive's modules and snapshots (see the module docstring)."""

    def __init__(self, hive: Hive, *, per_node: Sequence[str] = ()) -> None:
        self._hive = hive
        self._per_node = list(per_node)  # nodes that get per-node series; no others

    def collect(self) -> Iterable[Metric]:
        out = Families()
        out.touch("hive")
        states = self._modules(out)
        for module, command in self._snapshot_commands():
            if states.get(module, "running") not in ("running", "finished"):
                out.add("beehive_metrics_source_up", [module], 0)  # its command is stale
                continue
            try:
                snapshot = command(nodes=self._per_node)
                _RENDERERS[snapshot["kind"]](out, module, snapshot)
            except Exception as exc:  # one module's failure must not fail the scrape
                log.warning("metrics: cannot read %s's snapshot: %s", module, exc)
                out.add("beehive_metrics_source_up", [module], 0)
                continue
            out.add("beehive_metrics_source_up", [module], 1)
        return out

    def _snapshot_commands(self) -> list[tuple[str, Callable[..., dict[str, Any]]]]:
        suffix = "." + probes.METRICS
        commands = sorted(self._hive.commands.items())
        return [(name[: -len(suffix)], func) for name, func in commands if name.endswith(suffix)]

    def _modules(self, out: Families) -> dict[str, str]:
        """The hive's families; returns each module's state."""
        infos = self._hive.modules()
        for info in infos:
            name, box = info.name, info.mailbox
            for state in STATES:
                out.add("beehive_module_state", [name, state], float(info.state == state))
            out.add("beehive_module_restarts_total", [name], info.restarts)
            out.add("beehive_module_failures_total", [name], info.failures)
            out.add("beehive_mailbox_depth", [name], box.depth)
            out.add("beehive_mailbox_capacity", [name], box.capacity)
            out.add("beehive_mailbox_received_total", [name], box.received)
            out.add("beehive_mailbox_delivered_total", [name], box.delivered)
            out.add("beehive_mailbox_dropped_total", [name], box.dropped)
            out.add("beehive_mailbox_oldest_age_seconds", [name], box.oldest_age)
        letters = dict(self._hive.dead_letters.by_module)
        names = {info.name for info in infos}
        other = sum(n for module, n in letters.items() if module not in names)
        for module in sorted(names):
            out.add("beehive_dead_letters_total", [module], letters.get(module, 0))
        out.add("beehive_dead_letters_total", ["other"], other)
        return {info.name: info.state for info in infos}


def _le(bound: float) -> str:
    """A bucket's upper bound as Prometheus writes it (Go's float formatting)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


# --- one renderer per snapshot kind ------------------------------------------------


def _cloudhub(out: Families, module: str, data: dict[str, Any]) -> None:
    out.touch("cloudhub")
    for key in ("nodes_connected", "nodes_disconnected"):
        out.add(f"beehive_cloudhub_{key}", [], data[key])
    out.add("beehive_cloudhub_messages_queued", [], data["queued"])
    out.add("beehive_cloudhub_messages_in_flight", [], data["in_flight"])
    for key in ("sent", "acked", "resent"):
        out.add(f"beehive_cloudhub_messages_{key}_total", [], data[key])
    out.histogram("beehive_cloudhub_delivery_latency_seconds", [], data["delivery_seconds"])
    out.histogram("beehive_end_to_end_latency_seconds", [], data["end_to_end_seconds"])
    handshakes = data["handshakes"]
    out.add("beehive_cloudhub_handshakes_total", ["accepted", "ok"], handshakes["accepted"])
    for result in ("refused", "failed"):
        for reason, count in sorted(handshakes[result].items()):
            out.add("beehive_cloudhub_handshakes_total", [result, reason], count)
    out.add("beehive_cloudhub_handshakes_pending", [], data["pending_handshakes"])
    out.add("beehive_cloudhub_upstream_dropped_total", [], data.get("upstream_dropped", 0))
    for node, row in sorted(data["per_node"].items()):
        out.add("beehive_cloudhub_node_connected", [node], float(row["connected"]))
        for key in ("queued", "in_flight"):
            out.add(f"beehive_cloudhub_node_messages_{key}", [node], row[key])
        for key in ("sent", "acked", "resent"):
            out.add(f"beehive_cloudhub_node_messages_{key}_total", [node], row[key])
    owning = data.get("ownership")
    if owning is not None:
        out.add("beehive_replica_nodes_owned", [], owning["owned"])
        out.add("beehive_replica_sessions_rebalanced_total", [], owning.get("rebalanced", 0))
        for result, key in (("written", "claims_written"), ("conflict", "claim_conflicts"),
                            ("failed", "claims_failed")):  # fmt: skip
            out.add("beehive_replica_claims_total", [result], owning.get(key, 0))
        out.add("beehive_replica_nodes_taken_over_total", [], owning["taken"])
        out.add("beehive_replica_unowned_dropped_total", [], owning["dropped"])
    sync = data.get("objectsync")
    if sync is not None:
        out.add("beehive_objectsync_pending", [], sync["pending"])
        out.add("beehive_objectsync_lag_seconds", [], sync["lag"])
        out.add("beehive_objectsync_writes_total", [], sync["writes"])
        out.add("beehive_objectsync_failures_total", [], sync["failures"])
        out.add("beehive_objectsync_conflicts_total", [], sync["conflicts"])
    _kube_requests(out, module, data.get("kube_requests"))
    _certificates(out, module, data.get("certificates") or {})


def _edgecontroller(out: Families, module: str, data: dict[str, Any]) -> None:
    out.touch("edgecontroller")
    for rtype, result, count in data["reports"]:
        out.add("beehive_edgecontroller_reports_total", [rtype, result], count)
    for watch in data["watches"]:
        resource = watch["resource"]
        out.add("beehive_edgecontroller_watch_synced", [resource], float(watch["synced"]))
        for phase in PHASES:
            value = float(watch["phase"] == phase)
            out.add("beehive_edgecontroller_watch_phase", [resource, phase], value)
        for key in ("restarts", "relists", "events"):
            out.add(f"beehive_edgecontroller_watch_{key}_total", [resource], watch[key])
    out.add("beehive_edgecontroller_downstream_queued", [], data["downstream_queued"])
    out.add("beehive_edgecontroller_upstream_queued", [], data["upstream_queued"])
    _kube_requests(out, module, data["kube_requests"])


def _certserver(out: Families, module: str, data: dict[str, Any]) -> None:
    _certificates(out, module, data["certificates"])
    if data.get("token_expires") is not None:
        out.add("beehive_join_token_expiry_timestamp_seconds", [module], data["token_expires"])
    out.add("beehive_certserver_certificates_issued_total", [module], data["issued"])
    out.add("beehive_certserver_requests_refused_total", [module], data["refused"])


def _edgehub(out: Families, module: str, data: dict[str, Any]) -> None:
    out.touch("edgehub")
    labels = [module, data["node"]]
    out.add("beehive_edgehub_connected", labels, float(data["connected"]))
    out.add("beehive_edgehub_connects_total", labels, data["connects"])
    out.add("beehive_edgehub_messages_received_total", labels, data["received"])
    out.add("beehive_edgehub_messages_sent_total", labels, data["sent"])
    out.add("beehive_edgehub_outbox", labels, data["outbox"])
    _certificates(out, module, data.get("certificates") or {})


def _kube_requests(out: Families, module: str, data: dict[str, Any] | None) -> None:
    if data is None:
        return
    out.touch("kube")
    for verb, resource, code, count in data["requests"]:
        out.add("beehive_kube_requests_total", [module, verb, resource, code], count)
    for verb, resource, latency in data["latency"]:
        out.histogram("beehive_kube_request_duration_seconds", [module, verb, resource], latency)


def _certificates(out: Families, module: str, expiries: dict[str, float]) -> None:
    out.touch("certs")
    for certificate, expires in sorted(expiries.items()):
        out.add("beehive_certificate_expiry_timestamp_seconds", [module, certificate], expires)


_RENDERERS: dict[str, Callable[[Families, str, dict[str, Any]], None]] = {
    "cloudhub": _cloudhub,
    "edgecontroller": _edgecontroller,
    "certserver": _certserver,
    "edgehub": _edgehub,
}
