"""cloudhub's websocket server: moves frames between connections and `CloudHubCore`.

Runs an asyncio server of `modules.hub.wsconn` connections (websockets' sans-I/O
protocol) on its own thread ("beehive-cloudhub-loop").
Input: connections from edges, and downstream messages the loop takes itself from
the module's mailbox (`read_from`; woken by a sender, in batches of `DRAIN`: no
thread relays them and the mailbox is the only bound). Output:
frames and closes to the connections; upstream messages and ObjectSync ops to
the callbacks given, called on the loop thread (they must not block).

As KubeEdge's server: any path, headers ``node_id``/``project_id``, no compression,
no websocket pings (liveness is the application keepalive), and no small size limit.

With TLS (cloudhub/servers/server.go), the handshake requires a client certificate
signed by the CA; the upgrade is then refused with 403 and the reason unless the
certificate names the node of the ``node_id`` header (`modules.certs.tls.check_peer`),
and the session's node is the certificate's. TLS runs over memory BIOs
(`modules.hub.tlslayer`), not asyncio's TLS with its 256 KiB buffer per connection,
and handshakes run on `handshake_threads` worker threads, off the loop. Against
slowloris, a connection must finish its TLS handshake within `handshake_timeout` and
then its upgrade request within `handshake_timeout`, and at most
`max_pending_handshakes` may be pending at once (`modules.cloudhub.gate`); over TLS,
up to `max_queued_handshakes` more wait in line for a slot (at most
`handshake_timeout`), reading nothing, before any TLS work; beyond that, and over
plain websockets, more are closed at accept.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import http
import itertools
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from websockets.http11 import Request, Response

from beehive import heap
from beehive.message import Message
from modules.certs import cloud as cloud_tls
from modules.certs import tls as certs_tls
from modules.cloudhub import core, gate, objects
from modules.cloudhub.owned import Claim
from modules.hub import errors, eventloop, handshake, tlslayer, wsconn

log = logging.getLogger("modules.cloudhub.transport")

T = TypeVar("T")

_RESEND_GRANULARITY = 0.05  # seconds: resends fall due at most this late
_ACCEPTS_PER_ROUND = 16  # connections accepted per loop iteration (see _GatedSocket)


DRAIN = 1024  # downstream messages taken per turn of the loop at most


def _nothing(limit: int) -> list[Message]:
    return []


class ServerTransport:
    """The websocket server thread around a `CloudHubCore` (which only it touches)."""

    def __init__(
        self,
        hub: core.CloudHubCore,
        *,
        address: str,
        port: int,
        tick_interval: float,
        on_upstream: Callable[[list[Message]], None],
        on_syncs: Callable[[list[objects.SyncOp]], None],
        tls: cloud_tls.HubTLS | None = None,
        handshake_timeout: float = 10.0,
        max_pending_handshakes: int = 128,
        max_write_buffer: int = 64 * 1024 * 1024,
        handshake_threads: int = 2,
        max_queued_handshakes: int = 4096,
        on_claims: Callable[[list[Claim]], None] | None = None,
        fenced: Callable[[], str | None] | None = None,
        member_term: Callable[[], int] | None = None,
        release_heap_after: int = 0,
    ) -> None:
        self.core = hub  # all logic; used on the loop thread only
        self.address = address  # host to bind
        self.port = port  # port to bind (0: any); the bound port once started
        self._tick_interval = tick_interval  # seconds between core ticks at most
        self._on_upstream = on_upstream  # messages for edgecontroller
        self._on_syncs = on_syncs  # work for the ObjectSync writer
        self._on_claims = on_claims  # claims of nodes for the owner Leases (several replicas)
        # Asked before every delivery round and upgrade: a replica resumed after a pause
        # longer than its Lease's renew deadline must not write a frame before its keeper
        # thread has noticed (it may renew without ever reporting the lapse).
        self._is_fenced = fenced
        self._fence_closed = False  # fenced at the last turn (a fence is logged once)
        # The member Lease's term the sessions are served under (None: every session was
        # closed since): a keeper that renews at once after a lapse, before the loop asked
        # `fenced`, starts a new term, and the sessions of the old one end all the same.
        self._member_term = member_term
        self._served_term: int | None = member_term() if member_term is not None else None
        self._take: Callable[[int], list[Message]] = _nothing  # downstream messages (read_from)
        self._fenced: str | None = None  # why no session may be served now (`fence`)
        self._handing_over: str | None = None  # why upgrades are refused (stopping)
        self._conns: dict[int, wsconn.Connection] = {}  # key -> open connection (loop thread)
        self._ids = itertools.count(1)  # connection ids
        self._pump_scheduled = False  # a pump call is queued on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None  # set on the loop to stop serving
        self._ready = threading.Event()  # set once listening (or failed)
        self._error: BaseException | None = None  # why the server could not start
        self._thread: threading.Thread | None = None
        self._tls = tls  # mutual TLS, or None for plain websocket
        # The handshake verified the client's chain against the context's CAs; when that
        # is this one CA alone, checking its signature again costs 0.7 ms a connection for
        # nothing. A CA file with more certificates in it gets the check.
        single = tls is not None and tls.context.cert_store_stats()["x509_ca"] == 1
        self._recheck_ca = None if tls is None or single else tls.ca
        self._handshake_timeout = handshake_timeout  # seconds for TLS and upgrade together
        self._max_write_buffer = max_write_buffer  # bytes per connection before it is closed
        self._handshake_threads = handshake_threads  # TLS handshakes off the loop (0: on it)
        self.tls_failures: collections.Counter[str] = collections.Counter()  # by reason
        self.gate = gate.HandshakeGate(
            limit=max_pending_handshakes, timeout=handshake_timeout, clock=time.monotonic,
            queue_limit=max_queued_handshakes if tls is not None else 0,
            queue_timeout=handshake_timeout,
        )  # fmt: skip  # pending handshakes (loop thread)
        self._admission = _LoggedGate(self.gate)  # TLS connections enter through it
        # Gives back what a wave of handshakes freed, once it settled (loop thread).
        self.heap = heap.WaveRelease(clock=time.monotonic, wave=release_heap_after)

    # Any thread.

    def start(self, timeout: float = 10.0) -> int:
        """Listen and serve on a new thread; returns the bound port.

        Raises:
            HubConnectionError: the address cannot be bound.
        """
        self._thread = threading.Thread(target=self._run, name="beehive-cloudhub-loop")
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            reason = f"cannot listen: {self._error or 'timed out'}"
            raise errors.HubConnectionError(f"{self.address}:{self.port}", reason)
        return self.port

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection (1001) and stop the server thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def fence_reason(self) -> str | None:
        """Any thread. Why no session may be served now (None: they may)."""
        if self._handing_over is not None:
            return self._handing_over
        return self._is_fenced() if self._is_fenced is not None else self._fenced

    def refuse_upgrades(self, reason: str) -> None:
        """Any thread. From now on upgrades are refused (503, with `reason`) and the
        replica reports not ready: it is stopping (`CloudHub._hand_over`)."""
        self._handing_over = reason

    def fence(self, reason: str | None) -> None:
        """Any thread. With a `reason`, this replica cannot be sure it may serve its edges
        (its Lease's renewal is overdue): every session is closed, so that the edges
        reconnect (to another replica, behind a load balancer), and upgrades are refused
        with 503 until `fence(None)`."""
        self._fenced = reason
        if reason is None:
            return
        with contextlib.suppress(errors.SessionClosedError):  # not serving anyway

            def close_all() -> None:
                self.core.close_all(f"this cloudcore replica is fenced: {reason}")
                self._after()

            self._call_soon(close_all)

    def read_from(
        self, attach: Callable[[Callable[[], None]], Callable[[int], list[Message]]]
    ) -> None:
        """Take downstream messages from a mailbox (`Hive.attach_reader`, bound to the
        module: `attach` gets the wake-up and returns the taker). Call once started."""
        self._take = attach(self._wake)
        self._wake()  # what was queued before the reader was there

    def _wake(self) -> None:
        """A sender's thread: messages wait; the loop takes them on its next turn."""
        with contextlib.suppress(errors.SessionClosedError):  # stopped: they stay queued
            self._call_soon(self._drain)

    def call(self, func: Callable[[], T], timeout: float = 5.0) -> T:
        """Run `func` on the loop thread and return its result (for debug commands)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(func())
            except Exception as exc:
                future.set_exception(exc)

        self._call_soon(run)
        return future.result(timeout)

    def apply(self, func: Callable[[core.CloudHubCore], object]) -> None:
        """Any thread: run `func(core)` on the loop soon, then hand its outputs on (an
        answer to a claim, a claim seen by the owner watch). Dropped once stopped."""

        def run() -> None:
            func(self.core)
            self._after()

        with contextlib.suppress(errors.SessionClosedError):
            self._call_soon(run)

    def _call_soon(self, func: Callable[[], None]) -> None:
        if self._loop is None:
            raise errors.SessionClosedError("*")
        try:
            self._loop.call_soon_threadsafe(func)
        except RuntimeError as exc:  # the loop has closed
            raise errors.SessionClosedError("*") from exc

    # The loop thread.

    def _run(self) -> None:
        try:
            # A loop that takes ready sockets a bounded number at a time: a mass
            # disconnect or reconnect does not hold up every other node's deliveries.
            with asyncio.Runner(loop_factory=eventloop.new_event_loop) as runner:
                runner.run(self._main())
        except Exception as exc:
            self._error = exc
            log.error("cloudhub server stopped: %s", exc)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Over TLS the gate admits in the protocol (connections may wait in line there);
        # plain websockets are gated at accept.
        listener = _listen(self.address, self.port, None if self._tls else self.gate)
        listener.loop = loop
        workers = None
        if self._tls is not None and self._handshake_threads:
            workers = tlslayer.HandshakeWorkers(self._handshake_threads)
        server = await loop.create_server(self._protocol(workers), sock=listener)
        self.port = listener.getsockname()[1]
        self._ready.set()
        ticker = asyncio.create_task(self._tick())
        await self._stop.wait()
        ticker.cancel()
        await self._shut_down(server, listener)
        if workers is not None:
            workers.close()

    def _protocol(
        self, workers: tlslayer.HandshakeWorkers | None
    ) -> Callable[[], asyncio.Protocol]:
        """What serves an accepted socket: the websocket connection, under TLS if set."""
        if self._tls is None:
            return self._connection
        context = self._tls.context

        def tls() -> asyncio.Protocol:
            return tlslayer.TLSLayer(
                self._connection, context, server_side=True,
                handshake_timeout=self._handshake_timeout, workers=workers,
                on_failed=self._tls_failed, admission=self._admission,
            )  # fmt: skip

        return tls

    def _tls_failed(self, exc: BaseException) -> None:
        self.tls_failures[tlslayer.failure_reason(exc)] += 1

    async def _shut_down(self, server: asyncio.Server, listener: _GatedSocket) -> None:
        server.close()
        self.core.close_all("cloudhub is stopping")
        self._flush()
        deadline = time.monotonic() + 2.0
        while self._conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self._conns.values()):
            conn.abort()
        await _shut_accepted(listener, 1.0)

    def _connection(self) -> wsconn.ServerConnection:
        return wsconn.ServerConnection(
            self,
            max_size=self.core.limits.max_frame_size,
            handshake_timeout=self._handshake_timeout,
            close_timeout=2.0,
            max_write_buffer=self._max_write_buffer,
        )

    # wsconn.ServerHandler, on the loop thread.

    def on_open(self, conn: wsconn.Connection) -> None:
        conn.key = next(self._ids)
        self._conns[conn.key] = conn
        self.heap.opened()
        if self.core.open(conn.key, conn.identity):  # else the refusal is in its outputs
            log.debug("node %s connected from %s", conn.identity, conn.remote_address)
        self._after_soon()  # once per loop iteration, however many (re)connect at once

    def on_frame(self, conn: wsconn.Connection, data: bytes) -> float:
        self.core.receive(conn.key, data)
        return self.core.read_delay(conn.key)  # over the node's rate limit: stop reading

    def on_frames_handled(self, conn: wsconn.Connection) -> None:
        self._after_soon()

    def on_close(self, conn: wsconn.Connection) -> None:
        self.core.lost(conn.key)
        self._conns.pop(conn.key, None)
        self._after_soon()

    async def _tick(self) -> None:
        """The core's tick every `tick_interval`; in between, a pump when a resend falls
        due, at most every `_RESEND_GRANULARITY` (resends wait seconds: waking for each
        deadline of thousands of in-flight messages would keep the loop busy)."""
        next_tick = time.monotonic() + self._tick_interval
        while True:
            now = time.monotonic()
            wake = next_tick
            deadline = self.core.next_deadline()
            if deadline is not None:
                wake = min(wake, max(deadline, now + _RESEND_GRANULARITY))
            await asyncio.sleep(max(wake - now, 0.0))
            if time.monotonic() >= next_tick:
                self.gate.expire()
                self.core.tick()
                self.heap.tick()
                next_tick = time.monotonic() + self._tick_interval
            self._after()

    def _drain(self) -> None:
        batch = self._take(DRAIN)
        for message in batch:
            self.core.downstream(message)
        if len(batch) == DRAIN and self._loop is not None:  # more wait: after the sockets' turn
            self._loop.call_soon(self._drain)
        self._after()

    def _after(self) -> None:
        """Deliver what is ready and hand the core's outputs on (none of the frames made
        since the last turn when the sessions were just closed for a fence: a resumed
        replica's first tick resent what had fallen due while it was paused)."""
        closed = False
        if self._is_fenced is not None:
            reason = self._is_fenced()
            if reason is not None:
                if not self._fence_closed:
                    log.warning("fenced (%s): closing every edge session, refusing upgrades",
                                reason)  # fmt: skip
                # Every turn while fenced: a session whose upgrade was let through just
                # before the fence opens after the first turn's close, and is not served.
                self.core.close_all(f"this cloudcore replica is fenced: {reason}")
                closed = True
            self._fence_closed = reason is not None
            if self._member_term is not None:
                closed = self._new_term(reason is not None) or closed
        self.core.pump()
        self._flush(frames=not closed)
        if self.core.more:
            self._after_soon()

    def _new_term(self, fenced: bool) -> bool:
        """Close every session when the member Lease was taken again since they opened;
        True when it did."""
        assert self._member_term is not None
        if fenced:
            self._served_term = None  # closed: the next term starts with no session
            return False
        term, served = self._member_term(), self._served_term
        self._served_term = term
        if served is None or term == served:
            return False
        why = "its member Lease lapsed and was taken again (a pause?)"
        log.warning("fenced (%s): closing every edge session", why)
        self.core.close_all(f"this cloudcore replica was fenced: {why}")
        return True

    def _after_soon(self) -> None:
        """`_after` once on the next loop iteration, however many inputs come before it."""
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump_again)

    def _pump_again(self) -> None:
        self._pump_scheduled = False
        self._after()

    def _flush(self, *, frames: bool = True) -> None:
        """Hand the core's outputs on: frames are written at once (the transport buffers
        what a slow socket cannot take yet; the delivery window bounds it per node).
        Without `frames`, the messages' frames are dropped (the closes still go)."""
        out = self.core.take_outputs()
        conns = self._conns
        for conn_id, written in out.writes.items() if frames else ():
            conn = conns.get(conn_id)
            if conn is not None:
                conn.write_frames(written)
        for close in out.closes:
            conn = conns.get(close.conn)
            if conn is not None:
                conn.close(close.code, close.reason)
        if out.upstream:
            self._on_upstream(out.upstream)
        if out.syncs:
            self._on_syncs(out.syncs)
        if out.claims and self._on_claims is not None:
            self._on_claims(out.claims)

    def check_request(
        self, connection: wsconn.ServerConnection, request: Request
    ) -> Response | None:
        """Refuse a bad request (400) or a certificate for another node (403), with the reason."""
        remote = connection.remote_address
        self.gate.done(remote)
        try:
            peer = handshake.parse_request(request.path, _headers(request))
        except errors.HandshakeError as exc:
            log.warning("refused a connection from %s: %s", remote, exc)
            return connection.respond(http.HTTPStatus.BAD_REQUEST, f"{exc}\n")
        fenced = self.fence_reason()
        if fenced is not None:
            log.warning("refused node %s from %s: fenced (%s)", peer.node_id[:64], remote,
                        fenced)  # fmt: skip
            text = f"this cloudcore replica is fenced: {fenced}\n"
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, text)
        if self._tls is not None:
            transport = connection.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            reason = certs_tls.check_peer(der, peer.node_id, ca=self._recheck_ca)
            if reason is not None:
                log.warning("refused node %s from %s: %s", peer.node_id[:64], remote, reason)
                return connection.respond(http.HTTPStatus.FORBIDDEN, f"{reason}\n")
        connection.identity = peer.node_id  # the certificate's node, when TLS
        return None


def _headers(request: Request) -> dict[str, str]:
    return dict(request.headers.raw_items())


class _GatedSocket(socket.socket):
    """A listening socket whose accept closes what the handshake gate refuses, that
    takes at most `_ACCEPTS_PER_ROUND` connections per loop iteration, and that
    remembers what it accepted, for `shut_accepted` at stop.

    asyncio accepts up to its backlog (100) in one go; in a reconnect storm that made
    single loop iterations of tens of milliseconds (each accept, TLS and upgrade
    costs a few hundred microseconds), which every connected node's deliveries
    waited for. The listener stays readable, so the next iteration goes on."""

    gate: gate.HandshakeGate | None = None
    accepted: weakref.WeakSet[socket.socket]
    loop: asyncio.AbstractEventLoop | None = None
    taken = 0  # accepts in this loop iteration

    def accept(self) -> tuple[socket.socket, Any]:
        if self.taken >= _ACCEPTS_PER_ROUND:
            raise BlockingIOError  # asyncio ends this accept round
        if self.taken == 0 and self.loop is not None:
            self.loop.call_soon(self._next_round)
        self.taken += 1
        conn, peer = super().accept()
        self.accepted.add(conn)
        if self.gate is not None and not self.gate.admit(peer):
            conn.close()
            _log_refused(self.gate, peer)
            raise ConnectionAbortedError  # asyncio ends this accept round and tries again
        return conn, peer

    def _next_round(self) -> None:
        self.taken = 0


class _LoggedGate:
    """The gate as a TLS connection's admission, logging refusals as accept does."""

    def __init__(self, handshakes: gate.HandshakeGate) -> None:
        self._gate = handshakes

    def enter(self, peer: Hashable, start: Callable[[], object], cut: Callable[[], object]) -> bool:
        if self._gate.enter(peer, start, cut):
            return True
        _log_refused(self._gate, peer)
        return False

    def done(self, peer: Hashable) -> None:
        self._gate.done(peer)


def _log_refused(handshakes: gate.HandshakeGate, peer: object) -> None:
    refused = handshakes.refused
    if refused in (1, 10) or refused % 100 == 0:
        log.warning("%d handshakes pending, %d waiting: closed a connection from %s (%d so far)",
                    handshakes.limit, handshakes.waiting, peer, refused)  # fmt: skip


def _listen(address: str, port: int, handshakes: gate.HandshakeGate | None) -> _GatedSocket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    plain = socket.create_server((address, port), family=family, backlog=512)
    listener = _GatedSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    listener.gate = handshakes
    listener.accepted = weakref.WeakSet()
    return listener


async def _shut_accepted(listener: _GatedSocket, timeout: float) -> None:
    """End connections the server does not know yet (a TLS handshake in progress when
    it closed): shut their sockets, so their transports see the end and close."""
    left = [s for s in listener.accepted if s.fileno() != -1]
    for sock in left:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    deadline = time.monotonic() + timeout
    while any(s.fileno() != -1 for s in left) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
