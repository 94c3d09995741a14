"""metrics: the hive's counters for Prometheus, and health and readiness for Kubernetes.

`Metrics` (module.py) serves /metrics, /healthz and /readyz; `collector` renders the
snapshots modules offer (`modules.probes`) as `catalogue` lists them; `health`
judges the probes. Only this package imports `prometheus_client`: the modules keep
plain counters and `modules.histogram`s.
"""

from modules.metrics.module import Metrics
from modules.metrics.settings import MetricsSettings

__all__ = ["Metrics", "MetricsSettings"]
