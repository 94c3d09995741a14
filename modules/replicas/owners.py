"""Owner Leases through the API: claims, releases, and a watch of who owns what.

Input: a `LeaseAPI` (the replicas' namespace) and this replica's identity. Output:
`claim` (a compare-and-swap, retried on conflict: the newest claim wins), `release`,
`owners` (every owner Lease), and `OwnerWatch`, a thread that tells a callback of
every owner Lease as it changes (after a list, then from a watch), so that a replica
learns when another took one of its nodes, and keeps the Leases it saw: a claim
writes against the watch's copy without reading the Lease first (a failover's claims
are a third fewer requests); the compare-and-swap makes a stale copy harmless (it
loses with 409, and the claim reads the Lease and tries again). The records' shape is
in `ownership`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client

from beehive import codec
from modules import backoff
from modules.kube import raw
from modules.replicas import ownership
from modules.replicas.elector import holder_of
from modules.replicas.keeper import Wall, utc_now
from modules.replicas.leases import LeaseAPI

log = logging.getLogger("modules.replicas.owners")

_ATTEMPTS = 5  # claims of one node in a row that lost a race, before giving up
_WATCH_SECONDS = 300  # a watch request's own timeout; it is then renewed
_NO_ANSWER = (OSError, urllib3.exceptions.HTTPError)


class ClaimError(Exception):
    """A claim could not be written (the API refused, or did not answer)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A claim's result: the epoch this replica holds the node at, and whether it was
    written now (False: the Lease already named this replica at the epoch it knew)."""

    epoch: int
    wrote: bool


class OwnerLeases:
    """Claims and releases of nodes by one replica (any thread; calls block)."""

    def __init__(self, api: LeaseAPI, identity: str, *, wall: Wall = utc_now) -> None:
        self.api = api  # the replicas' namespace
        self.identity = identity  # holderIdentity of our claims
        self._wall = wall
        self.claims = 0  # claims written
        self.conflicts = 0  # claims that lost a race and were tried again
        self.reads = 0  # owner Leases read for a claim (not those a watch's copy spared)

    def claim(
        self, node: str, known_epoch: int | None = None, seen: ownership.JsonObj | None = None
    ) -> Claimed:
        """Make this replica the node's owner. `known_epoch`: the epoch this replica
        believes it holds the node at; when the Lease still says so, nothing is written.
        `seen`: the Lease as a watch last saw it, written against without a read (a
        stale copy loses its compare-and-swap and the Lease is read); never trusted
        to skip the write (a copy saying the claim stands is checked with a read).

        Raises:
            ClaimError: the API refused or did not answer, or every attempt lost a race.
        """
        name = ownership.owner_lease_name(node)
        for _ in range(_ATTEMPTS):
            lease, seen = seen, None  # the copy for the first attempt only
            try:
                if lease is None or self._stands(lease, known_epoch):
                    self.reads += 1
                    lease = self.api.get(name)
                if self._stands(lease, known_epoch):
                    assert known_epoch is not None
                    return Claimed(known_epoch, wrote=False)
                write = ownership.claim(lease, node=node, namespace=self.api.namespace,
                                        identity=self.identity, now=self._wall())  # fmt: skip
                if write.verb == "create":
                    self.api.create(write.body)
                else:
                    self.api.replace(write.body)
            except client.ApiException as exc:
                if exc.status == 409:  # another claim came in between: read again
                    self.conflicts += 1
                    continue
                if exc.status == 404 and lease is not None:  # deleted since: read again
                    continue
                raise ClaimError(f"node {node}: {exc.status} {exc.reason}") from None
            except _NO_ANSWER as exc:
                raise ClaimError(f"node {node}: {type(exc).__name__}: {exc}") from None
            self.claims += 1
            return Claimed(write.epoch, wrote=True)
        raise ClaimError(f"node {node}: {_ATTEMPTS} claims in a row lost a race")

    def _stands(self, lease: ownership.JsonObj | None, known_epoch: int | None) -> bool:
        """The Lease says this replica holds the node at `known_epoch`."""
        return (
            known_epoch is not None
            and holder_of(lease) == self.identity
            and ownership.epoch_of(lease) == known_epoch
        )

    def release(self, node: str, epoch: int) -> bool:
        """Give the node up if this replica's claim at `epoch` is still the newest
        (a clean stop: its edges may be claimed at once by whoever they reach next).
        Returns whether a release was written; errors are logged, not raised."""
        try:
            lease = self.api.get(ownership.owner_lease_name(node))
            body = None if lease is None else ownership.release(
                lease, identity=self.identity, epoch=epoch)  # fmt: skip
            if body is None:
                return False
            self.api.replace(body)
        except (client.ApiException, *_NO_ANSWER) as exc:
            log.warning("could not release node %s: %s", node, exc)
            return False
        return True

    def collect(self, nodes: set[str]) -> int:
        """Delete the owner Leases of nodes not in `nodes` (deleted nodes; a Lease
        claimed again meanwhile is kept: the delete is conditional). Returns how many.

        Raises:
            kubernetes.client.ApiException: the list failed.
        """
        deleted = 0
        for lease in self.api.list(_SELECTOR):
            node = ownership.node_of(lease)
            if not node or node in nodes:
                continue
            meta = lease.get("metadata") or {}
            try:
                self.api.delete(str(meta.get("name")), str(meta.get("resourceVersion")))
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
                continue
            deleted += 1
        return deleted

    def owners(self) -> list[ownership.Owner]:
        """Every owner Lease, as it is now.

        Raises:
            kubernetes.client.ApiException: the list failed.
        """
        found = (ownership.Owner.of(lease) for lease in self.api.list(_SELECTOR))
        return sorted((o for o in found if o is not None), key=lambda o: o.node)


_SELECTOR = f"{ownership.OWNERSHIP_LABEL}=true"

OnOwner = Callable[[ownership.Owner], None]
OnGone = Callable[[str], None]


class OwnerWatch:
    """A thread telling `on_owner` of every owner Lease: each one at the (re)list, then
    each change from a watch; and `on_gone` of each node whose Lease was deleted. It
    keeps the newest copy of each Lease (`lease`). It retries with backoff until
    stopped."""

    def __init__(
        self, api: LeaseAPI, on_owner: OnOwner, *, name: str,
        on_gone: OnGone = lambda node: None,
    ) -> None:  # fmt: skip
        self._api = api
        self._on_owner = on_owner  # called on this thread: must not block for long
        self._on_gone = on_gone  # likewise
        # Lease name -> the Lease as last seen, without managedFields (a write that
        # leaves them out keeps the server's); replaced whole at each list.
        self._leases: dict[str, ownership.JsonObj] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._response: Any = None  # the open watch response (closed to stop)
        self._lock = threading.Lock()
        self.listed = threading.Event()  # set after the first list was handed over
        self.events = 0  # owner Leases handed over (lists and watch events)
        self.restarts = 0  # watches that ended in an error and were started again

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            raw.shutdown(response)  # ends the blocking read
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                rv = self._list()
                while not self._stop.is_set() and rv:
                    rv = self._watch(rv)
                failures = 0
            except Exception as exc:  # any failure: list again after a pause, never die
                if self._stop.is_set():
                    return
                failures += 1
                self.restarts += 1
                delay = backoff.jittered(failures, initial=0.2, cap=10.0)
                log.warning("owner Lease watch failed (%s); listing again in %.1f s", exc, delay)
                self._stop.wait(delay)

    def lease(self, name: str) -> ownership.JsonObj | None:
        """Any thread: the owner Lease `name` as the watch last saw it (None: not seen,
        or deleted). Shared: not to be changed."""
        return self._leases.get(name)

    def _list(self) -> str:
        found = self._api.list_all(_SELECTOR)
        before, self._leases = self._leases, {}
        for lease in found.get("items") or []:
            self._hand(lease)
        for name, lease in before.items():
            if name not in self._leases:
                self._gone(lease)
        self.listed.set()
        return str((found.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, rv: str) -> str:
        """Watch from `rv`; returns where to go on from, "" to list again (410 Gone)."""
        query = [
            ("labelSelector", _SELECTOR), ("watch", "true"), ("resourceVersion", rv),
            ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(_WATCH_SECONDS)),
        ]  # fmt: skip
        response = self._api.stream(query, timeout=_WATCH_SECONDS + 30)
        with self._lock:
            self._response = response
        try:
            for line in response:
                if self._stop.is_set():
                    return ""
                if not line.strip():
                    continue
                event = codec.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return ""
                    raise RuntimeError(f"{obj.get('code')} {obj.get('message')}")
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if kind in ("ADDED", "MODIFIED"):
                    self._hand(obj)
                elif kind == "DELETED":
                    name = str((obj.get("metadata") or {}).get("name") or "")
                    if self._leases.pop(name, None) is not None:
                        self._gone(obj)
        finally:
            with self._lock:
                self._response = None
            response.release_conn()
        return rv

    def _hand(self, lease: Any) -> None:
        owner = ownership.Owner.of(lease) if isinstance(lease, dict) else None
        if owner is None:
            return
        meta = lease.get("metadata") or {}
        meta.pop("managedFields", None)
        self._leases[str(meta.get("name") or "")] = lease
        self._tell(lambda: self._on_owner(owner), f"node {owner.node}")

    def _gone(self, lease: ownership.JsonObj) -> None:
        node = ownership.node_of(lease)
        if node:
            self._tell(lambda: self._on_gone(node), f"deleted node {node}")

    def _tell(self, call: Callable[[], None], what: str) -> None:
        """Run a callback, counted; its bug must not end the watch."""
        self.events += 1
        try:
            call()
        except Exception:
            log.exception("owner Lease watch: the callback failed on %s", what)
