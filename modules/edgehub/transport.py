"""The edge's websocket client (websocket-client, blocking, thread-safe sends).

Input: frames to write (`send`); output: frames read (`recv`), None on a read
timeout. Only this file knows `websocket`; its exceptions (and TLS errors) become
`HubConnectionError` here, with a reason a user can act on, and never reach
module code. We open the socket (and TLS) ourselves so that the upgrade response
is read within `max_response` bytes: websocket-client alone reads a refusal's
whole body and unbounded header lines (KubeEdge's CVE-2022-31080, 1 MiB since).
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import websocket

from modules.hub import errors
from modules.hub.protocol import DEFAULT_MAX_FRAME_SIZE

MAX_RESPONSE = 1024 * 1024  # bytes of upgrade response (status, headers, body) read at most
_FRAME_HEADERS = 64 * 1024  # room for frame headers (a message may come in many fragments)
IO_TIMEOUT = 15.0  # seconds one socket read or write may stall (edgeHub's writeDeadline)
_CERT_REFUSED = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "CERTIFICATE_UNKNOWN",
                 "CERTIFICATE_EXPIRED", "DECRYPT_ERROR")  # fmt: skip


class ClientConnection:
    """One websocket connection to cloudhub."""

    def __init__(
        self, url: str, headers: dict[str, str], *, timeout: float,
        ssl_context: ssl.SSLContext | None = None, max_response: int = MAX_RESPONSE,
        on_socket: Callable[[socket.socket], object] = lambda _: None,
        io_timeout: float = IO_TIMEOUT, max_message: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:  # fmt: skip
        """Connect (each socket operation of the handshake waits at most `timeout` seconds);
        over TLS with `ssl_context` (a ``wss://`` url). `on_socket` gets the socket as
        soon as it exists, so that a stopping owner can shut it down mid-handshake.
        Afterwards each read or write of the socket may stall `io_timeout` seconds; the
        reader's short waits (`recv`) never change that, since the socket's timeout is
        also the writers'. A message from the cloud (its frames and fragments together)
        may be `max_message` bytes: reading stops there, whatever its header declares.

        Raises:
            HubConnectionError: the connection, TLS or the upgrade failed, or the
                upgrade response exceeded `max_response` bytes.
        """
        self.url = url
        self._max_message = max_message
        sock: Any = None
        try:
            sock = _open(url, timeout, ssl_context, on_socket)
            sock.deadline = time.monotonic() + timeout  # for the whole upgrade, not each read
            sock.read_budget = max_response
            sock.budget_reason = f"the upgrade response is larger than {max_response} bytes"
            self._ws = websocket.create_connection(
                url,
                socket=sock,
                header=[f"{key}: {value}" for key, value in headers.items()],
                timeout=timeout,
                enable_multithread=True,  # sends from the module thread, reads from ours
            )
            sock.read_budget = sock.deadline = None
            self._ws.settimeout(io_timeout)
            self._sock: Any = sock
        except (websocket.WebSocketException, OSError) as exc:
            unanswered = sock is not None and sock.read_budget == max_response
            if sock is not None:
                sock.close()
            if ssl_context is not None and unanswered and _is_closed(exc):
                raise errors.HubConnectionError(url, _REFUSED_BEFORE_UPGRADE) from exc
            raise errors.HubConnectionError(url, _describe(exc)) from exc

    def send(self, frame: bytes) -> None:
        """Write one text frame.

        Raises:
            HubConnectionError: the connection is broken.
        """
        try:
            self._ws.send(frame, websocket.ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError) as exc:
            raise errors.HubConnectionError(self.url, _describe(exc)) from exc

    def recv(self, timeout: float) -> bytes | None:
        """The next frame's payload, or None if none came within `timeout`.

        Raises:
            HubConnectionError: the connection was closed (with the peer's code and
                reason) or broke.
        """
        try:
            if not self._readable(timeout):
                return None
            sock = self._sock
            sock.read_budget = self._max_message + _FRAME_HEADERS
            sock.budget_reason = f"the cloud sent a message over {self._max_message} bytes"
            try:
                opcode, data = self._ws.recv_data()
            finally:
                sock.read_budget = None
        except (websocket.WebSocketException, OSError) as exc:
            raise errors.HubConnectionError(self.url, _describe(exc)) from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:  # our close reply has been sent
            self._ws.shutdown()  # type: ignore[no-untyped-call]
            raise errors.HubConnectionError(self.url, f"closed by the cloud: {_close_reason(data)}")
        return bytes(data)

    def _readable(self, timeout: float) -> bool:
        """Whether a frame has begun to arrive within `timeout` (decrypted bytes already
        held by TLS count: the descriptor would not show them)."""
        pending = getattr(self._sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        ready, _, _ = select.select([self._sock], [], [], timeout)
        return bool(ready)

    def close(self) -> None:
        if not self._ws.connected:
            self._ws.shutdown()  # type: ignore[no-untyped-call]
            return
        try:
            self._ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            self._ws.shutdown()  # type: ignore[no-untyped-call]


_REFUSED_BEFORE_UPGRADE = (
    "the cloud closed the connection before answering the upgrade: it refused this node's"
    " certificate (not signed by this cloud's CA, or expired); remove the certificate"
    " directory and join again with a token from this cloud"
)  # TLS 1.3: the server checks the client certificate after the client's handshake


def _is_closed(exc: BaseException) -> bool:
    return isinstance(exc, websocket.WebSocketConnectionClosedException | ConnectionError)


class _BudgetExceededError(OSError):
    pass


class _BoundedSocket(socket.socket):
    """A socket whose reads fail once `read_budget` bytes are spent (None: no bound),
    or once `deadline` (monotonic) has passed: a peer that answers a byte at a time
    cannot stretch a handshake read by read."""

    read_budget: int | None = None
    budget_reason = ""  # what a read past the budget says
    deadline: float | None = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        _before_read(self)
        data = super().recv(bufsize, flags)
        self.read_budget = _spend(self.read_budget, len(data), self.budget_reason)
        return data


class _BoundedSSLSocket(ssl.SSLSocket):
    """`_BoundedSocket` over TLS (installed as the context's ``sslsocket_class``)."""

    read_budget: int | None = None
    budget_reason = ""
    deadline: float | None = None

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        _before_read(self)
        data = super().recv(buflen, flags)
        self.read_budget = _spend(self.read_budget, len(data), self.budget_reason)
        return data


def _before_read(sock: Any) -> None:
    if sock.deadline is None:
        return
    left = sock.deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the cloud did not complete the upgrade within the handshake timeout")
    sock.settimeout(left)


def _spend(budget: int | None, used: int, reason: str) -> int | None:
    if budget is None:
        return None
    if used > budget:
        raise _BudgetExceededError(reason)
    return budget - used


def _open(
    url: str,
    timeout: float,
    context: ssl.SSLContext | None,
    on_socket: Callable[[socket.socket], object],
) -> Any:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    raw = socket.create_connection((host, port), timeout=timeout)
    if context is None:
        sock = _BoundedSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
        sock.settimeout(timeout)
        on_socket(sock)
        return sock
    context.sslsocket_class = _BoundedSSLSocket
    try:
        tls = context.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
    except BaseException:
        raw.close()
        raise
    on_socket(tls)
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


def _close_reason(data: bytes) -> str:
    if len(data) < 2:
        return "no code"
    (code,) = struct.unpack("!H", data[:2])
    return f"{code} {data[2:].decode('utf-8', 'replace')}".strip()


def _describe(exc: BaseException) -> str:
    """What went wrong, said so that the user knows what to do."""
    if isinstance(exc, _BudgetExceededError):
        return str(exc)
    if isinstance(exc, websocket.WebSocketBadStatusException):
        body = (exc.resp_body or b"")[:256].decode("utf-8", "replace").strip()
        return f"the cloud refused the connection: HTTP {exc.status_code}: {body}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"cannot verify the cloud's certificate ({exc.verify_message}): the CA in the"
                " certificate directory is not this cloud's, or the address is not in its"
                " certificate")  # fmt: skip
    if isinstance(exc, ssl.SSLError) and any(r in str(exc).upper() for r in _CERT_REFUSED):
        return (f"the cloud refused this node's certificate ({exc.reason}): it is not signed"
                " by this cloud's CA or has expired; remove the certificate directory and join"
                " again with a token from this cloud")  # fmt: skip
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
