"""The edge's websocket client (websocket-client, blocking, thread-safe sends).

Input: frames to write (`send`); output: messages read (`recv`), None on a read
timeout. Only this file knows `websocket`; its exceptions (and TLS errors) become
`HubConnectionError` here, with a reason a user can act on, and never reach
module code. We open the socket (and TLS) ourselves so that the upgrade response
is read within `max_response` bytes: websocket-client alone reads a refusal's
whole body and unbounded header lines (KubeEdge's CVE-2022-31080, 1 MiB since).
websocket-client does the upgrade and the writes (under its lock); frames are read
here and parsed by `frames`, as strictly as edgecore's gorilla/websocket: a message
over the limit is refused on its header, before its payload is read, and a frame
against RFC 6455 fails the connection with the code section 7.4.1 gives.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import websocket

from modules.edgehub import frames
from modules.hub import errors
from modules.hub.protocol import DEFAULT_MAX_FRAME_SIZE

MAX_RESPONSE = 1024 * 1024  # bytes of upgrade response (status, headers, body) read at most
_READ_SIZE = 64 * 1024  # bytes one read of the socket takes at most
_CLOSE_WAIT = 1.0  # seconds to write a close frame, or to wait for the cloud's (gorilla's)
_CLOSE_NORMAL = 1000
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
        may be `max_message` bytes: a frame whose header takes it past that is refused
        (1009) before its payload is read.

        Raises:
            HubConnectionError: the connection, TLS or the upgrade failed, or the
                upgrade response exceeded `max_response` bytes.
        """
        self.url = url
        self._frames = frames.FrameReader(max_message=max_message)  # parses what is read
        self._closed = False  # a close frame was sent or received: nothing more to read
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
            HubConnectionError: the connection is broken or closed.
        """
        if self._closed:  # RFC 6455 5.5.1: no data frame after a close frame
            raise errors.HubConnectionError(self.url, "the connection is closed")
        try:
            self._ws.send(frame, websocket.ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError) as exc:
            raise errors.HubConnectionError(self.url, _describe(exc)) from exc

    def recv(self, timeout: float) -> bytes | None:
        """The next message's payload (its fragments joined), or None if no frame began
        within `timeout`; pings are answered on the way. Once a frame has begun, each
        read of it may stall the IO timeout.

        Raises:
            HubConnectionError: the connection was closed (with the peer's code and
                reason) or broke, or the cloud broke the protocol (the edge closed with
                1002, 1007 or 1009, and the reason says what the cloud sent).
        """
        if self._closed:
            raise errors.HubConnectionError(self.url, "the connection is closed")
        deadline = time.monotonic() + timeout
        try:
            while True:
                event = self._frames.next_event()
                if isinstance(event, frames.Message):
                    return event.payload
                if event is not None:
                    self._answer(event)
                elif self._frames.begun or self._readable(deadline - time.monotonic()):
                    self._frames.receive_data(_read(self._sock))
                else:
                    return None
        except frames.ProtocolError as exc:  # RFC 6455 7.1.7: fail the connection
            self._closed = True
            self._send_close(exc.code, exc.reason)
            reason = f"{exc.reason} (closed with {exc.code})"
            raise errors.HubConnectionError(self.url, reason) from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise errors.HubConnectionError(self.url, _describe(exc)) from exc

    def _answer(self, event: frames.Ping | frames.Pong | frames.Close) -> None:
        if isinstance(event, frames.Ping):
            self._ws.pong(event.payload)
        elif isinstance(event, frames.Close):
            # Echo the code (RFC 6455 5.5.1, as gorilla's default close handler does).
            self._closed = True
            self._send_close(event.code, "")
            self._shut()
            reason = f"closed by the cloud: {_close_reason(event)}"
            raise errors.HubConnectionError(self.url, reason)

    def _send_close(self, code: int | None, reason: str) -> None:
        """A close frame, if the socket takes it within `_CLOSE_WAIT` (a send stuck on
        a cloud that reads nothing holds the write lock)."""
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()[:123]
        data = websocket.ABNF.create_frame(payload, websocket.ABNF.OPCODE_CLOSE).format()
        lock = self._ws.lock
        if not lock.acquire(timeout=_CLOSE_WAIT):
            return
        try:
            _, writable, _ = select.select([], [self._sock], [], _CLOSE_WAIT)
            if writable:
                self._sock.sendall(data)
        except (OSError, ValueError):  # ValueError: the socket is closed already
            pass
        finally:
            lock.release()

    def _readable(self, timeout: float) -> bool:
        """Whether a frame has begun to arrive within `timeout` (decrypted bytes already
        held by TLS count: the descriptor would not show them)."""
        pending = getattr(self._sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        ready, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        return bool(ready)

    def close(self) -> None:
        """Close with 1000 (unless a close frame was sent or received already), wait
        `_CLOSE_WAIT` seconds at most for the cloud's close frame, and shut the socket."""
        if not self._closed:
            self._closed = True
            self._send_close(_CLOSE_NORMAL, "")
            with contextlib.suppress(frames.ProtocolError, websocket.WebSocketException, OSError):
                self._await_close(time.monotonic() + _CLOSE_WAIT)
        self._shut()

    def _await_close(self, deadline: float) -> None:
        while self._readable(deadline - time.monotonic()):
            self._frames.receive_data(_read(self._sock))
            while (event := self._frames.next_event()) is not None:
                if isinstance(event, frames.Close):
                    return

    def _shut(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
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


def _read(sock: Any) -> bytes:
    """What the socket holds, up to `_READ_SIZE` bytes; it waits the socket's timeout
    at most (websocket-client's reader said these same things)."""
    try:
        data: bytes = sock.recv(_READ_SIZE)
    except TimeoutError as exc:
        raise websocket.WebSocketTimeoutException("Connection timed out") from exc
    if not data:
        raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
    return data


def _close_reason(close: frames.Close) -> str:
    if close.code is None:
        return "no code"
    return f"{close.code} {close.reason}".strip()


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
