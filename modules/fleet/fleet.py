"""The fleet: N edge sessions in one event loop, their timers, faults and reports.

Input: `FleetOptions`, and fault orders at any time (`storm`, `drop`; from the
command line's timers or its control channel). Output: N connections to
cloudhub (`modules.fleet.session`), progress samples for the caller, arrival
records (`arrivals`, `check`) and the final `summary`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from beehive import heap, runtime
from modules.fleet import join, nodetls, stats
from modules.fleet import store as store_mod
from modules.fleet.options import FleetOptions
from modules.fleet.session import EdgeSession, sleep_or_stop
from modules.hub import tlslayer

log = logging.getLogger("modules.fleet")

TICK = 0.2  # seconds between keepalive/status deadline checks
SHUTDOWN_WAIT = 5.0  # seconds the sessions get to close


class Fleet:
    """Holds the sessions; every method runs on the fleet's event loop.

    With `owns_process` (the command line: nothing else runs in the process) the
    garbage collector is tuned for the sessions: once a wave of connections is up,
    what they hold is frozen (exempt from full collections, so a storm's garbage costs
    a pause for itself, not for the fleet), after a full collection that frees what
    the last wave dropped. Without that collection a dropped TLS connection, whose
    objects refer to each other, stayed frozen for good: 40 KiB per edge per storm.
    """

    def __init__(self, options: FleetOptions, *, owns_process: bool = False) -> None:
        self.options = options
        self._owns_process = owns_process  # may tune the garbage collector
        self.counters = stats.Counters(nodes=options.nodes)  # totals for reports
        self.sessions: list[EdgeSession] = []  # one per node, in node order
        self.stop = asyncio.Event()  # set to end `run`
        self.all_connected = asyncio.Event()  # every node connected at least once
        self.started = time.monotonic()  # for rates and the summary
        self._rng = random.Random(options.seed)  # chooses what `drop` drops
        self._session_rng = random.Random(f"{options.seed}:sessions")  # the nodes' jitter
        self._tasks: list[asyncio.Task[None]] = []  # sessions, ticker, faults
        self._held: collections.Counter[str] = collections.Counter()  # all stores' tally
        self._workers: tlslayer.HandshakeWorkers | None = None  # TLS handshake threads
        self._released_at = 0  # connections made when the heap's free pages last went back
        self.waves = 0  # waves of connections up: the first, and after each storm or drop
        self.heap_releases = 0  # times the C heap's free pages went back to the OS

    async def run(self, *, duration: float = 0.0) -> dict[str, Any]:
        """Join, connect and serve until `stop` is set or `duration` (if > 0) ends.

        Raises:
            JoinError: a node could not be enrolled or its Node created.
        """
        self.started = time.monotonic()
        credentials = await self._join()
        self._start_sessions(credentials)
        self._tasks += [asyncio.create_task(self._ticker()), asyncio.create_task(self._faults())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=duration or None)
        await self._shutdown()
        return self.summary()

    async def _join(self) -> list[nodetls.NodeTLS | None]:
        if self.options.kubeconfig:
            self.counters.nodes_created = await asyncio.to_thread(join.create_nodes, self.options)
        if self.options.plain:
            return [None] * self.options.nodes
        return list(await join.enroll_all(self.options, self.counters))

    def _start_sessions(self, credentials: list[nodetls.NodeTLS | None]) -> None:
        gate = asyncio.Semaphore(self.options.connect_concurrency)
        if not self.options.plain and self.options.handshake_threads:
            # Handshakes beside the sessions' traffic: OpenSSL works without the GIL.
            self._workers = tlslayer.HandshakeWorkers(self.options.handshake_threads)
        for index, node_tls in enumerate(credentials):
            session = EdgeSession(
                index=index, options=self.options, counters=self.counters,
                node_store=self._new_store(index), gate=gate, rng=self._session_rng,
                tls=node_tls, handshake_workers=self._workers,
            )  # fmt: skip
            self.sessions.append(session)
            self._tasks.append(asyncio.create_task(session.run(self.stop)))

    def _new_store(self, index: int) -> store_mod.MemoryNodeStore:
        if self.options.store == "sqlite":
            path = self.options.store_dir / f"{self.options.node_name(index)}.db"
            return store_mod.SqliteNodeStore(path, self._held)
        return store_mod.MemoryNodeStore(self._held)

    async def _ticker(self) -> None:
        while not self.stop.is_set():
            for session in self.sessions:
                if session.is_connected:
                    session.tick()
            if self.counters.connected == self.options.nodes:
                self.all_connected.set()
                if self.counters.connects != self._released_at:
                    self._released_at = self.counters.connects
                    self._wave_up()
            await sleep_or_stop(self.stop, TICK)

    def _wave_up(self) -> None:
        """A wave of connections is up (the first, or after a storm or a drop): what the
        last wave dropped is collected, and what the handshakes freed goes back to the
        OS (see `heap`)."""
        self.waves += 1
        if self._owns_process:
            gc.unfreeze()  # what the dropped connections held was frozen with them
            runtime.freeze_startup()  # collect, then freeze what the sessions hold now
        self.heap_releases += heap.release_free_memory()

    async def _faults(self) -> None:
        """The timed faults, counted from when every node first connected."""
        faults = self.options.faults
        plan = sorted(
            [(faults.storm_at, 1.0)] * bool(faults.storm_at)
            + [(faults.drop_at, faults.drop_fraction)]
            * bool(faults.drop_at and faults.drop_fraction)
        )
        if not plan:
            return
        await _first(self.all_connected.wait(), self.stop.wait())
        base = time.monotonic()
        for at, fraction in plan:
            await sleep_or_stop(self.stop, base + at - time.monotonic())
            if self.stop.is_set():
                return
            self.drop(fraction)

    async def _shutdown(self) -> None:
        self.stop.set()
        closing = [asyncio.create_task(s.close()) for s in self.sessions if s.is_connected]
        if closing:  # a clean close: the cloud sees the edges go away
            await asyncio.wait(closing, timeout=SHUTDOWN_WAIT)
        _, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_WAIT)
        for task in pending:
            task.cancel()
        for session in self.sessions:
            session.store.close()
        if self._workers is not None:
            self._workers.close()
        if self._owns_process:
            gc.unfreeze()

    # Fault orders.

    def storm(self) -> int:
        """Drop every session at once; they reconnect at once. Returns how many dropped."""
        return self.drop(1.0)

    def drop(self, fraction: float) -> int:
        """Drop a random `fraction` of the connected sessions; returns how many dropped."""
        connected = [s for s in self.sessions if s.is_connected]
        chosen = self._rng.sample(connected, round(len(connected) * fraction))
        log.info("dropping %d of %d connected sessions", len(chosen), len(connected))
        return sum(session.drop() for session in chosen)

    # Reports.

    def held(self) -> dict[str, int]:
        """Objects held across the fleet, by type."""
        return {kind: count for kind, count in self._held.items() if count}

    def summary(self) -> dict[str, Any]:
        return stats.summary(
            self.counters, elapsed=time.monotonic() - self.started, held=self.held()
        )

    def arrivals(self) -> dict[str, dict[str, Any]]:
        """Per node: ``objects`` key -> [resourceVersion, arrival] and ``deleted`` key ->
        arrival (monotonic clock seconds, system-wide on Linux)."""
        return {
            s.node_id: {
                "objects": {k: [rv, t] for k, (rv, _, t) in s.store.objects.items()},
                "deleted": {k: t for k, (_, t) in s.store.deleted.items()},
            }
            for s in self.sessions
        }

    def check(self, expected: Mapping[str, Mapping[str, int | None]]) -> dict[str, int]:
        """How many expectations hold: node -> key -> the resourceVersion it must hold at
        least, or None for "deleted"."""
        by_node = {s.node_id: s.store for s in self.sessions}
        met = total = 0
        for node_id, keys in expected.items():
            node_store = by_node.get(node_id)
            for key, rv in keys.items():
                total += 1
                met += node_store is not None and _holds(node_store, key, rv)
        return {"met": met, "total": total}

    def progress(self, on_sample: Callable[[str], None]) -> asyncio.Task[None]:
        """Start calling `on_sample` with a progress line every second."""
        return asyncio.create_task(self._progress(on_sample))

    async def _progress(self, on_sample: Callable[[str], None]) -> None:
        last, last_at = self.counters.received, time.monotonic()
        while not self.stop.is_set():
            await sleep_or_stop(self.stop, 1.0)
            now = time.monotonic()
            rate = (self.counters.received - last) / max(now - last_at, 1e-6)
            last, last_at = self.counters.received, now
            on_sample(stats.progress_line(self.counters, elapsed=now - self.started, rate=rate))


def _holds(node_store: store_mod.MemoryNodeStore, key: str, rv: int | None) -> bool:
    if rv is None:
        return key not in node_store.objects
    held = node_store.objects.get(key)
    return held is not None and held[0] >= rv


async def _first(*aws: Any) -> None:
    """Wait until the first of the awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
