"""The project's ``beehive`` command: the framework's command with our modules plugged in.

Adds the built-in module names, the ``kube:`` config section (a config that has one
gets a Kubernetes connection as the ``kube`` service, starting an embedded API
server in ``mode: embedded``), the ``replica:`` section (with ``kube:``, this process
is one of several replicas: its Leases as the ``replica`` service,
`modules.replicas.service.Replica`) and the ``kube-api`` subcommand.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from beehive import cli, errors
from beehive.config import Config
from modules.certs import cli as certs_cli
from modules.cloudhub import debug as cloudhub_debug
from modules.edgecontroller import debug as edgecontroller_debug
from modules.fleet import cli as fleet_cli
from modules.kube.connection import open_kube
from modules.kube.settings import KubeSettings
from modules.kubeapi import cli as kubeapi_cli
from modules.metamanager import debug as metamanager_debug
from modules.replicas.service import Replica
from modules.replicas.settings import ReplicaSettings

log = logging.getLogger("modules.cli")

# Module names that need no ``impl:`` in a config, and their implementations.
CATALOGUE: dict[str, str] = {
    "ticker": "modules.demo:Ticker",
    "echo": "modules.demo:Echo",
    "workload": "modules.workload:Workload",
    "certserver": "modules.certs:CertServer",
    "edgecontroller": "modules.edgecontroller:EdgeController",
    "cloudhub": "modules.cloudhub:CloudHub",
    "edgehub": "modules.edgehub:EdgeHub",
    "metamanager": "modules.metamanager:MetaManager",
    "metrics": "modules.metrics:Metrics",
    "router": "modules.router:Router",
    "eventbus": "modules.eventbus:EventBus",
    "servicebus": "modules.servicebus:ServiceBus",
}

SECTIONS: dict[str, type[Any]] = {"kube": KubeSettings, "replica": ReplicaSettings}


@contextlib.contextmanager
def services(config: Config) -> Iterator[Mapping[str, Any]]:
    """Shared services for the modules: a Kubernetes connection when the config has ``kube:``."""
    if "kube" not in config.given:
        yield {}
        return
    settings: KubeSettings = config.sections["kube"]
    try:
        with open_kube(settings) as kube:
            log.info("kube: %s mode, kubeconfig %s", settings.mode, kube.kubeconfig_path)
            if "replica" not in config.given:
                yield {"kube": kube}
                return
            with _replica(kube, config.sections["replica"], config.path) as replica:
                yield {"kube": kube, "replica": replica}
    except OSError as exc:
        raise errors.BeehiveError(f"kube ({settings.mode} mode): {exc}") from None


@contextlib.contextmanager
def _replica(kube: Any, settings: ReplicaSettings, path: str) -> Iterator[Replica]:
    """This replica's Leases, held while the hive runs and released after."""
    settings.check(path)
    # No retries inside a call: the keepers try again every retry period themselves; a
    # pool for the keepers, the claims (cloudhub's 16 threads), the owner watch, the
    # router's lookups and the cleanup at once.
    with kube.api_client(retries=0, connection_pool_maxsize=24) as api_client:
        replica = Replica(api_client, settings)
        replica.start()
        try:
            yield replica
        finally:
            replica.stop()


def _load(path: str) -> Config:
    return APP.load(path)


APP: cli.App = cli.App(
    prog="beehive",
    catalogue=CATALOGUE,
    sections=SECTIONS,
    services=services,
    commands=[
        kubeapi_cli.register,
        fleet_cli.register,
        lambda sub: certs_cli.register(sub, _load),
    ],
    debug_commands=[
        cloudhub_debug.register,
        metamanager_debug.register,
        edgecontroller_debug.register,
    ],
)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, app=APP)


if __name__ == "__main__":
    raise SystemExit(main())
