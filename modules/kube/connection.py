"""open_kube: turn `KubeSettings` into a reachable Kubernetes API and clients for it.

Input: `KubeSettings`; output: a `KubeConnection` whose `api_client()` builds clients of
the official `kubernetes` package. In embedded mode the API server (modules.kubeapi)
runs, with KubeEdge's CRDs installed, for the duration of the `with` block, its
kubeconfig where the settings say or in a temporary directory; in kubeconfig and
incluster modes (the pod's ServiceAccount) nothing is started.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, config

from modules.kube import crds
from modules.kube.settings import KubeSettings
from modules.kubeapi.server import EmbeddedKubeAPI


class KubeConnection:
    """A Kubernetes API to talk to; build clients with `api_client()`."""

    def __init__(
        self, kubeconfig_path: Path, context: str = "", settings: KubeSettings | None = None
    ) -> None:
        self.kubeconfig_path = kubeconfig_path  # kubeconfig file for this API
        self.context = context  # context in it; "" for its current-context
        self.settings = settings or KubeSettings()  # qps/burst for callers that pace themselves

    def api_client(self, **overrides: Any) -> client.ApiClient:
        """A new `kubernetes.client.ApiClient` per call; the caller closes it.

        Each client owns its connection pool, so a thread that holds watches open should
        have its own. `overrides` set attributes of the client `Configuration`
        (e.g. `connection_pool_maxsize=32`).
        """
        configuration = client.Configuration()
        if self.settings.mode == "incluster":  # the pod's ServiceAccount token and CA
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(self.kubeconfig_path),
                context=self.context or None,
                client_configuration=configuration,
            )
        for key, value in overrides.items():
            setattr(configuration, key, value)
        hook: Any = configuration.refresh_api_key_hook  # typed None in the client
        if hook is not None:
            setattr(configuration, "refresh_api_key_hook", throttled(hook, REFRESH_EVERY))  # noqa: B010
        return client.ApiClient(configuration)


REFRESH_EVERY = 1.0  # seconds between two runs of the client's token refresh hook


def throttled(
    hook: Callable[[Any], None], every: float, clock: Callable[[], float] = time.monotonic
) -> Callable[[Any], None]:
    """`hook` run at most once every `every` seconds.

    The kubeconfig and in-cluster loaders install a refresh hook that the client runs
    before every request: it reloads an expired token, and otherwise sets the
    configuration's host again, whose setter reads every environment variable for
    proxies. That was a tenth of a replica's Python time during a takeover. Tokens
    expire in minutes; a second's delay in noticing is harmless.
    """
    last = -float("inf")  # when the hook last ran

    def run(configuration: Any) -> None:
        nonlocal last
        now = clock()
        if now - last >= every:
            last = now
            hook(configuration)

    return run


def _default_kubeconfig() -> Path:
    for candidate in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return Path.home() / ".kube" / "config"


@contextmanager
def open_kube(settings: KubeSettings) -> Iterator[KubeConnection]:
    """Yield a connection for `settings`, starting and stopping an embedded server if asked.

    Raises:
        OSError: the embedded server could not listen on the port.
        FileNotFoundError: kubeconfig mode and no kubeconfig file exists.
    """
    if settings.mode == "incluster":
        yield KubeConnection(Path(), "", settings)  # no kubeconfig file: see api_client
        return
    if settings.mode == "kubeconfig":
        path = Path(settings.kubeconfig) if settings.kubeconfig else _default_kubeconfig()
        if not path.exists():
            raise FileNotFoundError(f"kubeconfig not found: {path}")
        yield KubeConnection(path, settings.context, settings)
        return
    with (
        tempfile.TemporaryDirectory(prefix="beehive-kube-") as tmp,
        EmbeddedKubeAPI(port=settings.port, data_path=settings.data or None) as server,
    ):
        target = Path(settings.kubeconfig) if settings.kubeconfig else Path(tmp) / "kubeconfig"
        path = server.write_kubeconfig(target)
        connection = KubeConnection(path, "", settings)
        with connection.api_client() as api_client:
            crds.install(api_client)  # KubeEdge's CRDs, as a KubeEdge cluster has them
        yield connection
