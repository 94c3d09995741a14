"""ObjectSync benchmark: cloudhub's record writer under workload W's acks, against an API server.

Run: python bench/objectsync_bench.py [--nodes 1000] [--pods-per-node 10] [--rate 500]
     [--kubeconfig PATH] [--quick] [--json PATH]

The API server is `beehive kube-api` in a process of its own, unless --kubeconfig
names one (records of this run's nodes only are written; their names are unique per
run). This process plays cloudhub's core: for W (create pods-per-node pods on every
node, update each once, delete all; pod i of every node, then pod i+1, as
bench/e2e_bench.py calls the API) it submits to `modules.cloudhub.objectsync`'s
writer the ops the core submits, at --rate objects per second, in batches every
10 ms: a create is `Ensure` when queued and `Acked` --ack-delay later, an update
`Acked`, a delete `Deleting` then `Forget`.

Prints per phase: objects delivered, the writer's API writes (create, patch and
delete requests to records, counted at the client) and writes per object, the
seconds the writer took to catch up after the phase's last ack (the next phase
starts then, so each phase's writes are its own), and the peak lag (the age of the
oldest ack not written, sampled every 50 ms; for a writer without `stats`, as the
current one before this benchmark existed, not shown). At the end, the writer is
stopped as cloudcore stops it (`stop()`, 5 s to write what waits) right after the
delete phase's last ack, and the records left in the API are counted: ours and
KubeEdge's ObjectSync/ClusterObjectSync.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, config

from modules.cloudhub import objects, objectsync
from modules.kube import crds, raw

BEEHIVE = [sys.executable, "-m", "modules.cli"]
PLURALS = (  # every kind of record a writer may leave
    "/apis/reliablesyncs.beehive-edge.io/v1alpha1/objectsyncshards",
    "/apis/reliablesyncs.kubeedge.io/v1alpha1/objectsyncs",
    "/apis/reliablesyncs.kubeedge.io/v1alpha1/clusterobjectsyncs",
)
WRITE_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


class Counted:
    """Requests to record kinds made through one client, by verb."""

    def __init__(self, api_client: Any) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        rest = api_client.rest_client
        send = rest.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if "objectsync" in url and method in WRITE_VERBS:
                with self._lock:
                    self.counts[WRITE_VERBS[method]] += 1
            return send(method, url, *args, **kwargs)

        rest.request = request

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


@contextmanager
def api_server(args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    """The kubeconfig of the API under test (started here unless given)."""
    if args.kubeconfig:
        yield args.kubeconfig
        return
    path = tmp / "kubeconfig"
    with (tmp / "api.log").open("w") as out:
        proc = subprocess.Popen([*BEEHIVE, "kube-api", "--port", "0", "--kubeconfig", str(path)],
                                stdout=out, stderr=out)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the API server did not start: see {tmp / 'api.log'}")
            time.sleep(0.05)
        yield str(path)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class LagSampler:
    """The writer's lag (oldest ack not written), sampled every 50 ms; max per phase."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if hasattr(writer, "stats"):
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._writer.stats()["lag"])

    def take(self) -> float | None:
        peak, self.peak = self.peak, 0.0
        return round(peak, 2) if self._thread.is_alive() else None

    def close(self) -> None:
        self._stop.set()


def pods(args: argparse.Namespace, run_id: str) -> list[tuple[str, objects.ObjectRef]]:
    """(node, pod) in W's order: pod i of every node, then pod i+1."""
    nodes = [f"ob{run_id}-{n}" for n in range(args.nodes)]
    return [
        (
            node,
            objects.ObjectRef(f"{node}-uid-{i}", "default", "pod", f"w-{node}-{i}", "v1", "Pod"),
        )
        for i in range(args.pods_per_node)
        for node in nodes
    ]


def phase(
    writer: Any,
    items: list[tuple[str, objects.ObjectRef]],
    *,
    rate: float,
    ack_delay: float,
    first: Callable[[str, objects.ObjectRef], objects.SyncOp | None],
    then: Callable[[str, objects.ObjectRef], objects.SyncOp],
) -> float:
    """Submit `first` for each item at `rate`, `then` for it `ack_delay` later, in 10 ms
    batches; returns when the last was submitted."""
    start, queued, acked = time.monotonic(), 0, 0
    due: collections.deque[tuple[float, str, objects.ObjectRef]] = collections.deque()
    while acked < len(items):
        now = time.monotonic()
        batch: list[objects.SyncOp] = []
        target = min(len(items), int((now - start) * rate) + 1)
        for node, ref in items[queued:target]:
            op = first(node, ref)
            if op is not None:
                batch.append(op)
            due.append((now + ack_delay, node, ref))
        queued = target
        while due and due[0][0] <= now:
            _, node, ref = due.popleft()
            batch.append(then(node, ref))
            acked += 1
        if batch:
            writer.submit(batch)
        time.sleep(0.01)
    return time.monotonic()


def records_left(api: Any) -> dict[str, int]:
    left = {}
    for path in PLURALS:
        try:
            left[path.rsplit("/", 1)[-1]] = len(raw.request(api, "GET", path).get("items") or [])
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            left[path.rsplit("/", 1)[-1]] = 0
    return left


def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="objectsync-bench-") as tmp, \
            api_server(args, Path(tmp)) as kubeconfig:  # fmt: skip
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        crds.install(api)
        counted = Counted(api)
        writer = objectsync.ObjectSyncWriter(api)
        writer.read_all()
        writer.start()
        lag = LagSampler(writer)
        items = pods(args, run_id)
        rv = iter(range(1000, 10**9))
        ops: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "create": (objects.Ensure, lambda n, r: objects.Acked(n, r, next(rv))),
            "update": (lambda n, r: None, lambda n, r: objects.Acked(n, r, next(rv))),
            "delete": (objects.Deleting, objects.Forget),
        }
        results = []
        for name, (first, then) in ops.items():
            before = counted.snapshot()
            start = time.monotonic()
            last = phase(writer, items, rate=args.rate, ack_delay=args.ack_delay,
                         first=first, then=then)  # fmt: skip
            if name == "delete":  # cloudcore stops now: stop() writes for 5 s at most
                writer.stop()
                caught_up = writer.flush(0)
            else:
                caught_up = writer.flush(args.timeout)
            drained = time.monotonic() - last
            after = counted.snapshot()
            writes = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            total = sum(writes.values())
            results.append({
                "phase": name, "objects": len(items), "seconds": round(last - start, 1),
                "writes": writes, "writes_per_object": round(total / len(items), 3),
                "catch_up_s": round(drained, 2), "caught_up": caught_up,
                "peak_lag_s": lag.take(),
            })  # fmt: skip
        lag.close()
        left = records_left(api)
        stats = writer.stats() if hasattr(writer, "stats") else None
        api.close()
    return {"nodes": args.nodes, "pods_per_node": args.pods_per_node, "rate": args.rate,
            "phases": results, "records_left": left, "writer": stats}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['nodes']} nodes x {result['pods_per_node']} pods, {result['rate']:g} objects/s",
        "phase    objects  seconds  creates  patches  deletes  writes/object  catch-up s"
        "  peak lag s",
    ]
    for p in result["phases"]:
        w = p["writes"]
        peak = "-" if p["peak_lag_s"] is None else f"{p['peak_lag_s']:.2f}"
        behind = "" if p["caught_up"] else " (not caught up)"
        lines.append(
            f"{p['phase']:<8} {p['objects']:>7} {p['seconds']:>8} {w.get('create', 0):>8}"
            f" {w.get('patch', 0):>8} {w.get('delete', 0):>8} {p['writes_per_object']:>14}"
            f" {p['catch_up_s']:>11}{behind} {peak:>11}"
        )
    left = ", ".join(f"{k} {v}" for k, v in result["records_left"].items())
    lines.append(f"records left after stop: {left}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500, help="objects per second per phase")
    parser.add_argument("--ack-delay", type=float, default=0.02, help="seconds queued -> acked")
    parser.add_argument(
        "--kubeconfig", default="", help="an API server to use (default: start one)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for catch-up")
    parser.add_argument("--quick", action="store_true", help="100 nodes x 3 pods")
    parser.add_argument("--json", default="", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.pods_per_node = 100, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
