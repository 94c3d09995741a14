"""metrics benchmark: one Prometheus scrape of a cloudhub holding 10,000 connected nodes.

Run: python bench/metrics_bench.py [--nodes 10000] [--objects 4] [--per-node 10] [--repeat 20]

Builds a `CloudHubCore` (no sockets: the sans-I/O core, driven as the transport
drives it) with `--nodes` connected nodes and `--objects` pods queued for each, half
of them written and half of those acked, so that queues, flights
and both latency histograms hold something. The collector reads it through the
same ``cloudhub.metrics`` command and `observe.Observer` the module registers
(the loop hop is a direct call here), in a hive with a few idle modules, and the
registry also holds the process, platform and GC collectors, as the metrics module's.

Prints: the time of one scrape (`generate_latest`, best and median of `--repeat`),
its size in bytes and series, and beside it what one walk over every node's row
(`beehive debug nodes`, `CloudHubCore.nodes`) costs: the work the running totals
spare each scrape.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from typing import Any, cast

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from beehive import Hive, JsonValue, Message, Module, codec, heap
from modules import contract, probes
from modules.cloudhub import core, gate, observe
from modules.hub.protocol import ack_frame
from modules.metrics import collector


class _Loop:
    """Stands in for the server transport: `call` runs on this thread."""

    def __init__(self) -> None:
        self.gate = gate.HandshakeGate(limit=128, timeout=10.0, clock=time.monotonic)
        self.refusals: collections.Counter[int] = collections.Counter()
        self.tls_failures: collections.Counter[str] = collections.Counter()  # by reason
        self.heap = heap.WaveRelease(clock=time.monotonic)

    def call(self, func: Any, timeout: float = 5.0) -> Any:
        return func()


def _pod(node: str, i: int) -> Message:
    name = f"p{i}"
    meta: JsonValue = {"name": name, "namespace": "default", "uid": f"{node}-{i}",
                       "resourceVersion": "7"}  # fmt: skip
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation="insert",
        resource=contract.build_resource(node, "default", contract.POD, name),
        content={"apiVersion": "v1", "kind": "Pod", "metadata": meta}, resource_version="7",
    )  # fmt: skip


def build_core(nodes: int, objects: int) -> core.CloudHubCore:
    """A core with `nodes` connected and `objects` pods queued for each, half of them
    written and half of those acked."""
    hub = core.CloudHubCore(
        limits=core.HubLimits(node_limit=nodes, pump_budget=max(nodes * objects // 2, 1)),
        clock=time.monotonic,
    )
    names = [f"edge-{i:05d}" for i in range(nodes)]
    for conn, node in enumerate(names, start=1):
        hub.open(conn, node)
        for i in range(objects):
            hub.downstream(_pod(node, i))
    hub.take_outputs()
    hub.pump()
    # the edge's side: decode what was written, ack half

    for conn, frames in hub.take_outputs().writes.items():
        for frame in frames[: len(frames) // 2]:
            hub.receive(conn, ack_frame(codec.decode(frame)))
    hub.take_outputs()
    return hub


def build_registry(hub: core.CloudHubCore, per_node: list[str]) -> CollectorRegistry:
    """The metrics module's registry over a hive whose cloudhub is `hub`."""
    hive = Hive()
    for name in ("certserver", "edgecontroller", "metrics", "spare"):
        hive.add(name, Module)  # registered, not started: their rows are rendered all the same
    loop = _Loop()
    observer = observe.Observer(hub, cast(observe.CountingTransport, loop), tls=None)

    def snapshot(nodes: list[str] | None = None) -> dict[str, Any]:
        return observer.snapshot(nodes or [], timeout=5.0)

    probes.offer(hive, "cloudhub", metrics=snapshot)
    registry = CollectorRegistry()
    registry.register(collector.HiveCollector(hive, per_node=per_node))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=4, help="pods queued per node")
    parser.add_argument("--per-node", type=int, default=10, help="nodes with per-node series")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    started = time.perf_counter()
    hub = build_core(args.nodes, args.objects)
    print(
        f"built a core with {args.nodes:,} connected nodes in {time.perf_counter() - started:.1f} s"
    )
    registry = build_registry(hub, [f"edge-{i:05d}" for i in range(args.per_node)])

    times, text = [], b""
    for _ in range(args.repeat):
        started = time.perf_counter()
        text = generate_latest(registry)
        times.append(time.perf_counter() - started)
    if b'beehive_metrics_source_up{module="cloudhub"} 1.0' not in text:
        raise SystemExit("the scrape did not read cloudhub's snapshot: the figures would not hold")
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    print(f"scrape (generate_latest): best {min(times) * 1e3:.2f} ms, median"
          f" {statistics.median(times) * 1e3:.2f} ms over {args.repeat}; {len(text):,} bytes,"
          f" {series} series ({args.per_node} nodes with per-node series)")  # fmt: skip

    started = time.perf_counter()
    rows = hub.nodes()
    walked = time.perf_counter() - started
    print(f"one walk over every node's row (CloudHubCore.nodes, {len(rows):,} rows):"
          f" {walked * 1e3:.1f} ms, which the running totals spare each scrape")  # fmt: skip
    totals = hub.metrics()
    print(f"totals: queued {totals['queued']:,}, in flight {totals['in_flight']:,},"
          f" sent {totals['sent']:,}, acked {totals['acked']:,}")  # fmt: skip


if __name__ == "__main__":
    main()
