"""The metamanager module: the edge's store of what the cloud sent, and its queries.

Input: its mailbox: cloud ``insert``/``update``/``delete`` messages from edgehub,
and ``query`` requests from local modules. Output: acks to edgehub once a
message is committed to the sqlite file (an ``error`` reply if it cannot be
stored: the cloud sends it again later), ``podstatus`` reports for stored pods
(Running: a hollow node, see modules/hollow.py), answers to queries
(configmaps and secrets asked of the cloud through edgehub's ``send_sync`` and
stored, the local store otherwise or when that fails). As
edge/pkg/metamanager/process.go. Queries to the cloud wait on worker threads
(``beehive-metamanager-query-*``), so a slow answer holds up no delivery.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import threading
from typing import Any

from beehive import errors as beehive_errors
from beehive.message import OK, JsonValue, Message, Operation, now_ms
from beehive.module import Module
from modules import contract, hollow, replies
from modules.hub import redact
from modules.metamanager.store import Applied, MetaStore, StoreError

log = logging.getLogger("modules.metamanager")

_REMOTE_TYPES = frozenset({contract.CONFIGMAP, contract.SECRET})
_STORED_OPERATIONS = frozenset({Operation.INSERT, Operation.UPDATE, Operation.DELETE})


@dataclasses.dataclass(frozen=True, slots=True)
class MetaManagerSettings:
    """Where the store lives and how queries go (metaManager.* in edgecore.yaml)."""

    db_path: str = "edgecore.db"  # the sqlite file (database.dataSource)
    hub_module: str = contract.EDGEHUB  # acks, reports and remote queries go here
    remote_query_timeout: float = dataclasses.field(default=60.0, metadata={"min": 0.01})
    # Remote queries wait for the cloud on worker threads, so that deliveries are
    # stored and acked meanwhile; beyond `max_remote_queries` waiting, one is refused.
    remote_query_workers: int = dataclasses.field(default=4, metadata={"min": 1})
    max_remote_queries: int = dataclasses.field(default=256, metadata={"min": 1})
    report_pod_status: bool = True  # report a stored pod Running, once per pod
    log_stored: bool = False  # log each stored change and how long after cloudcore sent it
    node_name: str = ""  # the edge node this store is for (logs, ``debug store --node``)


class MetaManager(Module):
    """Stores cloud messages in sqlite, then acks them (see the module docstring)."""

    message_redactor = staticmethod(redact.redacted)  # secrets hidden in debug views
    settings_type = MetaManagerSettings

    def on_start(self) -> None:
        self._settings: MetaManagerSettings = self.settings or MetaManagerSettings()
        self._store = MetaStore(self._settings.db_path)
        self._lock = threading.Lock()  # the admin thread reads the store too
        self._reports = hollow.PodReports()  # what this hollow node reported of its pods
        self._closed = False  # the store is closed (workers may still be finishing)
        self._remote_waiting = 0  # remote queries submitted and not answered yet (_lock)
        self._workers = concurrent.futures.ThreadPoolExecutor(
            self._settings.remote_query_workers, thread_name_prefix="beehive-metamanager-query"
        )
        # One command per store, so that a process holding several edges shows each.
        self.hive.register_command(f"{self.module_name}.store", self._listing)

    def on_stop(self) -> None:
        # Workers waiting on the cloud end when the hive fails their requests.
        self._workers.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._closed = True
            self._store.close()

    def on_message(self, message: Message) -> None:
        operation = message.route.operation
        if operation in _STORED_OPERATIONS and not message.parent_msg_id:
            self._apply(message)
        elif operation == Operation.QUERY:
            self._query(message)
        else:
            log.warning("metamanager: ignored %s (%s on %s)",
                        message.msg_id, operation, message.route.resource)  # fmt: skip

    def _apply(self, message: Message) -> None:
        try:
            with self._lock:
                applied = self._store.apply(message)
        except StoreError as exc:
            log.error("cannot store %s: %s", message.msg_id, exc)
            self._to_hub(message.error_reply(str(exc)))
            return
        except Exception as exc:  # whatever a cloud sends: an error reply, never a crash
            log.exception("cannot store %s", message.msg_id)
            self._to_hub(message.error_reply(f"cannot store it: {type(exc).__name__}"))
            return
        self._to_hub(message.reply(OK))
        if self._settings.log_stored:
            self._log_stored(message, applied)
        if applied is Applied.STORED:
            self._report_pod(message)

    def _log_stored(self, message: Message, applied: Applied) -> None:
        took = now_ms() - message.header.timestamp
        log.info("%s: %s %s %s rv %s, %d ms after cloudcore sent it",
                 self._settings.node_name or self.module_name,
                 applied.name.lower(), message.route.operation, message.route.resource,
                 message.header.resource_version or "-", took)  # fmt: skip

    def _report_pod(self, message: Message) -> None:
        report = self._reports.due(message) if self._settings.report_pod_status else None
        if report is not None:
            self._to_hub(report)

    def _query(self, message: Message) -> None:
        """Answer from the cloud for configmaps and secrets (stored on the way, on a
        worker thread), else locally."""
        parts = message.route.resource.split("/")
        if len(parts) != 3 or parts[1] not in _REMOTE_TYPES:
            self._answer(message, None)
            return
        with self._lock:
            busy = self._remote_waiting >= self._settings.max_remote_queries
            if not busy:
                self._remote_waiting += 1
        if busy:
            log.warning("remote query for %s refused: %d queries wait for the cloud",
                        message.route.resource, self._settings.max_remote_queries)  # fmt: skip
            if message.header.sync:
                reason = f"{self._settings.max_remote_queries} queries wait for the cloud"
                self.hive.send_resp(message.error_reply(reason))
            return
        try:
            self._workers.submit(self._ask_cloud, message)
        except RuntimeError:  # stopping: the workers are gone
            with self._lock:
                self._remote_waiting -= 1

    def _ask_cloud(self, message: Message) -> None:
        try:
            self._answer(message, self._remote(message))
        except Exception:  # a worker's failure would otherwise go unseen
            log.exception("remote query %s for %s failed", message.msg_id, message.route.resource)
        finally:
            with self._lock:
                self._remote_waiting -= 1

    def _answer(self, message: Message, content: JsonValue) -> None:
        """Reply to a query: `content` (from the cloud), else what the store holds."""
        if content is None:
            with self._lock:
                found = None if self._closed else self._store.get(message.route.resource)
            content = found.value if found is not None else None
        if not message.header.sync:
            return
        if content is None:
            self.hive.send_resp(message.error_reply(f"{message.route.resource} not found"))
        else:
            self.hive.send_resp(message.reply(content))

    def _remote(self, message: Message) -> JsonValue:
        request = Message.new(
            source=contract.METAMANAGER,
            group=contract.GROUP_META,
            operation=Operation.QUERY,
            resource=message.route.resource,
        )
        try:
            reply = self.hive.send_sync(
                self._settings.hub_module, request, timeout=self._settings.remote_query_timeout
            )
        except beehive_errors.BeehiveError as exc:
            log.warning("remote query for %s failed: %s", message.route.resource, exc)
            return None
        self._to_hub(reply.reply(OK))  # as edgecore: an answer it waited for is acked
        failed = replies.error_text(reply)
        if failed is not None or not isinstance(reply.content, dict):
            text = failed or beehive_errors.excerpt(json.dumps(reply.content), 200)
            log.warning("remote query for %s: %s", message.route.resource, text)
            return None
        stored = Message.new(
            source=contract.EDGECONTROLLER,
            group=contract.GROUP_RESOURCE,
            operation=Operation.UPDATE,
            resource=message.route.resource,
            content=reply.content,
        )
        try:
            with self._lock:
                if not self._closed:
                    self._store.apply(stored)
        except StoreError as exc:
            log.warning("remote query for %s: not stored: %s", message.route.resource, exc)
        return reply.content

    def _to_hub(self, message: Message) -> None:
        try:
            self.hive.send(self._settings.hub_module, message)
        except beehive_errors.BeehiveError as exc:
            log.error("cannot pass %s to %s: %s", message.msg_id, self._settings.hub_module, exc)

    def _listing(self, type: str = "") -> list[dict[str, Any]]:
        with self._lock:
            stored = self._store.list_objects(type or None)
        node_name = self._settings.node_name or self.module_name
        return [
            {"node": node_name, "type": o.type, "namespace": o.namespace, "name": o.name,
             "resource_version": o.resource_version, "uid": o.uid}
            for o in stored
        ]  # fmt: skip
