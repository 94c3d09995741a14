"""Watch streams: the store's event history, filtered, as newline-delimited JSON.

Input: a watch request (resource type, namespace, query) and the shared `KubeApi`;
output: an iterator of byte batches, each one or more `{"type":..,"object":..}\\n` lines,
that `http.py` writes as HTTP chunks. All watches read the same history (`Store.events_since`)
and sleep on the API's condition between writes, so a write costs one wake-up per watch
and each event is encoded once whatever the number of watchers.

As kube-apiserver (staging/src/k8s.io/apiserver/pkg/storage/cacher): no resourceVersion or
"0" starts with synthetic ADDED events for what exists; a version older than the history
ends the stream with an ERROR event carrying a 410 `Status`; with allowWatchBookmarks
BOOKMARK events report progress, and `sendInitialEvents=true` ends the initial ADDED events
with a bookmark annotated `k8s.io/initial-events-end`; a label selector turns an object that
stops matching into DELETED and one that starts matching into ADDED.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modules.kubeapi import errors, selectors
from modules.kubeapi.resources import ResourceType
from modules.kubeapi.store import Event, encode

if TYPE_CHECKING:
    from modules.kubeapi.api import KubeApi

JsonObj = dict[str, Any]

DEFAULT_TIMEOUT = 1800.0  # kube-apiserver's --min-request-timeout
BOOKMARK_INTERVAL = 1.0  # seconds of quiet before a bookmark; the real server uses ~1 min
_TRUE = frozenset({"true", "1"})


def _line(kind: str, raw: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


class WatchStream:
    """One watch: validated at construction, streamed by iterating."""

    def __init__(
        self, api: KubeApi, rtype: ResourceType, namespace: str, query: dict[str, str]
    ) -> None:
        self._api = api  # the shared store, lock and condition
        self._rtype = rtype  # the watched resource
        self._namespace = namespace  # "" for all namespaces
        self._selection = selectors.select(rtype, query)  # label and field selectors
        self._match = self._selection.match  # None: everything
        self._bookmarks = query.get("allowWatchBookmarks", "") in _TRUE  # send BOOKMARK events
        self._initial = query.get("sendInitialEvents", "") in _TRUE  # WatchList semantics
        rv = query.get("resourceVersion", "")
        self._from: int | None = None if rv in ("", "0") or self._initial else _rv(rv)
        timeout = query.get("timeoutSeconds")
        self._timeout = float(timeout) if timeout else DEFAULT_TIMEOUT  # seconds until the end
        self._cancelled = False  # the client went away: end at the next wake-up

    def cancel(self) -> None:
        """End the stream at its next wake-up; the transport calls it when the client left."""
        with self._api.cond:
            self._cancelled = True
            self._api.cond.notify_all()

    def __iter__(self) -> Iterator[bytes]:
        deadline = time.monotonic() + self._timeout
        with self._api.cond:
            if self._from is None:
                position = self._api.store.resource_version
                page, _, _ = self._api.store.list(
                    self._rtype, self._namespace, match=self._match,
                    indexed=self._selection.indexed,
                )  # fmt: skip
                initial = [_line("ADDED", e.raw) for e in page]
            else:
                position, initial = self._from, []
        if initial:
            yield b"".join(initial)
        if self._initial and self._bookmarks:
            yield self._bookmark(position, initial_end=True)
        yield from self._follow(position, deadline)

    def _follow(self, position: int, deadline: float) -> Iterator[bytes]:
        quiet_since = time.monotonic()
        while True:
            with self._api.cond:
                try:
                    events = self._wait(position, deadline)
                except errors.ApiError as exc:
                    yield encode({"type": "ERROR", "object": exc.status()}) + b"\n"
                    return
                stopping = self._api.stopping or self._cancelled
                current = self._api.store.resource_version
            if stopping:
                return
            now = time.monotonic()
            out = [line for line in map(self._filter, events) if line]
            if events:
                position = events[-1].rv
            if out:
                quiet_since = now
                yield b"".join(out)
            elif self._bookmarks and (now - quiet_since >= BOOKMARK_INTERVAL or now >= deadline):
                position = max(position, current)
                quiet_since = now
                yield self._bookmark(position)
            if now >= deadline:
                return

    def _wait(self, position: int, deadline: float) -> list[Event]:
        """Events after `position`, waiting (lock held) until some, a stop, or a timer."""
        events = self._api.store.events_since(position)
        if not events and not self._api.stopping and not self._cancelled:
            wait = deadline - time.monotonic()
            if self._bookmarks:
                wait = min(wait, BOOKMARK_INTERVAL)
            self._api.cond.wait(max(wait, 0.0))
            events = self._api.store.events_since(position)
        return events

    def _filter(self, event: Event) -> bytes | None:
        """The line this watch sends for `event`, or None."""
        if event.key != self._rtype.key:
            return None
        if self._namespace and event.namespace != self._namespace:
            return None
        match = self._match
        if match is None:
            return event.line
        now = match(event.entry.obj)
        if event.type != "MODIFIED":
            return event.line if now else None
        before = event.old is not None and match(event.old)
        if now and before:
            return event.line
        if now:
            return _line("ADDED", event.entry.raw)
        if before:
            return _line("DELETED", event.entry.raw)
        return None

    def _bookmark(self, position: int, *, initial_end: bool = False) -> bytes:
        meta: JsonObj = {"resourceVersion": str(position)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self._rtype.kind, "apiVersion": self._rtype.api_version, "metadata": meta}
        return encode({"type": "BOOKMARK", "object": obj}) + b"\n"


def _rv(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {text!r}") from None
