"""The HTTP/1.1 transport: sockets in, `KubeApi` calls, bytes out.

A `ThreadingTCPServer` with keep-alive; one thread per connection. Each request's line
and headers are read from the buffered socket (the body capped at 3 MiB, answered 413
beyond, as kube-apiserver), handed to `KubeApi.handle`, and the answer written in a
single send. A watch (`?watch=true` or a /watch/ path) is answered with a chunked stream
fed by `WatchStream`. The only logic here is framing: the client and kubectl send
Content-Length bodies, so chunked request bodies and `Expect` are not supported.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from urllib.parse import parse_qsl

from modules.kubeapi import errors
from modules.kubeapi.api import MAX_BODY_BYTES, KubeApi, Response
from modules.kubeapi.store import encode

_TRUE = frozenset({"true", "1"})
_MAX_LINE = 65536  # longest request or header line accepted
_MAX_HEADERS = 100  # as http.client's limit
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
}
_CLOSE = "Connection: close\r\n"
_WATCH_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)


class _BadRequest(Exception):
    """The bytes received are not an HTTP/1.x request; the connection is closed."""


class _Handler(socketserver.StreamRequestHandler):
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

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while self._serve_one():
                pass

    def _serve_one(self) -> bool:
        """Answer one request; False once the connection is to be closed."""
        try:
            request = self._read_head()
        except _BadRequest as exc:
            self._send(errors.bad_request(str(exc)), close=True)
            return False
        if request is None:
            return False
        method, target, headers, keep_alive = request
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(errors.too_large(MAX_BODY_BYTES), close=True)
            return False
        body = self.rfile.read(length) if length else b""
        path, _, query_text = target.partition("?")
        query = dict(parse_qsl(query_text, keep_blank_values=True)) if query_text else {}
        if method == "GET" and (query.get("watch", "") in _TRUE or "/watch/" in path):
            return self._watch(path, query) and keep_alive
        response = self.server.api.handle(
            method, path, query, headers.get("content-type", ""), body
        )
        self._send(response, close=not keep_alive)
        return keep_alive

    def _read_head(self) -> tuple[str, str, dict[str, str], bool] | None:
        """(method, target, lower-cased headers, keep-alive), None at a clean end."""
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or len(line) > _MAX_LINE:
            raise _BadRequest(f"malformed request line {line[:80]!r}")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            field = self.rfile.readline(_MAX_LINE + 1)
            if field in (b"\r\n", b"\n", b""):
                break
            name, colon, value = field.decode("latin-1").partition(":")
            if not colon:
                raise _BadRequest(f"malformed header {field[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        else:
            raise _BadRequest("too many headers")
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (
            parts[2] != "HTTP/1.0" or connection == "keep-alive"
        )
        return parts[0], parts[1], headers, keep_alive

    def _send(self, response: Response | errors.ApiError, *, close: bool = False) -> None:
        if isinstance(response, errors.ApiError):
            response = Response(response.code, encode(response.status()))
        head = (
            f"HTTP/1.1 {response.code} {_REASONS.get(response.code, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(response.body)}\r\n"
            f"{_CLOSE if close else ''}\r\n"
        )
        self.connection.sendall(head.encode() + response.body)

    def _watch(self, path: str, query: dict[str, str]) -> bool:
        """Stream a watch; True when the connection can serve another request."""
        api = self.server.api
        try:
            target, rtype = api.resolve(path)
            if rtype is None or target.name:
                raise errors.unknown_resource()
            stream = api.watch(rtype, target, query)
        except errors.ApiError as exc:
            self._send(exc)
            return True
        send = self.connection.sendall
        send(_WATCH_HEAD)
        try:
            for batch in stream:
                send(b"%x\r\n%s\r\n" % (len(batch), batch))
            send(b"0\r\n\r\n")
        except OSError:
            return False
        return True


class KubeHTTPServer(socketserver.ThreadingTCPServer):
    """Serves one `KubeApi`; `close_all` drops open connections on stop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

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
