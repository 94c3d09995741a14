"""One fleet node: its websocket connection, driven by the edge's own protocol code.

Input: frames from cloudhub (a `modules.hub.wsconn` client connection), ticks from the fleet
(keepalive and status deadlines) and fault orders (`drop`). Output: frames to
cloudhub: registration, node status, keepalives, pod status and the ack for each
delivery, sent only after the node's store applied it (as metamanager does).
Reconnects after a drop at once, after a failure with jittered backoff.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time

from websockets.exceptions import InvalidHandshake, InvalidURI

from beehive.message import Message
from modules import backoff, hollow, replies
from modules.edgehub.core import EdgeCore
from modules.fleet import nodetls
from modules.fleet import store as store_mod
from modules.fleet.options import FleetOptions
from modules.fleet.stats import Counters
from modules.hub import errors, handshake, tlslayer, wsconn
from modules.hub.ratelimit import TokenBucket
from modules.metamanager.store import StoreError

log = logging.getLogger("modules.fleet")

# Frames a broken edge might send: not JSON, wrong field types, an unknown operation.
MALFORMED_FRAMES = (
    "this is not json",
    '{"header": 5, "route": [], "content": null}',
    '{"header": {"msg_id": "m-bad"}, "route": {"source": "edged", "group": "resource",'
    ' "operation": "explode", "resource": "default/pod/x"}, "content": null}',
)


_MAX_WITHHELD = 65_536  # ids of withheld deliveries remembered per node
_MAX_REPORTS = 1_000  # pod status reports waiting for the upstream rate, per node


class EdgeSession:
    """One edge node of the fleet; `run` keeps it connected until `stop` is set."""

    def __init__(
        self, *, index: int, options: FleetOptions, counters: Counters,
        node_store: store_mod.MemoryNodeStore, gate: asyncio.Semaphore,
        rng: random.Random, tls: nodetls.NodeTLS | None = None,
        handshake_workers: tlslayer.HandshakeWorkers | None = None,
    ) -> None:  # fmt: skip
        self.node_id = options.node_name(index)
        self._options = options  # what the fleet was asked to do
        self._counters = counters  # fleet-wide totals, shared
        self.store = node_store  # what this node holds
        self._gate = gate  # bounds handshakes in progress across the fleet
        self._tls = tls  # this node's certificate and the fleet's context, None for ws://
        self._handshake_workers = handshake_workers  # threads for TLS handshakes, shared
        # Jitter and fault choices: the fleet's, shared (a generator's state is 2.5 KiB,
        # as much as a hundredth of what an idle node costs the fleet).
        self._rng = rng
        faults = options.faults
        self._malformed = index < faults.malformed_nodes  # send bad frames on connect
        self.core = EdgeCore(
            node_id=self.node_id,
            project_id=options.project_id,
            clock=time.monotonic,
            heartbeat=options.heartbeat,
            # Staggered: each node's period differs a little, so reports spread out.
            status_interval=options.status_interval * self._rng.uniform(0.9, 1.1),
            max_frame_size=options.max_size,
            rng=self._rng,
        )
        self._ws: wsconn.ClientConnection | None = None  # the current connection
        self._dropped = False  # the current connection was dropped on purpose
        self._withheld: set[str] = set()  # ids whose first delivery was not acked
        self._pending: set[asyncio.Task[None]] = set()  # delayed acks in flight
        self._reports: collections.deque[Message] = collections.deque()  # pod status, waiting
        self._pod_reports = hollow.PodReports()  # which reports this node owes
        self._bucket = TokenBucket(rate=30.0, burst=60, now=time.monotonic())  # upstream rate
        self._ended = asyncio.Event()  # the current connection ended

    @property
    def url(self) -> str:
        scheme = "ws" if self._tls is None else "wss"
        path = handshake.connection_path(self.node_id, self._options.project_id)
        return f"{scheme}://{self._options.cloud}{path}"

    @property
    def is_connected(self) -> bool:
        return self._ws is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect; until `stop` is set."""
        failures = 0
        while not stop.is_set():
            ws = await self._connect()
            if ws is None:
                failures += 1
                await sleep_or_stop(stop, self._backoff(failures))
                continue
            failures = 0
            await self._ended.wait()
            if not self._dropped:  # the cloud ended it: back off as an edge would
                await sleep_or_stop(stop, self._backoff(1))

    def drop(self) -> bool:
        """Break the connection abruptly, as a network failure would; False if not connected."""
        if self._ws is None:
            return False
        self._dropped = True
        self._ws.abort()
        self._counters.drops += 1
        return True

    def tick(self) -> None:
        """Keepalive and node status when due, and pod reports the rate now allows."""
        deadline = self.core.next_deadline()
        if deadline is not None and deadline <= time.monotonic():
            sent = self.core.sent
            self.core.tick()
            self._counters.status_reports += self.core.sent - sent  # node status, if due
            self._flush()
        if self._reports:
            self._send_reports()
            self._flush()

    async def close(self) -> None:
        if self._ws is not None:
            self._ws.close(1000, "the fleet is stopping")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), 2.0)

    # Connection.

    async def _connect(self) -> wsconn.ClientConnection | None:
        async with self._gate:
            self._ended.clear()
            headers = handshake.connection_headers(self.node_id, self._options.project_id)
            timeout, max_size = self._options.connect_timeout, self._options.max_size
            try:
                if self._tls is None:
                    return await wsconn.connect(
                        self, self.url, headers=headers, ssl_context=None, max_size=max_size,
                        timeout=timeout,
                    )  # fmt: skip
                return await nodetls.connect(
                    self, self.url, credentials=self._tls, headers=headers, max_size=max_size,
                    timeout=timeout, handshake_workers=self._handshake_workers,
                )  # fmt: skip
            except nodetls.HandshakeError as exc:  # names the node already
                self._counters.connect_failures += 1
                log.debug("%s", exc)
                return None
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                self._counters.connect_failures += 1
                log.debug("%s: connect failed: %s", self.node_id, exc)
                return None

    # wsconn.Handler: the connection's events, on the loop. The session starts in
    # `on_open`, before `connect` returns: the cloud may write at once, and frames
    # that arrive with the handshake's answer are handled (and acked) already.

    def on_open(self, conn: wsconn.Connection) -> None:
        assert isinstance(conn, wsconn.ClientConnection)
        self._ws, self._dropped = conn, False
        self._counters.connects += 1
        self._counters.connected += 1
        sent = self.core.sent
        self.core.connected()  # keepalive, registration, first node status
        self._counters.status_reports += self.core.sent - sent
        self._flush()
        if self._malformed:
            self._send_malformed()

    def on_frame(self, conn: wsconn.Connection, data: bytes) -> float:
        try:
            self._receive(data)
        except errors.HubError as exc:
            log.debug("%s: connection ended: %s", self.node_id, exc)
            conn.abort()
        return 0.0

    def on_frames_handled(self, conn: wsconn.Connection) -> None:
        self._flush()  # the acks for a read's deliveries: one write

    def on_close(self, conn: wsconn.Connection) -> None:
        log.debug("%s: connection ended", self.node_id)
        if self._ws is conn:
            self._ws = None
            self.core.disconnected()
            self._counters.connected -= 1
            self._counters.disconnects += 1
        self._ended.set()

    def _receive(self, frame: str | bytes) -> None:
        counters = self._counters
        before = counters.received
        inbound = self.core.receive(frame)
        counters.received = before + len(inbound.store) + len(inbound.replies)
        for reply in inbound.replies:
            if replies.error_text(reply) is not None:
                counters.cloud_errors += 1
        for message in inbound.store:
            self._store_and_ack(message)

    def _store_and_ack(self, message: Message) -> None:
        """Apply, then ack (or, as the faults say, hold the ack back or withhold it)."""
        counters, faults = self._counters, self._options.faults
        if message.route.operation in store_mod.CHANGES:
            try:
                verdict = self.store.apply(message, time.monotonic())
            except StoreError as exc:  # the sqlite store refused it: answer as metamanager
                counters.store_errors += 1
                self.core.send(message.error_reply(str(exc)))
                return
            self._count(verdict, message)
        if self._withhold(message):
            return
        self._withheld.discard(message.msg_id)
        if faults.ack_delay:
            task = asyncio.get_running_loop().create_task(self._ack_later(message))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        self.core.ack(message)
        counters.acks += 1

    def _withhold(self, message: Message) -> bool:
        """Whether to leave this delivery unacked: a chosen fraction, first copy only."""
        fraction = self._options.faults.withhold_acks
        if not fraction or message.msg_id in self._withheld:
            return False
        if self._rng.random() >= fraction:
            return False
        if len(self._withheld) >= _MAX_WITHHELD:  # resends that never came: forget them
            self._withheld.clear()
        self._withheld.add(message.msg_id)
        self._counters.acks_withheld += 1
        return True

    def _count(self, verdict: store_mod.Verdict, message: Message) -> None:
        counters = self._counters
        if verdict is store_mod.Verdict.STALE:
            counters.duplicates += 1
        elif verdict is store_mod.Verdict.DELETED:
            counters.deleted += 1
        elif verdict in (store_mod.Verdict.NEW, store_mod.Verdict.NEWER):
            counters.stored += 1
            # Running once stored; stopped once it is being deleted (a graceful delete
            # waits for the node), as the hollow edge does.
            if self._options.pod_status:
                self._report_pod(message)

    def _report_pod(self, message: Message) -> None:
        report = self._pod_reports.due(message)
        if report is not None:
            if len(self._reports) >= _MAX_REPORTS:  # a newer report for the pod comes later
                self._reports.popleft()
            self._reports.append(report)
            self._send_reports()

    def _send_reports(self) -> None:
        """Pod reports within edgehub's upstream rate (messageQPS 30, burst 60)."""
        now = time.monotonic()
        while self._reports and self.core.is_connected and self._bucket.take(now):
            self.core.send(self._reports.popleft())
            self._counters.status_reports += 1

    async def _ack_later(self, message: Message) -> None:
        await asyncio.sleep(self._options.faults.ack_delay)
        if self.core.is_connected:
            self.core.ack(message)
            self._counters.acks += 1
            self._flush()

    def _send_malformed(self) -> None:
        if self._ws is not None and self._ws.write_frames(MALFORMED_FRAMES):  # raw, on purpose
            self._counters.malformed_sent += len(MALFORMED_FRAMES)

    def _flush(self) -> None:
        """Write the protocol's frames in one go (the acks for a burst of deliveries: one
        socket write); never waits on the socket, whose transport buffers what waits.
        Frames for a connection that is gone are lost, as on an edge."""
        frames = self.core.data_to_send()
        if frames and self._ws is not None:
            self._ws.write_frames(frames)

    def _backoff(self, failures: int) -> float:
        cap = self._options.reconnect_max
        return backoff.jittered(failures, initial=0.5, cap=cap, rng=self._rng)


async def sleep_or_stop(stop: asyncio.Event, delay: float) -> None:
    """Sleep `delay` seconds or until `stop` is set, whichever comes first."""
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
