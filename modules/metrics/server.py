"""The HTTP server of /metrics, /healthz and /readyz, on its own thread.

Input: GET requests (a thread per request, daemon); output: the registry in
Prometheus' text format (or OpenMetrics, when the scraper asks for it), and
``200 ok`` or ``503`` with one problem per line for the probes, as kube-apiserver's
/healthz and /readyz answer.
"""

from __future__ import annotations

import http
import http.server
import logging
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("modules.metrics")

Check = Callable[[], list[str]]  # -> problems; none: 200 ok


class MetricsServer:
    """Serves a registry and two checks at `address`:`port` (0: any free port)."""

    def __init__(
        self, *, address: str, port: int, registry: CollectorRegistry, health: Check, ready: Check
    ) -> None:
        self.address = address  # host to bind
        self.port = port  # port to bind; the bound port once started
        self._registry = registry  # what /metrics renders
        self._checks = {"/healthz": health, "/readyz": ready}  # path -> check
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Bind and serve on the thread "beehive-metrics-http"; returns the bound port.

        Raises:
            OSError: the address cannot be bound.
        """
        server_class = _Server6 if ":" in self.address else _Server
        self._server = server_class((self.address, self.port), _handler(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="beehive-metrics-http"
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def answer(self, path: str, accept: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        path = path.split("?", 1)[0]
        if path == "/metrics":
            encode, content_type = choose_encoder(accept)
            return 200, content_type, encode(self._registry)
        check = self._checks.get(path)
        if check is None:
            return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz, /readyz\n"
        problems = check()
        text = "".join(f"{problem}\n" for problem in problems) if problems else "ok\n"
        status = http.HTTPStatus.SERVICE_UNAVAILABLE if problems else http.HTTPStatus.OK
        return status, "text/plain; charset=utf-8", text.encode()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a slow scraper does not hold up a stop

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper or probe that left before its answer was written (its timeout) is
        no error; anything else is logged (socketserver printed a traceback to stderr)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            log.debug("metrics: %s left before its answer: %s", client_address, exc)
            return
        log.exception("metrics: a request from %s failed", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _handler(owner: MetricsServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                status, content_type, body = owner.answer(self.path, self.headers.get("Accept", ""))
            except Exception as exc:  # a bug in a collector: say so instead of a reset
                log.exception("metrics: %s failed", self.path)
                status, content_type = 500, "text/plain; charset=utf-8"
                body = f"{type(exc).__name__}: {exc}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: %s %s", self.address_string(), format % args)

    return Handler
