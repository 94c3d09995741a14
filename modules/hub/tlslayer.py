"""TLS for one connection over memory BIOs, between asyncio's socket transport and
the websocket connection on top.

asyncio's own TLS layer (``ssl=`` on ``create_server``/``create_connection``) gives
every connection a 256 KiB read buffer (``asyncio.sslproto.SSLProtocol.max_size``):
290 KiB per idle connection measured, where the connection itself needs about 30. A
`TLSLayer` is the protocol asyncio sees; it decrypts into the connection above as
bytes arrive and encrypts what it writes, with OpenSSL's own buffers only. The
certificate checks are the context's, unchanged: the handshake is
`ssl.SSLObject.do_handshake`, as in asyncio.

The handshake's CPU (key exchange, signatures, the peer's chain) is the costliest
step of a connection. With a `HandshakeWorkers` pool it runs on other threads:
OpenSSL releases the GIL while it works, so on a second core handshakes go on while
the loop serves sessions. One step at a time per connection: bytes that arrive
meanwhile wait, and the memory BIOs are touched by one thread at a time.

With an `Admission` (cloudhub's handshake gate), a connection starts its handshake
only once admitted: it may wait in line first, reading nothing but what the client
sent before it (bounded), and the admission hears when the connection ends.

The connection above is made once the handshake succeeded (`app_factory`), and sees
a transport (`_AppTransport`) with the plain transport's buffer and flow control and
the ``ssl_object`` and ``peercert`` extra info. A handshake that fails or outlasts
`handshake_timeout` aborts the socket, and `handshake_done` (for clients) fails with
the reason.

The TLS is the standard library's (an `ssl.SSLContext`: cloudhub, edgehub) or another
library's behind an `Engine` (`modules.hub.pyopenssl`, the fleet's clients), whose
connection objects take the place of `ssl.SSLObject` and its memory BIOs, with the
same methods and the same errors (`TLSObject`, `Incoming`, `Outgoing`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
from collections.abc import Callable, Hashable
from typing import Any, Protocol

log = logging.getLogger("modules.hub.tlslayer")

_READ = 64 * 1024  # most plaintext bytes taken from OpenSSL per read call
_HELLO = 16 * 1024  # bytes read from a connection waiting in line before reading pauses
_WAITING, _HANDSHAKING, _OPEN, _CLOSED = "waiting", "handshaking", "open", "closed"


class Admission(Protocol):
    """Who may start a handshake now (see `modules.cloudhub.gate.HandshakeGate`)."""

    def enter(self, peer: Hashable, start: Callable[[], object], cut: Callable[[], object]) -> bool:
        """`start` now or later, or `cut` after waiting too long; False: refused."""

    def done(self, peer: Hashable) -> None:
        """The connection from `peer` ended (or no longer needs its slot)."""


class TLSObject(Protocol):
    """What a layer drives: `ssl.SSLObject`'s handshake, read, write and close, raising
    `ssl.SSLWantReadError`, `ssl.SSLZeroReturnError` and the other `ssl.SSLError`s."""

    def do_handshake(self) -> None: ...

    def read(self, len: int = 1024) -> bytes: ...

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def unwrap(self) -> object: ...


class Incoming(Protocol):
    """Where the peer's bytes go for the TLS object (`ssl.MemoryBIO`'s write)."""

    def write(self, data: bytes, /) -> int: ...


class Outgoing(Protocol):
    """What the TLS object wrote for the peer (`ssl.MemoryBIO`'s pending and read)."""

    @property
    def pending(self) -> int: ...

    def read(self, /) -> bytes: ...


class Engine(Protocol):
    """A TLS library other than `ssl`: makes a connection's TLS object with its BIOs."""

    def wrap(
        self, *, server_side: bool, server_hostname: str | None
    ) -> tuple[TLSObject, Incoming, Outgoing]:
        """A new connection's TLS object, and its memory BIOs (in, out).

        Raises:
            ssl.SSLError: the object cannot be made (`server_hostname` unusable).
        """
        ...


class HandshakeWorkers:
    """Threads for TLS handshake steps (see the module docstring); shared by connections."""

    def __init__(self, threads: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="beehive-tls-handshake"
        )

    def submit(self, step: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        return self._pool.submit(step)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TLSLayer(asyncio.Protocol):
    """One connection's TLS (see the module docstring)."""

    def __init__(
        self,
        app_factory: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext | Engine,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        handshake_timeout: float,
        workers: HandshakeWorkers | None = None,
        on_failed: Callable[[BaseException], object] = lambda exc: None,
        admission: Admission | None = None,
    ) -> None:
        self._app_factory = app_factory
        self._context = context
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._handshake_timeout = handshake_timeout  # seconds, from the TCP connection
        self._workers = workers  # None: handshake steps on the loop
        self._on_failed = on_failed  # a failed handshake's reason, for counting
        self._admission = admission  # None: every handshake starts at once
        self._peer: Hashable = None
        self._incoming: Incoming | None = None  # the peer's bytes, for the TLS object
        self._outgoing: Outgoing | None = None  # its bytes for the peer
        self._ssl: TLSObject | None = None  # made with the BIOs in `connection_made`
        self._state = _WAITING
        self._transport: asyncio.Transport | None = None
        self._app: asyncio.Protocol | None = None
        self._app_transport = _AppTransport(self)
        self._stepping = False  # a handshake step runs on a worker
        self._waiting: list[bytes] = []  # bytes that came while it ran
        self._timer: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.handshake_done: asyncio.Future[None] = loop.create_future()
        self.handshake_done.add_done_callback(_retrieve)  # a server's is never awaited

    # asyncio.Protocol, below: the socket.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._peer = transport.get_extra_info("peername")
        try:
            self._ssl, self._incoming, self._outgoing = _wrap(
                self._context, server_side=self._server_side, server_hostname=self._server_hostname
            )
        except Exception as exc:  # no TLS object: the handshake fails now, with the reason
            self._failed(exc)
            transport.abort()
            return
        if self._admission is None:
            self._begin()
        elif not self._admission.enter(self._peer, self._begin, self._abort):
            self._state = _CLOSED
            transport.abort()

    def _begin(self) -> None:
        """Admitted: the handshake starts, and its deadline runs from now."""
        if self._state != _WAITING or self._transport is None:
            return
        self._state = _HANDSHAKING
        self._timer = self._loop.call_later(self._handshake_timeout, self._timed_out)
        waiting, self._waiting = b"".join(self._waiting), []
        if self._transport.is_closing():
            return
        self._transport.resume_reading()
        if waiting or not self._server_side:  # the client speaks first
            self._handshake(waiting)

    def data_received(self, data: bytes) -> None:
        if self._state == _OPEN:
            assert self._incoming is not None
            self._incoming.write(data)
            self._read()
        elif self._state == _HANDSHAKING:
            self._handshake(data)
        elif self._state == _WAITING and self._transport is not None:
            self._waiting.append(data)
            if sum(map(len, self._waiting)) >= _HELLO:
                self._transport.pause_reading()

    def eof_received(self) -> bool | None:
        if self._state == _OPEN and self._app is not None:
            return self._app.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        state, self._state = self._state, _CLOSED
        if self._timer is not None:
            self._timer.cancel()
        if self._admission is not None:
            self._admission.done(self._peer)
        if state in (_WAITING, _HANDSHAKING):
            self._failed(exc or ConnectionResetError("closed during the TLS handshake"))
        elif self._app is not None:
            self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app.resume_writing()

    # The handshake.

    def _handshake(self, data: bytes) -> None:
        if self._stepping:
            self._waiting.append(data)
            return
        if data:
            assert self._incoming is not None
            self._incoming.write(data)
        if self._workers is None:
            self._stepped(_step(self._ssl))
            return
        self._stepping = True
        future = self._workers.submit(lambda: _step(self._ssl))
        future.add_done_callback(
            lambda done: self._loop.call_soon_threadsafe(self._worker_done, done)
        )

    def _worker_done(self, future: concurrent.futures.Future[BaseException | bool]) -> None:
        self._stepping = False
        if self._state != _HANDSHAKING:
            return
        self._stepped(future.result() if not future.cancelled() else CancelledStepError())
        if self._state == _HANDSHAKING and self._waiting:
            waiting, self._waiting = b"".join(self._waiting), []
            self._handshake(waiting)

    def _stepped(self, outcome: BaseException | bool) -> None:
        """After a handshake step: send what it wrote; then wait, fail or open."""
        self._flush()
        if self.handshake_done.cancelled():  # the client gave up waiting (its timeout)
            self._state = _CLOSED
            self._abort()
            return
        if outcome is False:
            return  # wants more bytes from the peer
        if isinstance(outcome, BaseException):
            self._failed(outcome)
            if self._transport is not None:
                self._transport.abort()
            return
        self._state = _OPEN
        if self._timer is not None:
            self._timer.cancel()
        waiting, self._waiting = b"".join(self._waiting), []
        if waiting:
            assert self._incoming is not None
            self._incoming.write(waiting)
        self.handshake_done.set_result(None)
        self._app = self._app_factory()
        self._app.connection_made(self._app_transport)
        self._read()  # what came with the end of the handshake

    def _timed_out(self) -> None:
        if self._state == _HANDSHAKING and self._transport is not None:
            self._failed(TimeoutError(f"no TLS handshake within {self._handshake_timeout:g}s"))
            self._transport.abort()

    def _failed(self, exc: BaseException) -> None:
        if self.handshake_done.done():
            return
        self._state = _CLOSED
        self.handshake_done.set_exception(exc)
        self._on_failed(exc)

    # Data, once open.

    def _read(self) -> None:
        sslobj, app = self._ssl, self._app
        assert sslobj is not None and app is not None
        chunks: list[bytes] = []
        eof = False
        while True:
            try:
                chunk = sslobj.read(_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                eof = True
                break
            except ssl.SSLError as exc:
                log.debug("TLS error from %s: %s", self.peer, exc)
                self._flush()
                self._abort()
                return
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        self._flush()  # what reading produced (a key update's answer, an alert)
        for chunk in chunks:
            if self._state != _OPEN:
                return
            app.data_received(chunk)
        if eof and self._state == _OPEN and not app.eof_received():
            self.close()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != _OPEN or self._ssl is None:
            return
        try:
            self._ssl.write(data)
        except ssl.SSLError as exc:
            log.debug("TLS write to %s failed: %s", self.peer, exc)
            self._abort()
            return
        self._flush()

    def close(self) -> None:
        """Send close_notify (as asyncio does), then close the socket once written."""
        transport = self._transport
        if self._state == _OPEN and self._ssl is not None:
            with contextlib.suppress(ssl.SSLError):
                self._ssl.unwrap()
            self._flush()
        self._state = (
            _CLOSED  # writes from now on are dropped; connection_lost still reaches the app
        )
        if transport is not None:
            transport.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _flush(self) -> None:
        outgoing = self._outgoing
        if outgoing is not None and outgoing.pending and self._transport is not None:
            self._transport.write(outgoing.read())

    def abort(self) -> None:
        """Cut the connection at once."""
        self._abort()

    @property
    def is_open(self) -> bool:
        """The handshake succeeded and the connection has not been closed since."""
        return self._state == _OPEN

    @property
    def peer(self) -> object:
        return self._transport.get_extra_info("peername") if self._transport else None

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def ssl_object(self) -> TLSObject | None:
        return self._ssl


def _wrap(
    context: ssl.SSLContext | Engine, *, server_side: bool, server_hostname: str | None
) -> tuple[TLSObject, Incoming, Outgoing]:
    if isinstance(context, ssl.SSLContext):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = context.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname
        )
        return sslobj, incoming, outgoing
    return context.wrap(server_side=server_side, server_hostname=server_hostname)


class CancelledStepError(ConnectionError):
    """The handshake workers stopped before the step ran."""


def _step(sslobj: TLSObject | None) -> BaseException | bool:
    """One handshake step: True when done, False when it wants more bytes, or the error."""
    assert sslobj is not None
    try:
        sslobj.do_handshake()
    except ssl.SSLWantReadError:
        return False
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        return exc
    return True


def failure_reason(exc: BaseException) -> str:
    """A short name for why a handshake failed, for counting: the peer's certificate
    (or ours, refused by the peer), a timeout, the peer going away, or the protocol."""
    if isinstance(exc, ssl.SSLCertVerificationError | ssl.CertificateError):
        return "certificate"
    if isinstance(exc, ssl.SSLError) and any(
        word in str(exc).upper() for word in ("CERTIFICATE", "UNKNOWN_CA", "DECRYPT_ERROR")
    ):
        return "certificate"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError | ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "closed"
    return "protocol"


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a server's failed handshake is counted, not logged


class _AppTransport(asyncio.Transport):
    """What the connection above sees: plaintext in and out, the socket's flow control."""

    def __init__(self, layer: TLSLayer) -> None:
        super().__init__()
        self._layer = layer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._layer.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._layer.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False  # TLS has no half-close

    def write_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close")

    def close(self) -> None:
        self._layer.close()

    def abort(self) -> None:
        self._layer.abort()

    def is_closing(self) -> bool:
        transport = self._layer.transport
        return not self._layer.is_open or transport is None or transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sslobj = self._layer.ssl_object
        if name == "ssl_object":
            return sslobj
        if name == "peercert":  # in `ssl`'s form: from an `ssl.SSLObject` only
            return sslobj.getpeercert() if isinstance(sslobj, ssl.SSLObject) else default
        if name == "cipher":
            return sslobj.cipher() if isinstance(sslobj, ssl.SSLObject) else default
        transport = self._layer.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def pause_reading(self) -> None:
        if (transport := self._layer.transport) is not None:
            transport.pause_reading()

    def resume_reading(self) -> None:
        if (transport := self._layer.transport) is not None:
            transport.resume_reading()

    def is_reading(self) -> bool:
        transport = self._layer.transport
        return transport is not None and transport.is_reading()

    def get_write_buffer_size(self) -> int:
        transport = self._layer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        transport = self._layer.transport
        return transport.get_write_buffer_limits() if transport is not None else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if (transport := self._layer.transport) is not None:
            transport.set_write_buffer_limits(high, low)
