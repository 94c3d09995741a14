"""The ``metrics`` module: /metrics, /healthz and /readyz for Prometheus and Kubernetes.

Input: the hive it runs in (module states, mailboxes, dead letters) and the
``<module>.metrics`` / ``.health`` / ``.ready`` admin commands the other modules
offer (`modules.probes`), read at each request; it handles no messages. Output:
an HTTP server (`server.MetricsServer`) on the settings' address and port, with
one registry: the hive's collector (`collector.HiveCollector`) and the client
library's process, platform and garbage-collector collectors. The admin command
``<name>.address`` says where it listens (useful with ``port: 0``).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from beehive import Module
from modules.metrics import collector, health, server
from modules.metrics.settings import MetricsSettings

log = logging.getLogger("modules.metrics")


class Metrics(Module):
    """Serves the hive's metrics and probes over HTTP (see the module docstring)."""

    settings_type = MetricsSettings

    def on_start(self) -> None:
        settings: MetricsSettings = self.settings or MetricsSettings()
        registry = CollectorRegistry()
        registry.register(collector.HiveCollector(self.hive, per_node=settings.per_node))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        timeout = settings.probe_timeout
        self._server = server.MetricsServer(
            address=settings.address,
            port=settings.port,
            registry=registry,
            health=lambda: health.healthy(self.hive, timeout=timeout),
            ready=lambda: health.ready(self.hive, timeout=timeout),
        )
        port = self._server.start()
        self.hive.register_command(f"{self.module_name}.address", self._address)
        log.info("metrics: serving /metrics, /healthz and /readyz on http://%s:%d",
                 settings.address, port)  # fmt: skip

    def on_stop(self) -> None:
        self._server.stop()

    def _address(self) -> dict[str, Any]:
        return {"address": self._server.address, "port": self._server.port}
