"""EventRecorder: Kubernetes Events about objects, written by one thread of their own.

Input: `record(Occurrence)` from any thread (edgecontroller's module thread with
cloudhub's session notices, certserver's connection threads); it only appends to a
bounded queue, so it never blocks: when the queue is full the occurrence is dropped
and counted. Output: Event creates and strategic-merge patches through a `Sink` (the
API: `ApiSink`), on the thread ``beehive-<owner>-events``, as `EventCorrelator`
(`modules.kube.correlator`, which only that thread touches) decides them.

As client-go's recordToSink: a patch that finds its Event gone (404: expired or
deleted) creates it again; a write failing without an answer, or with 429 or 5xx, is
tried again up to `ATTEMPTS` times, with backoff; any other failure is logged and
counted, and the next such occurrence creates a new Event. Writes are paced at
`WRITE_QPS` (burst `WRITE_BURST`), the kubelet's event QPS, so a reconnect storm of
a whole fleet does not become a storm of API writes; the queue bounds what waits.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import urllib3
from kubernetes import client

from modules.hub.ratelimit import TokenBucket
from modules.kube import raw
from modules.kube.correlator import EventCorrelator, Occurrence, Write

log = logging.getLogger("modules.kube.recorder")

Obj = dict[str, Any]
COMPONENT = "cloudcore"  # source.component and reportingComponent of our Events
QUEUE_SIZE = 1024  # occurrences waiting for the writer, by default
ATTEMPTS = 3  # tries of one write failing on a transient error
WRITE_QPS = 50.0  # Event writes per second at most (kubelet: eventRecordQPS)
WRITE_BURST = 100  # and at once (kubelet: eventBurst)
_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_STRATEGIC = "application/strategic-merge-patch+json"
_JSON = "application/json"
_TIMEOUT = 10.0  # seconds for one write


class WriteError(Exception):
    """An Event write failed; `status` is the HTTP status, None when no answer came."""

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status or 'no answer'}: {self.reason}"


class Sink(Protocol):
    """Where Events go (the API, or a fake in tests)."""

    def create(self, namespace: str, event: Obj) -> None:
        """Raises: WriteError."""

    def patch(self, namespace: str, name: str, patch: Obj) -> None:
        """Raises: WriteError."""


class ApiSink:
    """Events written to the Kubernetes API through `api_client` (which the owner closes)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client

    def create(self, namespace: str, event: Obj) -> None:
        self._request("POST", f"/api/v1/namespaces/{namespace}/events", event, _JSON)

    def patch(self, namespace: str, name: str, patch: Obj) -> None:
        self._request("PATCH", f"/api/v1/namespaces/{namespace}/events/{name}", patch, _STRATEGIC)

    def _request(self, method: str, path: str, body: Obj, content_type: str) -> None:
        try:
            raw.request(self._api_client, method, path, body=body, content_type=content_type,
                        timeout=_TIMEOUT)  # fmt: skip
        except client.ApiException as exc:
            raise WriteError(exc.status, str(exc.reason)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise WriteError(None, f"{type(exc).__name__}: {exc}"[:256]) from None


@dataclasses.dataclass(slots=True)
class RecorderStats:
    """What happened to the occurrences recorded (all counts since start)."""

    recorded: int = 0  # queued for the writer
    dropped_full: int = 0  # dropped: the queue was full
    dropped_spam: int = 0  # dropped by the spam filter
    created: int = 0  # Events created
    patched: int = 0  # Events patched (a repeat)
    failed: int = 0  # writes given up


class EventRecorder:
    """A bounded queue of occurrences and the thread that writes them (see the module
    docstring); `start` once, `stop` once."""

    def __init__(
        self,
        sink: Sink,
        *,
        owner: str,
        queue_size: int = QUEUE_SIZE,
        instance: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self._correlator = EventCorrelator(  # the writer thread's only
            component=COMPONENT, instance=(instance or socket.gethostname())[:128]
        )
        self._clock = clock  # epoch seconds, stamped on each occurrence as it is recorded
        self._size = queue_size  # most occurrences waiting
        self._queue: collections.deque[tuple[Occurrence, float]] = collections.deque()
        self._busy = False  # the writer holds an occurrence taken from the queue
        self._cond = threading.Condition()  # guards _queue, _busy and the stats
        self._stop = threading.Event()  # set by stop: the writer ends, waits end
        self._pace = TokenBucket(rate=WRITE_QPS, burst=WRITE_BURST, now=time.monotonic())
        self._thread = threading.Thread(target=self._run, name=f"beehive-{owner}-events",
                                        daemon=True)  # fmt: skip
        self._stats = RecorderStats()

    @property
    def instance(self) -> str:
        """The reportingInstance of our Events."""
        return self._correlator.instance

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the writer; what still waits is not written."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def record(self, occurrence: Occurrence) -> bool:
        """Queue an occurrence for the writer; False (counted) when the queue is full.
        Never blocks beyond a short lock."""
        now = self._clock()
        with self._cond:
            if len(self._queue) >= self._size:
                self._stats.dropped_full += 1
                dropped = self._stats.dropped_full
            else:
                self._queue.append((occurrence, now))
                self._stats.recorded += 1
                self._cond.notify()
                return True
        if dropped in (1, 10) or dropped % 100 == 0:
            log.warning("event queue full (%d): dropped %s about %s %s, %d dropped in all",
                        self._size, occurrence.reason, occurrence.kind, occurrence.name,
                        dropped)  # fmt: skip
        return False

    def stats(self) -> dict[str, int]:
        """The counts (`RecorderStats`) and the occurrences waiting now."""
        with self._cond:
            counts = dataclasses.asdict(self._stats)
            counts["queued"] = len(self._queue)
        return counts

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing waits or is being written; False if `timeout` came first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    # The writer thread.

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._busy = False
                self._cond.notify_all()  # wait_idle
                self._cond.wait_for(lambda: self._queue or self._stop.is_set())
                if self._stop.is_set():
                    return
                occurrence, at = self._queue.popleft()
                self._busy = True
            try:
                self._handle(occurrence, at)
            except Exception:  # one bad occurrence must not end the writer
                log.exception("event %s about %s: failed", occurrence.reason, occurrence.name)

    def _handle(self, occurrence: Occurrence, at: float) -> None:
        write = self._correlator.correlate(occurrence, at)
        if write is None:
            with self._cond:
                self._stats.dropped_spam += 1
            log.debug("event %s about %s %s: dropped by the spam filter",
                      occurrence.reason, occurrence.kind, occurrence.name)  # fmt: skip
            return
        outcome = self._write(write)
        with self._cond:
            if outcome == "created":
                self._stats.created += 1
            elif outcome == "patched":
                self._stats.patched += 1
            else:
                self._stats.failed += 1
        if not outcome:
            self._correlator.failed(write)

    def _write(self, write: Write) -> str:
        """ "created", "patched", or "" when it failed for good (logged)."""
        for attempt in range(1, ATTEMPTS + 1):
            if not self._paced():
                return ""
            try:
                if write.patch is not None:
                    try:
                        self._sink.patch(write.namespace, write.name, write.patch)
                        return "patched"
                    except WriteError as exc:
                        if exc.status != 404:
                            raise
                self._sink.create(write.namespace, write.event)
                return "created"
            except WriteError as exc:
                if exc.status == 409:  # created already (a retry whose answer was lost)
                    return "created"
                last = attempt == ATTEMPTS or (exc.status is not None
                                               and exc.status not in _RETRYABLE)  # fmt: skip
                if last:
                    log.error("event %s %s/%s not written: %s", write.event["reason"],
                              write.namespace, write.name, exc)  # fmt: skip
                    return ""
                log.warning("event %s/%s: %s; retry %d", write.namespace, write.name, exc, attempt)
                if self._stop.wait(0.2 * 2**attempt):
                    return ""
        return ""

    def _paced(self) -> bool:
        """Wait for the write pace; False when stopping."""
        while not self._pace.take(time.monotonic()):
            if self._stop.wait(self._pace.wait_time(time.monotonic())):
                return False
        return True
