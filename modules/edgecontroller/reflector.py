"""Reflector: list, then watch from the list's resourceVersion, for one resource type.

Input: the Kubernetes API (raw JSON through the official client, one ApiClient per
reflector); output: ADDED / MODIFIED / DELETED events handed to `sink` on this
reflector's thread (a list's events in one batch, a watch's one at a time), and
`on_synced` once the first list has been handed over.

A watch that expires (410 Gone) leads to a relist whose differences against the local
store become events: deletes that happened meanwhile are delivered, unchanged objects
are not. Dropped connections and API errors are retried with capped, jittered
backoff. This is client-go's reflector (tools/cache/reflector.go) without the
DeltaFIFO: the consumer's keyed queue does the merging.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from beehive import codec
from modules import backoff
from modules.edgecontroller.kinds import Kind, Lister
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube import raw

log = logging.getLogger("modules.edgecontroller.reflector")

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
Event = tuple[str, Obj]  # (ADDED / MODIFIED / DELETED, the object)
Sink = Callable[[Kind, list[Event]], None]

LISTING, WATCHING, BACKOFF, ABSENT, STOPPED = "listing", "watching", "backoff", "absent", "stopped"


class WatchError(Exception):
    """The watch stream carried an ERROR event other than 410 Gone."""


def object_key(obj: Any) -> Key | None:
    """(namespace, name) of an object, None when it has no usable name."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        return None
    namespace = meta.get("namespace") if isinstance(meta, dict) else ""
    return (namespace if isinstance(namespace, str) else "", name)


def resource_version(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def relist_events(store: dict[Key, Obj], listed: dict[Key, Obj]) -> list[Event]:
    """The events that turn `store` into `listed`: changed, new, and gone objects."""
    if not store:
        return [("ADDED", obj) for obj in listed.values()]
    events: list[Event] = []
    for key, obj in listed.items():
        old = store.get(key)
        if old is None:
            events.append(("ADDED", obj))
        elif resource_version(old) != resource_version(obj):
            events.append(("MODIFIED", obj))
    events += [("DELETED", old) for key, old in store.items() if key not in listed]
    return events


class Reflector:
    """One resource's list/watch loop on its own thread, and its local store."""

    def __init__(
        self,
        kind: Kind,
        *,
        connect: Callable[[], client.ApiClient],
        sink: Sink,
        on_synced: Callable[[Kind], None],
        settings: EdgeControllerSettings,
        label_selector: str = "",
    ) -> None:
        self.kind = kind
        self._connect = connect  # builds this reflector's own ApiClient
        self._sink = sink  # receives every event (in batches), on this thread
        self._on_synced = on_synced  # called once, after the first list is handed over
        self._settings = settings
        self._selector = label_selector
        self._store: dict[Key, Obj] = {}  # the newest version of each object
        self._lock = threading.Lock()  # guards _store, _response and the state below
        self._response: Any = None  # the open watch response, to cut it at stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._host = ""  # API address, for messages
        self.phase = LISTING  # listing / watching / backoff / absent / stopped
        self.rv = ""  # resourceVersion the next watch starts from
        self.last_error = ""
        self.restarts = 0  # watches re-established after an error
        self.relists = 0  # lists after the first (410 Gone)
        self.events = 0  # events handed to the sink
        self.synced = False  # the first list has been handed over
        self._since = time.monotonic()  # when `phase` was entered
        self._need_list = True

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        name = f"beehive-edgecontroller-watch-{self.kind.plural}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Cut the open watch and wait for the thread."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            raw.shutdown(response)
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_phase(STOPPED)

    # --- inspection ------------------------------------------------------------------

    def get(self, key: Key) -> Obj | None:
        with self._lock:
            return self._store.get(key)

    def snapshot(self) -> dict[str, Any]:
        """The watch state for ``beehive debug watches``."""
        with self._lock:
            return {
                "resource": self.kind.plural,
                "phase": self.phase,
                "for": round(time.monotonic() - self._since, 1),
                "resource_version": self.rv,
                "objects": len(self._store),
                "events": self.events,
                "restarts": self.restarts,
                "relists": self.relists,
                "synced": self.synced,
                "last_error": self.last_error,
            }

    # --- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        api_client: Any = self._connect()
        self._host = str(api_client.configuration.host)
        lister = self.kind.lister(api_client, label_selector=self._selector)
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    if self._need_list:
                        self._list(lister)
                    self._watch(lister)
                    failures = 0
                except Exception as exc:  # any failure of one attempt: retry, never die
                    if self._stop.is_set():
                        break
                    failures += 1
                    self._stop.wait(self._failed(exc, failures))
        finally:
            api_client.close()

    def _list(self, lister: Lister) -> None:
        self._set_phase(LISTING)
        response = lister(_request_timeout=self._timeouts(60))
        try:
            data = codec.loads(response.read())
        finally:
            response.release_conn()
        listed = {}
        for obj in data.get("items") or []:
            key = self._accept(obj)
            if key is not None:
                listed[key] = obj
        with self._lock:
            events = relist_events(self._store, listed)
            self._store = listed
            self.rv = str(data.get("metadata", {}).get("resourceVersion", ""))
            self.relists += self.synced
        self._need_list = False
        self._emit(events)
        log.info("%s: listed %d at resourceVersion %s", self.kind.plural, len(listed), self.rv)
        if not self.synced:
            self.synced = True
            self._on_synced(self.kind)

    def _watch(self, lister: Lister) -> None:
        timeout = random.randint(self._settings.watch_timeout, 2 * self._settings.watch_timeout)
        response = lister(
            watch=True,
            resource_version=self.rv,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _request_timeout=self._timeouts(timeout + 30),
        )
        with self._lock:
            self._response = response
        try:
            if self._stop.is_set():
                return
            self._set_phase(WATCHING)
            for line in response:
                if line.strip():
                    self._event(codec.loads(line))
                if self._need_list or self._stop.is_set():
                    return
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def _event(self, event: Any) -> None:
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            raise WatchError(f"watch event without an object: {str(event)[:256]}")
        if kind == "BOOKMARK":
            self.rv = resource_version(obj) or self.rv
        elif kind == "ERROR":
            if obj.get("code") == 410:
                log.info("%s: watch expired at %s (410 Gone); relisting", self.kind.plural, self.rv)
                self._need_list = True
                return
            raise WatchError(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            key = self._accept(obj)
            if key is None:
                return
            with self._lock:
                if kind == "DELETED":
                    self._store.pop(key, None)
                else:
                    self._store[key] = obj
                self.rv = resource_version(obj) or self.rv
            self._emit([(kind, obj)])
        else:
            raise WatchError(f"unknown watch event type {kind!r}")

    def _accept(self, obj: Any) -> Key | None:
        """The object's key after filling in apiVersion/kind; None (logged) if unusable."""
        key = object_key(obj)
        if key is None:
            log.error("%s: ignored an object without metadata.name: %.256s", self.kind.plural, obj)
            return None
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        return key

    def _emit(self, events: list[Event]) -> None:
        if events:
            self.events += len(events)
            self._sink(self.kind, events)

    def _failed(self, exc: Exception, failures: int) -> float:
        """Log a failed attempt; the seconds to wait before the next one."""
        status = exc.status if isinstance(exc, client.ApiException) else None
        if status == 410:
            self._need_list = True
            return 0.0
        if status == 404 and self.kind.optional:
            if self.phase != ABSENT:
                log.warning(
                    "%s (%s) are not served by the API at %s (CRD not installed?): not"
                    " watched; everything else is",
                    self.kind.plural,
                    self.kind.api_version,
                    self._host,
                )
                if not self.synced:
                    self.synced = True
                    self._on_synced(self.kind)
            self._set_phase(ABSENT)
            return self._settings.backoff_max
        delay = backoff.jittered(
            failures, initial=self._settings.backoff_initial, cap=self._settings.backoff_max
        )
        with self._lock:
            self.last_error = _describe(exc)
            self.restarts += 1
        level = logging.WARNING if failures == 1 or failures % 10 == 0 else logging.DEBUG
        log.log(
            level,
            "%s: Kubernetes API at %s failed (%s, attempt %d); retrying in %.2fs",
            self.kind.plural,
            self._host,
            self.last_error,
            failures,
            delay,
        )
        self._set_phase(BACKOFF)
        return delay

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            if phase != self.phase:
                self.phase, self._since = phase, time.monotonic()

    def _timeouts(self, read: float) -> tuple[float, float]:
        return (self._settings.connect_timeout, read)


def _describe(exc: Exception) -> str:
    if isinstance(exc, client.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"[:256]
