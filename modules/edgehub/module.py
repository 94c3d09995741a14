"""The edgehub module: the edge's connection to cloudhub.

Input: its mailbox (acks from metamanager, messages and ``send_sync`` requests
from local modules, all bound for the cloud) and frames from the cloud, read on
the thread "beehive-edgehub-conn", which also connects, reconnects with jittered
backoff, and ticks keepalives and status reports. Output: frames to the cloud;
cloud messages to metamanager and replies to their waiting callers
(`Hive.send_resp`). Upstream messages other than acks pass a token bucket
(edgeHub.messageQPS/messageBurst); those over it wait in a bounded outbox.
Admin commands: ``<name>.state``, and ``<name>.metrics``, ``.health`` (the
connection loop runs) and ``.ready`` (connected) for the metrics module.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
import time
from typing import Any

from beehive import errors as beehive_errors
from beehive.message import Message
from beehive.module import Module
from modules import backoff, probes, replies
from modules.certs import errors as cert_errors
from modules.edgehub.core import EdgeCore, Inbound
from modules.edgehub.credentials import EdgeCredentials
from modules.edgehub.settings import EdgeHubSettings
from modules.edgehub.transport import ClientConnection
from modules.hub import errors, handshake, redact
from modules.hub.protocol import is_ack
from modules.hub.ratelimit import TokenBucket

log = logging.getLogger("modules.edgehub")

_MAX_READ_WAIT = 0.2  # seconds; bounds how late a stop or a due outbox message is noticed


class EdgeHub(Module):
    """KubeEdge's edgehub over plain websocket (see the module docstring)."""

    message_redactor = staticmethod(redact.redacted)  # secrets hidden in debug views
    settings_type = EdgeHubSettings

    def on_start(self) -> None:
        settings: EdgeHubSettings = self.settings or EdgeHubSettings()
        self._settings = settings
        self._core = EdgeCore(
            node_id=settings.node_name,
            project_id=settings.project_id,
            clock=time.monotonic,
            heartbeat=settings.heartbeat,
            status_interval=settings.status_interval,
            register=settings.register_node,
            max_frame_size=settings.max_frame_size,
        )
        self._lock = threading.Lock()  # guards _core, _conn and _outbox; orders writes
        self._conn: ClientConnection | None = None  # the live connection, if any
        self._connecting: socket.socket | None = None  # the socket of a handshake under way
        self._bucket = TokenBucket(
            rate=settings.message_qps, burst=settings.message_burst, now=time.monotonic()
        )
        self._outbox: collections.deque[Message] = collections.deque()  # waiting for tokens
        self._stop = threading.Event()
        self.last_error = ""  # why the last connection attempt or connection failed
        self._credentials = EdgeCredentials(settings) if settings.tls else None
        self._thread = threading.Thread(target=self._loop, name="beehive-edgehub-conn")
        self._thread.start()
        self.hive.register_command(f"{self.module_name}.state", self._state)
        probes.offer(self.hive, self.module_name, metrics=self._metrics, health=self._health,
                     ready=self._ready)  # fmt: skip

    def on_stop(self) -> None:
        self._stop.set()
        with self._lock:
            connecting = self._connecting
        if connecting is not None:  # a handshake the cloud does not answer would block us
            with contextlib.suppress(OSError):
                connecting.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)

    def _connecting_on(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._connecting = sock

    def on_message(self, message: Message) -> None:
        """A message for the cloud: acks go at once, the rest within the rate limit."""
        with self._lock:
            if is_ack(message) or (not self._outbox and self._bucket.take(time.monotonic())):
                self._write(message)
            elif len(self._outbox) < self._settings.outbox_size:
                self._outbox.append(message)
            else:
                self._refuse(message, "the upstream outbox is full")

    # Connection thread.

    def _loop(self) -> None:
        """`_run`, and should it ever end by an error, an edge that says so (``state``)."""
        try:
            self._run()
        except BaseException as exc:
            self.last_error = f"the connection loop ended: {type(exc).__name__}: {exc}"[:512]
            log.critical("edge %s: %s", self._settings.node_name, self.last_error)
            raise

    def _run(self) -> None:
        failures = 0
        context = None
        if self._credentials is None:
            log.warning("edge %s: plain websocket to %s, no TLS (tls: false; loopback demos"
                        " only)", self._settings.node_name, self._settings.server)  # fmt: skip
        while not self._stop.is_set():
            try:
                if self._credentials is not None and context is None:
                    context = self._credentials.context()
                conn = ClientConnection(
                    self._settings.url,
                    handshake.connection_headers(
                        self._settings.node_name, self._settings.project_id
                    ),
                    timeout=self._settings.handshake_timeout,
                    ssl_context=context,
                    max_response=self._settings.max_upgrade_response,
                    max_message=self._settings.max_frame_size,
                    on_socket=self._connecting_on,
                )
            except (errors.HubConnectionError, cert_errors.EnrollError) as exc:
                self._connecting_on(None)
                failures += 1
                self._note_failure(exc, failures)
                continue
            self._connecting_on(None)
            failures = 0
            if self._serve(conn):
                context = None  # rotated: connect with the new certificate

    def _serve(self, conn: ClientConnection) -> bool:
        """Serve one connection until it ends; True when it ended for a new certificate."""
        rotated = False
        with self._lock:
            self._conn = conn
            self._core.connected()
            self._flush()
        log.info("edge %s connected to %s", self._settings.node_name, conn.url)
        try:
            while not self._stop.is_set() and self._conn is conn and not rotated:
                rotated = self._rotate_if_due()
                data = conn.recv(self._read_wait())
                with self._lock:
                    inbound = self._core.receive(data) if data is not None else Inbound()
                    self._core.tick()
                    self._drain_outbox()
                    self._flush()
                self._hand_over(inbound)
        except errors.HubConnectionError as exc:
            self.last_error = str(exc)
            log.warning("edge %s: %s", self._settings.node_name, exc)
        except Exception as exc:  # what a cloud sends never ends the loop: reconnect
            self.last_error = f"{type(exc).__name__} handling what the cloud sent: {exc}"[:512]
            log.exception("edge %s: dropping the connection", self._settings.node_name)
        finally:
            with self._lock:
                self._core.disconnected()
                self._conn = None
                self._fail_outbox()
            conn.close()
        if not rotated:
            self._stop.wait(self._backoff(1))
        return rotated

    def _rotate_if_due(self) -> bool:
        """Rotate the certificate when due; True if it was (the caller reconnects)."""
        credentials = self._credentials
        if credentials is None or not credentials.rotation_due():
            return False
        try:
            credentials.rotate()
        except cert_errors.EnrollError as exc:
            self.last_error = str(exc)
            log.error("edge %s: %s; retrying in %.0f s", self._settings.node_name, exc,
                      self._settings.rotation_retry)  # fmt: skip
            credentials.postpone(self._settings.rotation_retry)
            return False
        return True

    def _read_wait(self) -> float:
        with self._lock:
            deadline = self._core.next_deadline()
        wait = _MAX_READ_WAIT if deadline is None else deadline - time.monotonic()
        return min(max(wait, 0.001), _MAX_READ_WAIT)

    def _hand_over(self, inbound: Inbound) -> None:
        for message in inbound.store:
            try:
                self.hive.send(self._settings.store_module, message)
            except beehive_errors.BeehiveError as exc:
                log.error("cannot pass %s to %s: %s", message.msg_id,
                          self._settings.store_module, exc)  # fmt: skip
        for message in inbound.bus:
            target = (self._settings.servicebus_module if message.route.source ==
                      "router_servicebus" else self._settings.eventbus_module)  # fmt: skip
            try:
                self.hive.send(target, message)
            except beehive_errors.BeehiveError as exc:
                log.error("cannot pass %s (%s %s) to %s: %s", message.msg_id,
                          message.route.operation, message.route.resource, target, exc)  # fmt: skip
        for reply in inbound.replies:
            failed = replies.error_text(reply)
            if self.hive.is_awaiting(reply.parent_msg_id):
                self.hive.send_resp(reply)
            elif failed is not None:
                text = beehive_errors.excerpt(failed)
                log.warning("edge %s: the cloud refused %s: %s", self._settings.node_name,
                            reply.parent_msg_id, text)  # fmt: skip
            else:  # the answer to a report nobody waits on (pod status); content not logged
                log.debug("edge %s: reply to %s", self._settings.node_name,
                          reply.parent_msg_id)  # fmt: skip

    def _note_failure(
        self, exc: errors.HubConnectionError | cert_errors.EnrollError, failures: int
    ) -> None:
        self.last_error = str(exc)
        delay = self._backoff(failures)
        log.warning("edge %s: %s; retrying in %.1f s", self._settings.node_name, exc, delay)
        self._stop.wait(delay)

    def _backoff(self, failures: int) -> float:
        s = self._settings
        return backoff.jittered(failures, initial=s.reconnect_initial, cap=s.reconnect_max)

    # Under self._lock.

    def _write(self, message: Message) -> None:
        try:
            self._core.send(message)
            self._flush()
        except errors.HubError as exc:
            self._refuse(message, str(exc))

    def _flush(self) -> None:
        frames = self._core.data_to_send()
        if self._conn is None:
            return
        try:
            for frame in frames:
                self._conn.send(frame)
        except errors.HubConnectionError as exc:
            self.last_error = str(exc)
            log.warning("edge %s: write failed: %s", self._settings.node_name, exc)

    def _drain_outbox(self) -> None:
        now = time.monotonic()
        while self._outbox and self._bucket.take(now):
            self._write(self._outbox.popleft())

    def _fail_outbox(self) -> None:
        while self._outbox:
            self._refuse(self._outbox.popleft(), "the connection to the cloud was lost")

    def _refuse(self, message: Message, reason: str) -> None:
        """Not sent: a waiting caller gets an error reply; anything else is logged."""
        if message.header.sync:
            self.hive.send_resp(message.error_reply(f"not sent to the cloud: {reason}"))
        else:
            log.warning("edge %s: dropped %s (%s %s): %s", self._settings.node_name,
                        message.msg_id, message.route.operation,
                        message.route.resource, reason)  # fmt: skip

    # Admin commands.

    def _metrics(self, nodes: list[str] | None = None) -> dict[str, Any]:
        expires = self._credentials.expires if self._credentials is not None else None
        with self._lock:
            return {
                "kind": "edgehub",
                "node": self._settings.node_name,
                "connected": self._core.is_connected,
                "connects": self._core.connects,
                "received": self._core.received,
                "sent": self._core.sent,
                "outbox": len(self._outbox),
                "certificates": {"node": expires.timestamp()} if expires else {},
            }

    def _health(self, timeout: float = 1.0) -> list[str]:
        return [] if self._thread.is_alive() else [self.last_error or "the connection loop ended"]

    def _ready(self, timeout: float = 1.0) -> list[str]:
        with self._lock:
            connected = self._core.is_connected
        if connected:
            return []
        why = f": {self.last_error}" if self.last_error else ""
        return [f"not connected to {self._settings.server}{why}"]

    def _state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "node": self._settings.node_name,
                "server": self._settings.server,
                "connected": self._core.is_connected,
                "loop": "running" if self._thread.is_alive() else "ended",
                "connects": self._core.connects,
                "received": self._core.received,
                "sent": self._core.sent,
                "outbox": len(self._outbox),
                "last_error": self.last_error,
            }
