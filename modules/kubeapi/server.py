"""EmbeddedKubeAPI: the API server as an object that starts, serves and stops.

Wires the pieces: a `KubeApi` (store, optionally persisted to sqlite) behind a
`KubeHTTPServer` on a background thread, serving HTTPS with a CA of its own
(`serving.py`). Output for clients: `url` and a kubeconfig (`kubeconfig()`, or an
owner-only file from `write_kubeconfig`) with the CA and the token, which the official
client and kubectl read. Every request but the health and version paths must carry the
server's bearer `token`, random per start, or kept in the data file with the CA when
there is one (so a kubeconfig outlives restarts); it listens on loopback by default.
There is no authorization beyond that: whoever has the token may do anything.
"""

from __future__ import annotations

import base64
import secrets
import threading
from pathlib import Path
from types import TracebackType

import yaml

from modules import private
from modules.kubeapi import serving
from modules.kubeapi.api import KubeApi
from modules.kubeapi.http import KubeHTTPServer
from modules.kubeapi.persistence import SqlitePersistence

CONTEXT_NAME = "beehive-embedded"
_TOKEN_KEY = "bearer-token"  # the name the token is kept under in the data file


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
        self._token = ""  # the bearer token clients must send, while started
        self._ca_pem = b""  # the CA that signed the serving certificate, while started

    @property
    def url(self) -> str:
        """Base URL, e.g. https://127.0.0.1:43121; only valid once started."""
        if self._http is None:
            raise RuntimeError("the API server is not started")
        host, port = self._http.server_address[:2]
        return f"https://{host!s}:{port}" if ":" not in host else f"https://[{host}]:{port}"

    @property
    def token(self) -> str:
        """The bearer token requests must carry; only valid once started."""
        if not self._token:
            raise RuntimeError("the API server is not started")
        return self._token

    @property
    def ca_pem(self) -> bytes:
        """PEM of the CA clients verify the server with; only valid once started."""
        if not self._ca_pem:
            raise RuntimeError("the API server is not started")
        return self._ca_pem

    def start(self) -> EmbeddedKubeAPI:
        """Open the store (loading `data_path`, 0600) and listen; returns self.

        Raises:
            OSError: the data file cannot be created, or the port is taken.
            ValueError: the CA kept in the data file is unusable.
        """
        if self._http is not None:
            return self
        self._persistence = SqlitePersistence(self._data_path) if self._data_path else None
        self._api = KubeApi(persistence=self._persistence)
        token, ca = self._credentials()
        tls = serving.serving(ca, self._host)
        self._token, self._ca_pem = token, tls.ca_pem
        self._http = KubeHTTPServer(
            (self._host, self._port), self._api, token=self._token, ssl_context=tls.context
        )
        self._api.base_url = self.url
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            name="kubeapi-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def _credentials(self) -> tuple[str, bytes]:
        """The bearer token and the serving CA: new ones, or those kept in the data file
        (kept there first if it has none)."""
        keep = self._persistence
        if keep is None:
            return secrets.token_urlsafe(32), serving.new_ca()
        token = keep.keep_key(_TOKEN_KEY, secrets.token_urlsafe(32).encode()).decode()
        return token, keep.load_key(serving.CA_KEY) or keep.keep_key(
            serving.CA_KEY, serving.new_ca()
        )

    def stop(self) -> None:
        """Stop listening, end watches, close connections, close the file.

        The listening socket goes first: the clients of the watches that end reconnect
        at once, and are then refused rather than reset after their TCP handshake (a
        reset that urllib3 meets only in its TLS handshake, leaking the socket).
        """
        if self._http is None or self._api is None:
            return
        self._http.shutdown()
        self._api.shutdown()
        self._http.close_all()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._persistence is not None:
            with self._api.cond:
                self._persistence.close()
        self._http = self._api = self._persistence = self._thread = None
        self._token, self._ca_pem = "", b""

    def kubeconfig(self) -> dict[str, object]:
        """A kubeconfig document for this server, with its token (for
        `kubernetes.config.new_client_from_config_dict`); only valid once started."""
        return kubeconfig(self.url, self.token, self.ca_pem)

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write `kubeconfig()` to `path`, replacing it atomically by an owner-only file
        (0600: it holds the token); missing folders are made as usual.

        Raises:
            OSError: the file cannot be written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        document = yaml.safe_dump(self.kubeconfig(), sort_keys=False)
        return private.write_file(target, document.encode())

    def __enter__(self) -> EmbeddedKubeAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def kubeconfig(url: str, token: str, ca_pem: bytes) -> dict[str, object]:
    """A kubeconfig document for a server at `url` that takes the bearer `token` and
    whose certificate `ca_pem` signed."""
    cluster = {"server": url, "certificate-authority-data": base64.b64encode(ca_pem).decode()}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": "default"},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
