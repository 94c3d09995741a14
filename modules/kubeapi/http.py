"""The HTTP/1.1 transport: sockets in, `KubeApi` calls, bytes out.

A `ThreadingHTTPServer` with keep-alive; one thread per connection. A request is read
(body capped at 3 MiB, answered 413 beyond, as kube-apiserver), handed to
`KubeApi.handle`, and the answer written in a single send. A watch (`?watch=true` or a
/watch/ path) is answered with a chunked stream fed by `WatchStream`. The only logic
here is framing.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from modules.kubeapi import errors
from modules.kubeapi.api import MAX_BODY_BYTES, KubeApi, Response
from modules.kubeapi.store import encode

_TRUE = frozenset({"true", "1"})
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: KubeHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged; the API server's audit log is out of scope."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        path, _, query_text = self.path.partition("?")
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        body = self._read_body()
        if body is None:
            return
        if method == "GET" and (query.get("watch", "") in _TRUE or "/watch/" in path):
            self._watch(path, query)
            return
        api: KubeApi = self.server.api
        self._send(api.handle(method, path, query, self.headers.get("Content-Type", ""), body))

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            exc = errors.too_large(MAX_BODY_BYTES)
            self._send(Response(exc.code, encode(exc.status())), close=True)
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response, *, close: bool = False) -> None:
        head = (
            f"HTTP/1.1 {response.code} {_REASONS.get(response.code, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(response.body)}\r\n"
        )
        if close:
            head += "Connection: close\r\n"
            self.close_connection = True
        self.wfile.write(head.encode() + b"\r\n" + response.body)

    def _watch(self, path: str, query: dict[str, str]) -> None:
        api: KubeApi = self.server.api
        try:
            target, rtype = api.resolve(path)
            if rtype is None or target.name:
                raise errors.unknown_resource()
            stream = api.watch(rtype, target, query)
        except errors.ApiError as exc:
            self._send(Response(exc.code, encode(exc.status())))
            return
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for batch in stream:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(batch), batch))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


class KubeHTTPServer(ThreadingHTTPServer):
    """Serves one `KubeApi`; `close_all` drops open connections on stop."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], api: KubeApi) -> None:
        super().__init__(address, _Handler)
        self.api = api  # what requests are answered from
        self._connections: set[socket.socket] = set()  # open client sockets
        self._connections_lock = threading.Lock()  # guards _connections

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_all(self) -> None:
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
