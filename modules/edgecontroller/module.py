"""EdgeController: the module wiring reflectors, the downstream thread and upstream workers.

Input: the Kubernetes API (through `services["kube"]`) and cloudhub's messages in this
module's mailbox; output: messages to cloudhub (objects for nodes, replies, resynced
notices) and writes to the API, among them the edge nodes' Events from cloudhub's
session notices (`nodeevents`, written by an `EventRecorder`). Threads: one reflector
per watched resource, one downstream thread draining the keyed queue, the upstream
worker pool and the Event writer; all named ``beehive-edgecontroller-*`` and stopped
in `on_stop`. Admin commands: ``watches``
(`beehive debug watches`), and ``edgecontroller.metrics``, ``.health`` and ``.ready``
for the metrics module (`modules.probes`): ready once every watch has listed.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Hashable
from typing import Any

from beehive import Message, Module, errors
from beehive.message import now_ms
from modules import contract, probes
from modules.edgecontroller import kinds, nodeevents
from modules.edgecontroller.downstream import Downstream, Fresh, Obj, build_message, uids
from modules.edgecontroller.fresh import FreshReader
from modules.edgecontroller.kinds import Kind
from modules.edgecontroller.location import LocationCache
from modules.edgecontroller.queues import KeyedQueue
from modules.edgecontroller.reflector import Event, Reflector
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.edgecontroller.upstream import Upstream
from modules.hub import redact
from modules.kube import metered
from modules.kube.recorder import ApiSink, EventRecorder

log = logging.getLogger("modules.edgecontroller")

SESSION_OPERATIONS = frozenset({"connected", "disconnected", "keepalive"})
# Resources that must be listed before a resync can say what a node should have.
REQUIRED = frozenset({contract.NODE, contract.POD, contract.CONFIGMAP, contract.SECRET})
# Queued entries the downstream thread takes at a time; what they yield goes to
# cloudhub in batches of up to SEND_BATCH messages (one wake-up of cloudhub per batch).
DRAIN_BATCH = 256
SEND_BATCH = 512
LIST_CHUNK = 256  # a list's events per queue entry
# Threads reading nodes taken over from another replica: a read is two requests, and
# a failover brings hundreds of nodes to an API server that is slow under the load.
FRESH_READERS = 16
ROUTER_KINDS = frozenset({contract.RULE, contract.RULEENDPOINT})  # handed to the router
_ROUTER_OPERATIONS = {"ADDED": "insert", "MODIFIED": "update", "DELETED": "delete"}


class EdgeController(Module):
    """KubeEdge's edgecontroller: Kubernetes objects down to edges, edge reports up."""

    message_redactor = staticmethod(redact.redacted)  # secrets hidden in debug views
    settings_type = EdgeControllerSettings

    def on_start(self) -> None:
        kube = self.context.services.get("kube")
        if kube is None:
            raise errors.BeehiveError("edgecontroller needs a kube: section in the config")
        settings: EdgeControllerSettings = self.settings or EdgeControllerSettings()
        self._halt = threading.Event()  # set in on_stop: every thread of ours ends
        self._location = LocationCache()  # which node needs which configmap/secret
        self._downstream = Downstream(self._location)  # touched by the downstream thread only
        self._queue: KeyedQueue[tuple[Any, ...]] = KeyedQueue(settings.downstream_buffer)
        self._chunks = itertools.count()  # keys for chunks of listed objects
        self._synced: set[str] = set()  # resource types whose first list was processed
        self._pending: set[str] = set()  # nodes whose resync waits for the first lists
        self._requests = metered.RequestStats()  # every API request of our clients
        self._reflectors = {
            kind.rtype: Reflector(
                kind,
                connect=lambda: self._requests.instrument(kube.api_client(retries=0)),
                sink=self._on_events,
                on_synced=self._on_synced,
                settings=settings,
                label_selector=settings.node_selector if kind is kinds.NODES else "",
            )
            for kind in kinds.ALL
        }
        self._api_client = self._requests.instrument(
            kube.api_client(connection_pool_maxsize=settings.upstream_workers)
        )
        self._upstream = Upstream(
            hive=self.hive,
            api_client=self._api_client,
            settings=settings,
            location=self._location,
            lookup=self._lookup,
        )
        self._events_api = self._requests.instrument(kube.api_client())  # the Event writer's
        # Takeover resyncs read the node and its pods from the API first (several replicas).
        self._fresh_api = self._requests.instrument(
            kube.api_client(connection_pool_maxsize=FRESH_READERS)
        )
        self._fresh = FreshReader(
            self._fresh_api, self._on_fresh, workers=FRESH_READERS,
            cluster_nodes=lambda: len(self._downstream.edge_nodes),  # a set's len: any thread
        )  # fmt: skip
        self._fresh.start()
        self._events: EventRecorder | None = None  # the nodes' Events, unless turned off
        if settings.node_events:
            self._events = EventRecorder(ApiSink(self._events_api), owner=self.module_name,
                                         queue_size=settings.node_event_queue)  # fmt: skip
            self._events.start()
        self._thread = threading.Thread(
            target=self._drain, name="beehive-edgecontroller-downstream", daemon=True
        )
        self._thread.start()
        self._upstream.start()
        for reflector in self._reflectors.values():
            reflector.start()
        self.hive.register_command("watches", self.watches)
        probes.offer(self.hive, self.module_name, metrics=self._metrics, health=self._health,
                     ready=self._ready)  # fmt: skip

    def on_stop(self) -> None:
        self._halt.set()
        self._queue.close()
        for reflector in self._reflectors.values():
            reflector.stop()
        self._upstream.stop()
        self._fresh.stop()
        self._fresh_api.close()
        self._thread.join(5)
        if self._events is not None:
            self._events.stop()
        self._events_api.close()
        self._api_client.close()

    def on_message(self, message: Message) -> None:
        """Route cloudhub's messages: resync, session notices, or reports for the workers."""
        try:
            resource = contract.parse_resource(message.route.resource)
        except ValueError as exc:
            log.error("dropped message %s: %s", message.msg_id, exc)
            if message.header.sync:
                self.hive.send_resp(message.error_reply(str(exc)))
            return
        operation = message.route.operation
        if not resource.type and operation == contract.RESYNC:
            content = message.content if isinstance(message.content, dict) else {}
            if content.get("takeover") == "true":  # the node came from another replica
                self._fresh.put(resource.node)  # read, then resynced (`_on_fresh`)
            else:
                self._queue.put(("resync", resource.node), ("resync", resource.node, None))
        elif not resource.type and operation in SESSION_OPERATIONS | nodeevents.NOTICES:
            if operation in SESSION_OPERATIONS:
                self._upstream.session(resource.node, operation)
            if operation in nodeevents.NOTICES:
                self._record(resource.node, operation, message.content)
        else:
            self._upstream.submit(resource.node, message)

    def watches(self) -> dict[str, Any]:
        """Admin command ``watches``: per-resource watch state and the queues' depths."""
        return {
            "watches": [r.snapshot() for r in self._reflectors.values()],
            "downstream_queued": len(self._queue),
            "downstream_merged": self._queue.merged,
            "upstream_queued": self._upstream.queued(),
            "upstream_refused": self._upstream.refused,
            "upstream_unchanged": self._upstream.unchanged,
            "refused_by_node": dict(self._upstream.refused_by_node),
            "node_events": self._events.stats() if self._events is not None else None,
            "fresh_reads": self._fresh.reads,
            "fresh_failures": self._fresh.failures,
        }

    def _metrics(self, nodes: list[str] | None = None) -> dict[str, Any]:
        """``edgecontroller.metrics``: watches, queues, reports and API requests."""
        return {
            "kind": "edgecontroller",
            "watches": [r.snapshot() for r in self._reflectors.values()],
            "downstream_queued": len(self._queue),
            "upstream_queued": self._upstream.queued(),
            "reports": self._upstream.report_counts(),
            "kube_requests": self._requests.snapshot(),
            "node_events": self._events.stats() if self._events is not None else None,
        }

    def _health(self, timeout: float = 1.0) -> list[str]:
        """``edgecontroller.health``: the downstream thread runs."""
        return [] if self._thread.is_alive() else ["the downstream thread has ended"]

    def _ready(self, timeout: float = 1.0) -> list[str]:
        """``edgecontroller.ready``: every watch has listed (its first list is handed on)."""
        waiting = [r.kind.plural for r in self._reflectors.values() if not r.synced]
        return [f"{plural} not listed yet" for plural in waiting]

    def _record(self, node: str, operation: str, content: Any) -> None:
        """A session notice as the node's Event (`nodeevents`); queued, never waited for."""
        if self._events is None:
            return
        found = self._lookup(contract.NODE, "", node)
        event = nodeevents.occurrence(node, operation, content, found=found,
                                      instance=self._events.instance)  # fmt: skip
        if event is not None:
            self._events.record(event)

    # --- reflector callbacks (reflector threads) -------------------------------------

    def _on_events(self, kind: Kind, events: list[Event]) -> None:
        """A watch event is queued under its object's key (newer versions merge); a
        list's events go in chunks, each one entry, queued before any later event. A
        watch event carries when it came (its messages' header timestamp)."""
        rtype = kind.rtype
        if len(events) == 1:
            event, obj = events[0]
            item = ("event", rtype, event, obj, now_ms())
            self._queue.put(_key(rtype, obj["metadata"]), item, stop=self._halt)
            return
        entries = [
            (("list", rtype, next(self._chunks)), ("list", rtype, events[i : i + LIST_CHUNK]))
            for i in range(0, len(events), LIST_CHUNK)
        ]
        self._queue.put_many(entries, stop=self._halt)

    def _on_fresh(self, node: str, fresh: Fresh | None) -> None:
        """The fresh reader's thread: a takeover's reads, resynced in turn."""
        self._queue.put(("resync", node), ("resync", node, fresh), stop=self._halt)

    def _on_synced(self, kind: Kind) -> None:
        self._queue.put(("synced", kind.rtype), ("synced", kind.rtype), stop=self._halt)

    def _lookup(self, rtype: str, namespace: str, name: str) -> Obj | None:
        reflector = self._reflectors.get(rtype)
        return reflector.get((namespace, name)) if reflector is not None else None

    # --- the downstream thread -------------------------------------------------------

    def _drain(self) -> None:
        """Take queued entries in batches; what a batch yields goes to cloudhub at once."""
        while not self._halt.is_set():
            out: list[Message] = []
            for key, item in self._queue.take_many(DRAIN_BATCH, 0.2):
                try:
                    self._process(item, out)
                except Exception:  # one bad object must not stop delivery of the others
                    log.exception("downstream: failed on %s", key)
                if len(out) >= SEND_BATCH:
                    self._send(out)
                    out = []
            if out:
                self._send(out)

    def _process(self, item: tuple[Any, ...], out: list[Message]) -> None:
        if item[0] in ("event", "list") and item[1] in ROUTER_KINDS:
            self._to_router(item)
        elif item[0] == "event":
            _, rtype, event, obj, stamp = item
            sends = self._downstream.apply(rtype, event, obj)
            out += [build_message(send, stamp=stamp) for send in sends]
        elif item[0] == "list":
            _, rtype, events = item
            apply = self._downstream.apply
            for event, obj in events:
                try:
                    out += [build_message(send) for send in apply(rtype, event, obj)]
                except Exception:  # one bad object must not stop delivery of the others
                    log.exception(
                        "downstream: failed on %s %s", rtype, _key(rtype, obj["metadata"])
                    )
        elif item[0] == "synced":
            self._synced.add(item[1])
            if self._synced >= REQUIRED:
                for node in sorted(self._pending):
                    self._resync(node, out)
                self._pending.clear()
        elif self._synced >= REQUIRED:
            self._resync(item[1], out, item[2])
        else:
            self._pending.add(item[1])  # answered once the first lists are in (quorum reads)

    def _to_router(self, item: tuple[Any, ...]) -> None:
        """Rules and RuleEndpoints go to the router module, not to nodes (as KubeEdge's
        downstream.go: ``rule/<name>``, ``ruleendpoint/<name>``; MODIFIED as ``update``,
        which the router ignores when the spec is unchanged). Without a router: dropped."""
        rtype = item[1]
        events = [(item[2], item[3])] if item[0] == "event" else item[2]
        messages = [
            Message.new(source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE,
                        operation=_ROUTER_OPERATIONS.get(event, "update"),
                        resource=f"{rtype}/{obj['metadata'].get('name', '')}", content=obj)
            for event, obj in events
        ]  # fmt: skip
        try:
            self.hive.send_all(contract.ROUTER, messages, stop=self._halt)
        except errors.UnknownModuleError:
            log.debug("%d %s event(s): not delivered (no router module)", len(messages), rtype)
        except errors.BeehiveError as exc:
            log.error("could not send %d %s(s) to the router: %s", len(messages), rtype, exc)

    def _resync(self, node: str, out: list[Message], fresh: Fresh | None = None) -> None:
        """Contract item 5: ``update`` every object the node should have, then ``resynced``
        (`fresh`: the node and its pods as just read, for a takeover)."""
        sends = self._downstream.resync(node, fresh)
        out += [build_message(send) for send in sends]
        done = Message.new(
            source=contract.EDGECONTROLLER,
            group=contract.GROUP_RESOURCE,
            operation=contract.RESYNCED,
            resource=contract.build_resource(node),
            content={"uids": list(uids(sends))},
        )
        out.append(done)

    def _send(self, messages: list[Message]) -> None:
        """Hand messages to cloudhub, waiting while its mailbox is full: `Downstream` has
        recorded them as sent, so a dropped one would leave its node without the
        change until it reconnects. Only a stop (or cloudhub gone) ends the wait."""
        try:
            self.hive.send_all(contract.CLOUDHUB, messages, stop=self._halt)
        except errors.BeehiveError as exc:
            log.error(
                "could not send %d message(s) to cloudhub (from %s on): %s",
                len(messages),
                messages[0].route.resource,
                exc,
            )


def _key(rtype: str, meta: dict[str, Any]) -> Hashable:
    """The keyed queue's key for an object: one entry per object."""
    return (rtype, meta.get("namespace", ""), meta["name"])
