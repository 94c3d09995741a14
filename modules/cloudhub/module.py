"""The cloudhub module: wires the websocket server, the core and the ObjectSync writer.

Input: its mailbox (downstream messages from edgecontroller, contract items 1, 3
and 5), which the server's event loop reads itself (`Hive.attach_reader`).
Output: upstream messages and session notices to edgecontroller (contract items
2, 4, 5), sent from the thread "beehive-cloudhub-upstream" so the loop never
waits on a mailbox; ObjectSync writes on the writer's thread. Admin commands
``cloudhub.nodes``, ``cloudhub.peek`` and ``cloudhub.address`` serve `beehive debug`;
``cloudhub.metrics``, ``cloudhub.health`` and ``cloudhub.ready`` the metrics module
(`modules.probes`; the snapshot is built in `metrics`).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import Any

from kubernetes import client

from beehive import errors as beehive_errors
from beehive.message import Message, Operation
from beehive.module import Module
from modules import contract, probes
from modules.certs import cloud as cloud_tls
from modules.certs import errors as cert_errors
from modules.certs.token import utc_now
from modules.cloudhub import (
    balance,
    claims,
    collect,
    core,
    objects,
    objectsync,
    observe,
    syncrecord,
)
from modules.cloudhub.objectsync import ObjectSyncWriter
from modules.cloudhub.owned import Claim
from modules.cloudhub.settings import CloudHubSettings
from modules.hub import redact
from modules.kube import crds, metered

log = logging.getLogger("modules.cloudhub")


class CloudHub(Module):
    """KubeEdge's cloudhub: edges connect here over websocket (see the package docs)."""

    message_redactor = staticmethod(redact.redacted)  # secrets hidden in debug views
    settings_type = CloudHubSettings

    def on_start(self) -> None:
        settings: CloudHubSettings = self.settings or CloudHubSettings()
        replica = self.context.services.get("replica")  # several replicas: claims, fencing
        self._core = core.CloudHubCore(
            limits=settings.limits(), clock=time.monotonic, claims=replica is not None
        )
        self._claimer: claims.Claimer | None = None
        self._collector: collect.Collector | None = None
        self._balancer: balance.Rebalancer | None = None
        self._api: client.ApiClient | None = None  # for ObjectSync records, if kept
        self._requests = metered.RequestStats()  # the API requests made through _api
        self._writer: ObjectSyncWriter | None = None
        self._upstream = _Upstream(
            self, settings.upstream_module, settings.upstream_queue, router=settings.router_module
        )
        hub_tls = self._load_tls(settings)
        self._transport = observe.CountingTransport(
            self._core,
            address=settings.address,
            port=settings.port,
            tick_interval=settings.tick_interval,
            on_upstream=self._upstream.put,
            on_syncs=self._submit_syncs,
            tls=hub_tls,
            handshake_timeout=settings.handshake_timeout,
            max_pending_handshakes=settings.max_pending_handshakes,
            max_queued_handshakes=settings.max_queued_handshakes,
            handshake_threads=settings.handshake_threads,
            max_write_buffer=settings.max_write_buffer,
            on_claims=self._put_claims,
            fenced=replica.fenced if replica is not None else None,
            member_term=(lambda: replica.member_term) if replica is not None else None,
            release_heap_after=settings.release_heap_after,
        )
        try:
            self._open_object_sync(settings, restore=replica is None)
            if replica is not None:  # nodes are claimed, their records read, as they connect
                self._claimer = claims.Claimer(
                    replica.owners, apply=self._transport.apply,
                    read_nodes=self._writer.read_nodes if self._writer is not None else None,
                )  # fmt: skip
                self._claimer.start()
                self._collector = collect.Collector(
                    replica.owners, is_leader=replica.is_leader, node_names=self._node_names,
                    records=self._writer.collect if self._writer is not None else None,
                    interval=replica.settings.gc_interval,
                )  # fmt: skip
                self._collector.start()
                self._balancer = self._rebalancer(replica, self._claimer)
            self._upstream.start()
            port = self._transport.start()
            self._transport.read_from(lambda wake: self.hive.attach_reader(self.module_name, wake))
        except BaseException:
            self.on_stop()
            raise
        if hub_tls is not None:
            log.info("cloudhub listening on wss://%s:%d (mutual TLS)", settings.address, port)
        else:
            log.warning("cloudhub listening on ws://%s:%d: plain websocket, edges are not"
                        " authenticated (tls: false; for loopback demos only)",
                        settings.address, port)  # fmt: skip
        if replica is not None:
            replica.add_listener(lambda event: self._transport.fence(replica.fenced()))
        self.hive.register_command("cloudhub.nodes", self._nodes)
        self.hive.register_command("cloudhub.peek", self._peek)
        self.hive.register_command("cloudhub.address", self._address)
        self._observer = observe.Observer(self._core, self._transport, tls=hub_tls)
        probes.offer(self.hive, self.module_name, metrics=self._metrics,
                     health=self._observer.health, ready=self._observer.ready)  # fmt: skip

    def _hand_over(self, seconds: float) -> None:
        """A clean stop with other replicas to take the edges: refuse upgrades (503, not
        ready) from now on, and close the sessions (1001) in batches spread over
        `seconds`, so that the others take the nodes over at a pace they can serve
        rather than all at once; before each batch the records are written, so that
        what the nodes acked here is not sent to them again there."""
        self._transport.refuse_upgrades("stopping: its edges go to the other replicas")
        total = self._core.session_count()
        steps = max(1, math.ceil(seconds / HAND_OVER_STEP))
        batch = max(1, math.ceil(total / steps))
        log.info("stopping: closing %d edge session(s) over %.1f s, %d every %.1f s",
                 total, seconds, batch, HAND_OVER_STEP)  # fmt: skip
        deadline, pause = time.monotonic() + seconds + 5.0, threading.Event()
        while self._core.session_count() and time.monotonic() < deadline:
            self._close_some(batch, "this cloudcore replica is stopping")
            pause.wait(HAND_OVER_STEP)

    def _close_some(self, count: int, reason: str) -> None:
        """Write the records (what the nodes acked here: their next replica reads it),
        then close `count` sessions, those of settled nodes first (`CloudHubCore.close_some`)."""
        if self._writer is not None:
            self._writer.flush(2.0)
        self._transport.apply(lambda hub: hub.close_some(count, reason))

    def _rebalancer(self, replica: Any, claimer: claims.Claimer) -> balance.Rebalancer | None:
        """The thread that hands sessions over when this replica serves more than its
        share (None when the replica settings turn it off)."""
        s = replica.settings
        if not s.rebalance_rate:
            return None
        why = "rebalancing: this cloudcore replica serves more than its share of the nodes"
        balancer = balance.Rebalancer(
            balance.Rebalance(slack=s.rebalance_slack, rate=s.rebalance_rate,
                              settle=s.rebalance_settle, clock=time.monotonic),
            me=replica.identity, sessions=self._core.session_count, owned=claimer.owned,
            members=replica.members,
            hand_over=lambda count: self._close_some(count, why),
        )  # fmt: skip
        balancer.start()
        return balancer

    def on_stop(self) -> None:
        if self._balancer is not None:
            self._balancer.stop()
        settings: CloudHubSettings = self.settings or CloudHubSettings()
        if self.context.services.get("replica") is not None and settings.hand_over_seconds:
            self._hand_over(settings.hand_over_seconds)
        self.hive.detach_reader(self.module_name)
        self._transport.stop()
        self._upstream.stop()
        if self._claimer is not None:
            self._claimer.stop()
        if self._collector is not None:
            self._collector.stop()
        if self._writer is not None:
            self._writer.stop()
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]

    def _load_tls(self, settings: CloudHubSettings) -> cloud_tls.HubTLS | None:
        """The CA and server certificate: from files when given, else the Secrets.

        Raises:
            CAStoreError: the files or Secrets are unusable, or neither is available.
        """
        if not settings.tls:
            return None
        if settings.tls_ca_file or settings.tls_cert_file or settings.tls_key_file:
            return cloud_tls.from_files(ca_file=settings.tls_ca_file,
                                        cert_file=settings.tls_cert_file,
                                        key_file=settings.tls_key_file)  # fmt: skip
        kube = self.context.services.get("kube")
        if kube is None:
            raise cert_errors.CAStoreError(
                "tls: true needs tls_ca_file, tls_cert_file and tls_key_file, or a kube: section"
            )
        api = kube.api_client()
        try:
            return cloud_tls.from_secrets(
                client.CoreV1Api(api), settings.cert_namespace, ips=settings.advertise_addresses,
                dns_names=settings.dns_names, now=utc_now(),
                replica=self.context.services.get("replica"),
            )  # fmt: skip
        except client.ApiException as exc:
            raise cert_errors.CAStoreError(
                f"cannot read the CA from namespace {settings.cert_namespace}: {exc.status}"
            ) from None
        finally:
            api.close()

    # ObjectSync.

    def _open_object_sync(self, settings: CloudHubSettings, *, restore: bool) -> None:
        """Read the records (`restore`: into the core; with several replicas each node's
        are read again when it is claimed) and start their writer."""
        kube = self.context.services.get("kube")
        if not settings.object_sync:
            return
        if kube is None:
            log.warning("no kube service: ObjectSync records are not kept or read")
            return
        self._api = self._requests.instrument(kube.api_client())
        if settings.install_crds:
            crds.install(self._api)
        replica = self.context.services.get("replica")
        self._writer = ObjectSyncWriter(
            self._api, interval=settings.sync_interval, shards=settings.sync_shards,
            writer=syncrecord.writer_token(replica.identity) if replica is not None else "",
        )  # fmt: skip
        restored = self._writer.read_all()
        if restore:
            count = self._core.restore(restored)
            log.info("restored what nodes acked of %d object(s)", count)
        self._writer.start()
        self.hive.register_command("cloudhub.objectsync", self._writer.stats)

    def _node_names(self) -> set[str] | None:
        if self._writer is not None:
            return self._writer.node_names()
        kube = self.context.services.get("kube")
        if kube is None:
            return None
        api = kube.api_client()
        try:
            return objectsync.node_names(api)
        finally:
            api.close()

    def _put_claims(self, found: list[Claim]) -> None:
        if self._claimer is not None:
            self._claimer.put(found)

    def _submit_syncs(self, ops: list[objects.SyncOp]) -> None:
        if self._writer is not None:
            self._writer.submit(ops)

    # Admin commands (admin thread).

    def _nodes(self, node: str = "") -> list[dict[str, Any]]:
        rows = [row for row in self._transport.call(self._core.nodes)
                if not node or row["node"] == node]  # fmt: skip
        replica = self.context.services.get("replica")
        if self._claimer is not None and replica is not None:  # every node, by its owner
            rows = self._claimer.with_owners(rows, replica.members, node)
        if self._writer is not None:
            for row in rows:
                row["sync_pending"] = self._writer.pending()
        return rows

    def _metrics(self, nodes: list[str] | None = None, timeout: float = 2.0) -> dict[str, Any]:
        snapshot = self._observer.snapshot(nodes or [], timeout=timeout)
        snapshot["upstream_dropped"] = self._upstream.dropped
        snapshot["kube_requests"] = self._requests.snapshot()
        snapshot["objectsync"] = self._observer.object_sync(self._writer)
        if self._claimer is not None and snapshot.get("ownership") is not None:
            snapshot["ownership"].update(self._claimer.stats())
            rebalanced = self._balancer.handed_over if self._balancer is not None else 0
            snapshot["ownership"]["rebalanced"] = rebalanced
        return snapshot

    def _peek(self, node: str, limit: int = 10) -> list[dict[str, Any]]:
        queued = self._transport.call(lambda: self._core.peek(node, int(limit)))
        return [redact.redacted(self.hive.show(message)) for message in queued]

    def _address(self) -> dict[str, Any]:
        return {"address": self._transport.address, "port": self._transport.port}


HAND_OVER_STEP = 0.5  # seconds between two batches of sessions closed at a clean stop
_USER = "user"  # the router's group (modules.userbus)
_SESSIONS = frozenset({Operation.CONNECTED, Operation.DISCONNECTED})
# Session notices (contract items 4 and 5) the hand-off keeps even when full.
_KEPT = frozenset({contract.RESYNC, Operation.CONNECTED, Operation.DISCONNECTED})


class _Upstream:
    """A bounded hand-off from the loop to edgecontroller's mailbox, on its own thread.

    The loop hands over whole batches (one lock and one wake-up per batch, not per
    message); the bound counts messages.
    """

    def __init__(self, owner: Module, target: str, size: int, *, router: str = "") -> None:
        self._owner = owner
        self._target = target  # module that receives edge traffic and notices
        self._router = router  # module that receives group ``user`` and a copy of sessions
        self._size = size  # most messages waiting
        self._batches: collections.deque[list[Message]] = collections.deque()  # oldest first
        self._waiting = 0  # messages in _batches
        self._cond = threading.Condition()  # guards _batches and _waiting
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beehive-cloudhub-upstream")
        self.dropped = 0  # messages dropped because the hand-off was full

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)

    def put(self, messages: list[Message]) -> None:
        """Called on the loop thread: never blocks. When full, an edge's report is
        dropped (counted, logged; edges send status again and retry what they asked),
        but never a session notice: a lost ``resync`` would leave a node without what it
        missed, a lost ``connected`` or ``disconnected`` would leave its Lease wrong."""
        with self._cond:
            room = self._size - self._waiting
            dropped: list[Message] = []
            if len(messages) <= room:
                kept = messages
            else:
                kept = messages[: max(room, 0)]
                for message in messages[len(kept) :]:
                    (kept if message.route.operation in _KEPT else dropped).append(message)
            if kept:
                self._batches.append(kept)
                self._waiting += len(kept)
                self._cond.notify()
        for message in dropped:
            self.dropped += 1
            log.error("upstream hand-off full: dropped %s (%s on %s), %d dropped in all",
                      message.msg_id, message.route.operation,
                      message.route.resource, self.dropped)  # fmt: skip

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._batches or self._stopping.is_set(), 0.5)
                if not self._batches:
                    if self._stopping.is_set():
                        return
                    continue
                batch = self._batches.popleft()
                self._waiting -= len(batch)
            if self._router:
                batch = self._to_router(batch)
            if not batch:
                continue
            try:  # waits while edgecontroller's mailbox is full; gives up only to stop
                self._owner.hive.send_all(self._target, batch, stop=self._stopping)
            except beehive_errors.BeehiveError as exc:
                log.error("cannot pass %d message(s) to %s (from %s on): %s",
                          len(batch), self._target, batch[0].msg_id, exc)  # fmt: skip

    def _to_router(self, batch: list[Message]) -> list[Message]:
        """Hand the router what is its (as DispatchUpstream sends group ``user`` to the
        router, notes 4.8): the edges' ``user`` messages, and a copy of connected and
        disconnected notices; the rest stays for the target. A hive without the router
        gets it all, as before."""
        theirs = [m for m in batch if m.route.group == _USER or m.route.operation in _SESSIONS]
        if not theirs:
            return batch
        try:
            self._owner.hive.send_all(self._router, theirs, stop=self._stopping)
        except beehive_errors.UnknownModuleError:
            self._router = ""  # no router in this hive
            return batch
        except beehive_errors.BeehiveError as exc:
            log.error("cannot pass %d message(s) to %s: %s", len(theirs), self._router, exc)
        return [m for m in batch if m.route.group != _USER]
