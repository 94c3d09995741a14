"""EmbeddedKubeAPI: the API server as an object that starts, serves and stops.

Wires the pieces: a `KubeApi` (store, optionally persisted to sqlite) behind a
`KubeHTTPServer` on a background thread. Output for clients: `url` and a kubeconfig
file (`write_kubeconfig`) that the official client and kubectl read. There is no
authentication; it listens on loopback by default.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

import yaml

from modules.kubeapi.api import KubeApi
from modules.kubeapi.http import KubeHTTPServer
from modules.kubeapi.persistence import SqlitePersistence

CONTEXT_NAME = "beehive-embedded"


class EmbeddedKubeAPI:
    """A Kubernetes API server for the built-in kinds clients commonly use, and for CRDs.

    Namespaces, pods, configmaps, secrets, nodes, service accounts (and their tokens),
    persistent volumes and claims, events, leases, volume attachments, certificate
    signing requests and custom resource definitions; see `resources.BUILTIN`.

    Args:
        host: address to listen on.
        port: TCP port; 0 picks a free one (read it back from `url`).
        data_path: sqlite file to keep state in across restarts; None keeps it in memory.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, data_path: str | None = None
    ) -> None:
        self._host = host  # listen address
        self._port = port  # requested port; the bound one is in `url`
        self._data_path = data_path  # sqlite file, or None
        self._persistence: SqlitePersistence | None = None  # open while started
        self._api: KubeApi | None = None  # the request handler, while started
        self._http: KubeHTTPServer | None = None  # the listening server, while started
        self._thread: threading.Thread | None = None  # runs serve_forever

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:43121; only valid once started."""
        if self._http is None:
            raise RuntimeError("the API server is not started")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EmbeddedKubeAPI:
        """Open the store (loading `data_path`) and listen; returns self."""
        if self._http is not None:
            return self
        self._persistence = SqlitePersistence(self._data_path) if self._data_path else None
        self._api = KubeApi(persistence=self._persistence)
        self._http = KubeHTTPServer((self._host, self._port), self._api)
        self._api.base_url = self.url
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            name="kubeapi-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End watches, close connections and the listening socket, close the file."""
        if self._http is None or self._api is None:
            return
        self._api.shutdown()
        self._http.shutdown()
        self._http.close_all()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._persistence is not None:
            with self._api.cond:
                self._persistence.close()
        self._http = self._api = self._persistence = self._thread = None

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig whose current context points at this server."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(kubeconfig(self.url), sort_keys=False))
        return target

    def __enter__(self) -> EmbeddedKubeAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def kubeconfig(url: str) -> dict[str, object]:
    """A kubeconfig document for an unauthenticated server at `url`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT_NAME, "user": {}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": "default"},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
