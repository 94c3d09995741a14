"""CertHTTPSServer: moves bytes between HTTPS connections and a `CertService`.

Input: TCP connections on the certificate server's port; output: the service's
`Response`s. It only enforces what the logic cannot see, against slow or hostile
clients (cf. CVE-2022-31075 and the slowloris class):

- at most `max_connections` connections at once; more are closed at accept;
- the TLS handshake must finish within `handshake_timeout` (a total deadline, not
  per read), in the connection's own thread, so a silent client blocks nobody;
- the request (line, headers, body) must arrive within `request_timeout` of the
  handshake; the request line and headers are bounded by `http.server` (64 KiB a
  line, 100 headers) and the body by the service (413 before reading it);
- one request per connection.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import logging
import selectors
import socket
import ssl
import threading
import time
from typing import Any

from modules.certs.server import Authorized, CertService, Response
from modules.certs.settings import CertSettings

log = logging.getLogger("modules.certs.https")


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket, each read bounded by what is left until `deadline`."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline  # time.monotonic() by which the request must be in

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request not received in time")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    server_version = "certserver"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request
        deadline = time.monotonic() + self.server.settings.request_timeout
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))
        self.wfile = self.connection.makefile("wb", buffering=0)

    def finish(self) -> None:
        self.wfile.close()
        self.rfile.close()

    def _dispatch(self) -> None:
        self.close_connection = True
        try:
            result = self._answer()
        except OSError:
            raise  # the connection failed: _serve_one logs it
        except Exception:  # a bug must not kill the connection's thread unanswered
            log.exception("certserver: %s %s failed", self.command, self.path[:64])
            result = Response(500, b"internal error\n")
        if result is not None:
            self._send(result)

    def _answer(self) -> Response | None:
        """The service's answer, reading the body if it asks for it; None when the
        client went away or ran out of time before sending all of it."""
        peer = self.connection.getpeercert(binary_form=True)
        try:
            length: int | None = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = None
        if (length is not None and length < 0) or "Transfer-Encoding" in self.headers:
            length = None
        service = self.server.service
        result = service.head(
            self.command,
            self.path,
            {key.lower(): value for key, value in self.headers.items()},
            peer_cert=peer,
            content_length=length,
        )
        if isinstance(result, Authorized):
            body = self.rfile.read(result.length)
            if len(body) < result.length:
                return None  # the client went away or ran out of time
            return service.issue(result, body)
        if length and length <= self.server.settings.max_body:
            self.rfile.read(length)  # drained, or the close would reset the client's read
        return result

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def _send(self, response: Response) -> None:
        self.connection.settimeout(self.server.settings.request_timeout)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("certserver: %s %s", self.client_address[0], format % args)


class _Server(http.server.HTTPServer):
    """One named thread per connection, capped; TLS handshake in that thread."""

    def __init__(self, service: CertService, context: ssl.SSLContext, settings: CertSettings):
        super().__init__((settings.address, settings.port), _Handler)
        self.service = service  # answers the requests
        self.context = context  # server side TLS (client certificate optional)
        self.settings = settings  # limits and timeouts
        self.slots = threading.BoundedSemaphore(settings.max_connections)  # open connections
        self.active: dict[threading.Thread, socket.socket] = {}  # for stop() to cut short
        self.lock = threading.Lock()  # guards active and the counters
        self.over_capacity = 0  # connections closed at accept: too many open
        self.handshake_failures = 0  # handshakes that failed or timed out

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with self.lock:
                self.over_capacity += 1
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), name="beehive-certserver-conn"
        )
        with self.lock:
            self.active[thread] = request
        thread.start()

    def _serve_one(self, request: socket.socket, client_address: Any) -> None:
        try:
            tls = self._handshake(request)
            if tls is not None:
                with tls:
                    _Handler(tls, client_address, self)
        except OSError as exc:
            log.debug("certserver: connection from %s: %s", client_address[0], exc)
        finally:
            self.shutdown_request(request)
            with self.lock:
                self.active.pop(threading.current_thread(), None)
            self.slots.release()

    def _handshake(self, sock: socket.socket) -> ssl.SSLSocket | None:
        deadline = time.monotonic() + self.settings.handshake_timeout
        sock.setblocking(False)
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.lock:  # `sock` is detached now; stop() must cut `tls`
            self.active[threading.current_thread()] = tls
        with selectors.DefaultSelector() as selector:
            selector.register(tls, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0:
                        raise TimeoutError("TLS handshake not finished in time")
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    selector.modify(tls, selectors.EVENT_READ)
                except ssl.SSLWantWriteError:
                    selector.modify(tls, selectors.EVENT_WRITE)
                except (OSError, ValueError) as exc:
                    with self.lock:
                        self.handshake_failures += 1
                    log.debug("certserver: handshake failed: %s", exc)
                    tls.close()
                    return None
                selector.select(remaining)
        tls.setblocking(True)
        return tls

    def cut_all(self) -> list[threading.Thread]:
        """Shut every open connection down; returns their threads to join."""
        with self.lock:
            items = list(self.active.items())
        for _, sock in items:
            # The plain socket's shutdown: wakes a blocked read without touching the TLS
            # state that the connection's own thread is using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return [thread for thread, _ in items]


class CertHTTPSServer:
    """The certificate server on `settings.address`:`settings.port` (0: any free port)."""

    def __init__(
        self, service: CertService, context: ssl.SSLContext, settings: CertSettings
    ) -> None:
        self._server = _Server(service, context, settings)  # bound at construction
        self._thread: threading.Thread | None = None  # the accept loop

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def stats(self) -> dict[str, int]:
        """Connections closed for capacity, failed handshakes, and open connections."""
        with self._server.lock:
            return {
                "over_capacity": self._server.over_capacity,
                "handshake_failures": self._server.handshake_failures,
                "open": len(self._server.active),
            }

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="beehive-certserver-http"
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut open connections and wait for their threads."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        for thread in self._server.cut_all():
            thread.join(timeout)
        self._server.server_close()
