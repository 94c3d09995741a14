"""LeaseKeeper: a thread that drives an `elector.Elector` against the API.

Input: an `Elector`, a `LeaseAPI`, the retry period and the clocks; output: the
elector's writes sent every retry period (a renewal skips the read: it replaces the
Lease it wrote last, so holding costs one write per period), and `on_change(held)`
called on this thread whenever holding starts or stops (including when the renew
deadline passes without a successful write: the self-fencing signal). `stop` releases
the Lease (holder emptied) so that another replica may take it at once.

A successful write counts from when it was sent, not from when its answer came: the
API server stored it in between, and the others measure their lease duration from when
they see it, so a slow answer (a call may take half the renew deadline, more than
duration - renew deadline in some valid settings) must not stretch the holding past
the time another may take over.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable

import urllib3
from kubernetes import client

from modules.replicas import elector as elector_mod
from modules.replicas.leases import LeaseAPI

log = logging.getLogger("modules.replicas")

Monotonic = Callable[[], float]
Wall = Callable[[], datetime.datetime]
_API_ERRORS = (client.ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaseKeeper:
    """Keeps trying to hold one Lease (see the module docstring)."""

    def __init__(
        self, elector: elector_mod.Elector, api: LeaseAPI, *, retry_period: float,
        on_change: Callable[[bool], None] | None = None,
        clock: Monotonic = time.monotonic, wall: Wall = utc_now,
    ) -> None:  # fmt: skip
        self.elector = elector  # the Lease's logic
        self.api = api  # where the Lease is read and written
        self.retry_period = retry_period  # seconds between rounds
        self.on_change = on_change  # told True when holding starts, False when it stops
        self.clock = clock  # monotonic seconds for deadlines
        self.wall = wall  # dates written into the Lease
        self.writes = 0  # successful creates and replaces (coordination cost)
        self.conflicts = 0  # writes refused with 409 (another writer won)
        self.errors = 0  # rounds that failed on the API
        self._was_held = False  # holding as last reported to on_change
        self._lock = threading.Lock()  # one round at a time (the thread, stop, tests)
        self._stop = threading.Event()  # set by stop()
        self._thread: threading.Thread | None = None  # the renew loop

    def held(self) -> bool:
        return self.elector.held(self.clock())

    def step(self) -> None:
        """One round: read unless holding, write what the elector asks, report changes.
        A renew deadline that passed since the last round (a paused process) is reported
        before the round, which may take the Lease again at once: the lapse is told."""
        with self._lock:
            self._report()
            if not self._stop.is_set():
                self._round()
            self._report()

    def start(self, name: str) -> None:
        """Run a first round now, then one every retry period on thread `name`."""
        self.step()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True, timeout: float = 5.0) -> None:
        """End the loop; with `release`, empty the holder (a clean stop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            write = self.elector.release(self.wall()) if release else None
            self._report()
            if write is not None:
                try:
                    self.api.replace(write.body)
                except _API_ERRORS as exc:  # it expires on its own
                    log.warning("replica: releasing Lease %s failed: %s", self.elector.name, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.retry_period):
            self.step()

    def _round(self) -> None:
        e = self.elector
        try:
            if not e.held(self.clock()):
                e.observe(self.api.get(e.name), self.clock())
            write = e.next_write(self.clock(), self.wall())
            if write is None:
                return
            send = self.api.create if write.verb == "create" else self.api.replace
            sent_at = self.clock()  # the write counts from here (see the module docstring)
            e.written(send(write.body), sent_at)
            self.writes += 1
        except client.ApiException as exc:
            if exc.status == 409:  # another writer won the compare-and-swap: read next round
                self.conflicts += 1
                self._reread()
                return
            self.errors += 1
            log.warning("replica: Lease %s: %s", e.name, exc)
        except _API_ERRORS as exc:
            self.errors += 1
            log.warning("replica: Lease %s: %s", e.name, exc)

    def _reread(self) -> None:
        """After a conflict our copy is stale: read the Lease as it is now."""
        try:
            self.elector.observe(self.api.get(self.elector.name), self.clock())
        except _API_ERRORS as exc:
            log.warning("replica: Lease %s: %s", self.elector.name, exc)

    def _report(self) -> None:
        held = not self.elector.expired(self.clock()) and self.elector.held(self.clock())
        if held != self._was_held:
            self._was_held = held
            e = self.elector
            what = "held" if held else "not held"
            log.info("replica: Lease %s/%s %s (epoch %s)", e.namespace, e.name, what, e.epoch)
            if self.on_change is not None:
                self.on_change(held)
