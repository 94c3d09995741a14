"""The HTTP/1.1 transport: sockets in, `KubeApi` calls, bytes out.

One event-loop thread (`selectors`) accepts connections, reads them without blocking,
cuts complete requests out of each connection's buffer (`take_request`; bodies capped at
3 MiB, answered 413 beyond, as kube-apiserver), answers them from `KubeApi.handle` and
writes the answers, buffering what the socket does not take at once; pipelined requests
are answered in order. A watch (`?watch=true` or a /watch/ path) moves its connection to
a thread of its own, which streams `WatchStream`'s batches as HTTP chunks with blocking
sends and hands the connection back to the loop when the watch ends. So requests cost no
thread switch, and a slow watcher delays only itself. The client and kubectl send
Content-Length bodies: chunked request bodies and `Expect` are not supported. A
connection refused for its framing (400, 413) is half-closed and read on (up to 16 MiB,
dropped), so that a client still sending the refused body gets to read the answer.

With an `ssl.SSLContext` every connection is TLS: the loop runs each handshake without
blocking, then reads and writes through the TLS layer (a watch thread sends through it
with blocking sends; the loop then peeks at the raw socket only, to see the client go).

Each request must carry ``Authorization: Bearer <the server's token>`` (compared in
constant time), else it is answered 401 with kube-apiserver's `Status` before anything
else looks at it; only the health and version paths, which kube-apiserver shows to
anyone (its system:public-info-viewer role), are served without it.
"""

from __future__ import annotations

import contextlib
import hmac
import queue
import selectors
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl

from modules.kubeapi import errors
from modules.kubeapi.api import MAX_BODY_BYTES, KubeApi, Response
from modules.kubeapi.store import encode
from modules.kubeapi.watch import WatchStream

_TRUE = frozenset({"true", "1"})
_MAX_HEAD = 64 * 1024  # request line and headers
_RECV = 256 * 1024  # bytes read per readiness event
_LINGER = 16 * 1024 * 1024  # bytes still read and dropped after refusing a request
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}
_OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
_CLOSE = "Connection: close\r\n"
_WATCH_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request; `keep_alive` is False when the connection ends after it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    keep_alive: bool
    authorization: str = ""  # the Authorization header, "" without one

    @property
    def watch(self) -> bool:
        return self.method == "GET" and (
            self.query.get("watch", "") in _TRUE or "/watch/" in self.path
        )


def take_request(inbox: bytearray) -> Request | None:
    """Remove one complete request from the front of `inbox`; None until one is there.

    Raises:
        errors.ApiError: 400 for bytes that are not an HTTP/1.x request, 413 for a body
            over the limit; the connection is then closed.
    """
    end = inbox.find(b"\r\n\r\n")
    if end < 0:
        if len(inbox) > _MAX_HEAD:
            raise errors.bad_request("request header too large")
        return None
    line, *fields = inbox[:end].decode("latin-1").split("\r\n")
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise errors.bad_request(f"malformed request line {line[:80]!r}")
    headers: dict[str, str] = {}
    for field in fields:
        name, colon, value = field.partition(":")
        if not colon:
            raise errors.bad_request(f"malformed header {field[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    length = _content_length(headers.get("content-length", ""))
    start = end + 4
    if len(inbox) < start + length:
        return None
    body = bytes(inbox[start : start + length])
    del inbox[: start + length]
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" and (parts[2] != "HTTP/1.0" or connection == "keep-alive")
    path, _, text = parts[1].partition("?")
    query = dict(parse_qsl(text, keep_blank_values=True)) if text else {}
    return Request(
        parts[0],
        path,
        query,
        headers.get("content-type", ""),
        body,
        keep_alive,
        headers.get("authorization", ""),
    )


def _content_length(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise errors.bad_request(f"invalid Content-Length {text[:20]!r}")
    if int(text) > MAX_BODY_BYTES:
        raise errors.too_large(MAX_BODY_BYTES)
    return int(text)


def response_bytes(response: Response | errors.ApiError, *, close: bool = False) -> bytes:
    """A complete HTTP/1.1 response with a JSON body."""
    if isinstance(response, errors.ApiError):
        response = Response(response.code, encode(response.status()))
    head = (
        f"HTTP/1.1 {response.code} {_REASONS.get(response.code, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(response.body)}\r\n"
        f"{_CLOSE if close else ''}\r\n"
    )
    return head.encode() + response.body


class _Connection:
    """A client socket and the bytes in flight on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock  # non-blocking while the loop owns it
        self.inbox = bytearray()  # received, not yet parsed
        self.outbox = b""  # answered, not yet taken by the socket
        self.closing = False  # close once the outbox is empty
        self.linger = False  # on closing, read and drop what the client still sends
        self.draining = 0  # bytes left to drop while lingering; 0 when not lingering
        self.watch: WatchStream | None = None  # streamed by a watch thread, or None
        self.handshaking = isinstance(sock, ssl.SSLSocket)  # TLS handshake not done yet


class KubeHTTPServer:
    """Serves one `KubeApi` on `address` once `serve_forever` runs (on a thread of its own)."""

    def __init__(
        self, address: tuple[str, int], api: KubeApi, *, token: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:  # fmt: skip
        self.api = api  # what requests are answered from
        self._token = token.encode()  # the bearer token every request must carry
        self._tls = ssl_context  # wraps every accepted connection, or None for plain HTTP
        self._listener = socket.create_server(address)  # accepting socket
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()  # the loop's readiness source
        self._waker, self._wake = socket.socketpair()  # wakes the loop from other threads
        self._returned: queue.SimpleQueue[_Connection] = queue.SimpleQueue()  # ended watches
        self._connections: set[_Connection] = set()  # every open connection
        self._lock = threading.Lock()  # guards _connections
        self._stopping = False  # set by shutdown; the loop then ends
        self._stopped = threading.Event()  # set when the loop has ended

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        """Run the loop until `shutdown`; closes the listening socket and the connections
        it owns on the way out."""
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._waker, selectors.EVENT_READ, None)
        try:
            while not self._stopping:
                for key, events in self._selector.select():
                    if self._selector.get_map().get(key.fd) is not key:
                        continue  # closed or handed to a watch earlier in this batch
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._waker:
                        self._resume()
                    elif key.data.watch is not None:
                        self._check_watcher(key.data)
                    elif key.data.handshaking:
                        self._handshake(key.data)
                    elif key.data.draining:
                        self._drain(key.data)
                    elif events & selectors.EVENT_WRITE:
                        self._flush(key.data)
                    else:
                        self._receive(key.data)
        finally:
            self._selector.unregister(self._listener)
            self._listener.close()  # no more connections queue up unanswered
            for key in list(self._selector.get_map().values()):
                if isinstance(key.data, _Connection):
                    self._close(key.data)
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the loop and wait for it to end."""
        self._stopping = True
        self._wake.send(b"\0")
        self._stopped.wait()

    def close_all(self) -> None:
        """Shut down every open connection, ending the watches' blocking sends."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                # the plain socket's: a TLS socket's own would drop its TLS state under
                # the watch thread that may be sending on it
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)

    def server_close(self) -> None:
        """Close every socket, including connections a watch thread still holds (their
        sends fail and the thread ends; it may hand the connection back afterwards)."""
        while not self._returned.empty():
            self._close(self._returned.get())
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            conn.sock.close()
        for sock in (self._listener, self._waker, self._wake):
            sock.close()
        self._selector.close()

    # -- the loop ----------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:  # none left, or out of descriptors: retried on the next event
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            if self._tls is not None:
                try:
                    sock = self._tls.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                except (OSError, ValueError):
                    sock.close()
                    continue
            conn = _Connection(sock)
            with self._lock:
                self._connections.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _handshake(self, conn: _Connection) -> None:
        """Take the TLS handshake a step further; wait for what it wants next."""
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        except (OSError, ValueError):  # not TLS, a certificate it refuses, gone
            self._selector.unregister(conn.sock)
            self._close(conn)
            return
        conn.handshaking = False
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.sock.pending():  # a request read with the handshake: select will not say
            self._receive(conn)

    def _receive(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_RECV)
            while isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
                data += conn.sock.recv(_RECV)  # decrypted already: select will not say
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(conn.sock)
            self._close(conn)
            return
        conn.inbox += data
        self._answer(conn)

    def _answer(self, conn: _Connection) -> None:
        """Answer the complete requests in the inbox while the socket takes the answers."""
        while not conn.outbox and not conn.closing:
            try:
                request = take_request(conn.inbox)
            except errors.ApiError as exc:
                conn.closing = conn.linger = True  # the rest of its body may be on the way
                self._send(conn, response_bytes(exc, close=True))
                return
            if request is None:
                return
            if not self._authenticated(request):
                conn.closing = not request.keep_alive
                self._send(conn, response_bytes(errors.unauthorized(), close=conn.closing))
                continue
            if request.watch:
                self._start_watch(conn, request)
                return
            response = self.api.handle(
                request.method, request.path, request.query, request.content_type, request.body
            )
            conn.closing = not request.keep_alive
            self._send(conn, response_bytes(response, close=conn.closing))

    def _authenticated(self, request: Request) -> bool:
        """The request carries the token (or asks for a path open to anyone)."""
        if request.path in _OPEN_PATHS:
            return True
        scheme, _, given = request.authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # latin-1, as the header was decoded: any text encodes, and only the token matches
        return hmac.compare_digest(given.strip().encode("latin-1"), self._token)

    def _send(self, conn: _Connection, data: bytes) -> None:
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0  # TLS: retried with the same bytes, as OpenSSL requires
        except OSError:
            sent = len(data)  # the peer is gone; the next read sees it
        conn.outbox = data[sent:]
        if conn.outbox:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        elif conn.closing and conn.linger:
            self._start_draining(conn)
        elif conn.closing:
            self._selector.unregister(conn.sock)
            self._close(conn)

    def _start_draining(self, conn: _Connection) -> None:
        """End our side but read on, as net/http's closeWriteAndWait: a client still
        sending the body we refused (413) then reads our answer, which a close with its
        bytes unread would destroy (the kernel answers them with a reset)."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
        conn.draining = _LINGER
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _drain(self, conn: _Connection) -> None:
        try:  # raw bytes, TLS records included: nothing of it is answered
            data = socket.socket.recv(conn.sock, _RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.draining = max(conn.draining - len(data), 0) if data else 0
        if not conn.draining:
            self._selector.unregister(conn.sock)
            self._close(conn)

    def _flush(self, conn: _Connection) -> None:
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        self._send(conn, conn.outbox)
        if not conn.outbox:
            self._answer(conn)

    def _resume(self) -> None:
        """Take back the connections of ended watches: close them or serve them again."""
        with contextlib.suppress(BlockingIOError):
            self._waker.recv(4096)
        while not self._returned.empty():
            conn = self._returned.get()
            conn.watch = None
            if conn.sock in self._selector.get_map():
                self._selector.unregister(conn.sock)
            if conn.closing or self._stopping:
                self._close(conn)
                continue
            conn.sock.setblocking(False)
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            self._answer(conn)

    def _close(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
        conn.sock.close()

    # -- watch threads -----------------------------------------------------------

    def _start_watch(self, conn: _Connection, request: Request) -> None:
        """Validate a watch and give it a thread; the loop keeps reading to see the client leave."""
        try:
            target, rtype = self.api.resolve(request.path)
            if rtype is None or target.name:
                raise errors.unknown_resource()
            conn.watch = self.api.watch(rtype, target, request.query)
        except errors.ApiError as exc:
            conn.closing = not request.keep_alive
            self._send(conn, response_bytes(exc, close=conn.closing))
            return
        conn.closing = not request.keep_alive
        conn.sock.setblocking(True)
        threading.Thread(
            target=self._stream, args=(conn, conn.watch), name="kubeapi-watch", daemon=True
        ).start()

    def _check_watcher(self, conn: _Connection) -> None:
        """A watching client sent EOF (end the watch) or data (stop looking until it ends)."""
        try:  # the plain socket's recv: TLS records are not ours to read on this thread
            peek = socket.socket.recv(conn.sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            peek = b""
        self._selector.unregister(conn.sock)
        if not peek and conn.watch is not None:
            conn.watch.cancel()

    def _stream(self, conn: _Connection, stream: WatchStream) -> None:
        """On a watch thread: send the stream with blocking sends, then hand the connection back."""
        try:
            conn.sock.sendall(_WATCH_HEAD)
            for batch in stream:
                conn.sock.sendall(b"%x\r\n%s\r\n" % (len(batch), batch))
            conn.sock.sendall(b"0\r\n\r\n")
        except OSError:
            conn.closing = True
        self._returned.put(conn)
        with contextlib.suppress(OSError):
            self._wake.send(b"\0")
