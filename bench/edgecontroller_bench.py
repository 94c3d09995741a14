"""Benchmark: edgecontroller's initial sync and steady updates, against the bare-watch floor.

Run: python bench/edgecontroller_bench.py [--nodes 1000] [--pods-per-node 10] [--configmaps 1000]

The embedded API server runs in its own process (as `beehive kube-api`), filled with
N edge nodes, N*P pods bound to them and C configmaps, each pod mounting one
configmap. Then, in this process:
- the floor: a bare client list + watch start of the same objects (reading them at all);
- edgecontroller started with cloudhub swapped for a counting module: the time until
  every message it owes (one per node, pod and (node, configmap) pair) has arrived;
- edgecontroller's own memory (caches, queues) per object on top of the objects
  themselves (tracemalloc, in a second run);
- events/s and latency (patch returned -> message at cloudhub) for a steady stream of
  pod updates.
Goal (issue 4): the initial sync within 2x the floor, and under 2 KiB per object.

The whole process runs with the garbage-collector threshold `beehive run` sets
(`hive.gc_threshold`), so the floor and the controller are measured alike.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config

from beehive import Hive, MailboxSpec, Message, Module, codec, runtime
from modules.edgecontroller import EdgeController, EdgeControllerSettings
from modules.kube import crds, raw
from modules.kube.connection import KubeConnection

NAMESPACE = "bench"
EDGE_LABEL = "node-role.kubernetes.io/edge"
MERGE = "application/merge-patch+json"
WATCHED = ("/api/v1/nodes", "/api/v1/pods", "/api/v1/configmaps", "/api/v1/secrets")


class Counter(Module):
    """Stands in for cloudhub: counts messages and notes when each resource arrived."""

    def on_start(self) -> None:
        self.tally: Tally = self.context.services["tally"]

    def on_message(self, message: Message) -> None:
        self.tally.hit(message.route.resource)


class Tally:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = threading.Event()
        self.arrived: dict[str, float] = {}  # resource -> last arrival (monotonic)

    def hit(self, resource: str) -> None:
        self.count += 1
        self.arrived[resource] = time.monotonic()
        if self.target and self.count >= self.target:
            self.done.set()

    def expect(self, target: int) -> None:
        self.count, self.target = 0, target
        self.done.clear()


def start_api(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = tmp / "kubeconfig"
    command = [sys.executable, "-m", "modules.kubeapi.cli", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--kubeconfig", str(kubeconfig)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if "serving at" not in proc.stdout.readline():
        raise RuntimeError("the API server did not start")
    return proc, kubeconfig


def api_client(kubeconfig: Path) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    return api


def populate(kubeconfig: Path, args: argparse.Namespace) -> int:
    """Create nodes, configmaps and pods; returns how many messages edgecontroller owes."""
    objects: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    ]
    for n in range(args.nodes):
        meta = {"name": f"edge-{n}", "labels": {EDGE_LABEL: ""}}
        objects.append(("/api/v1/nodes", {"metadata": meta}))
    base = f"/api/v1/namespaces/{NAMESPACE}"
    for c in range(args.configmaps):
        objects.append(
            (f"{base}/configmaps", {"metadata": {"name": f"cm-{c}"}, "data": {"k": "v" * 64}})
        )
    pairs = set()
    for i in range(args.nodes * args.pods_per_node):
        node, cm = i // args.pods_per_node, i % args.configmaps
        pairs.add((node, cm))
        spec = {
            "nodeName": f"edge-{node}",
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
            "volumes": [{"name": "c", "configMap": {"name": f"cm-{cm}"}}],
        }
        objects.append((f"{base}/pods", {"metadata": {"name": f"pod-{i}"}, "spec": spec}))
    first = api_client(kubeconfig)
    crds.install(first)  # as a KubeEdge cluster has them
    raw.request(first, "POST", objects[0][0], body=objects[0][1])
    clients = [api_client(kubeconfig) for _ in range(args.threads)]

    def work(k: int) -> None:
        for path, body in objects[1 + k :: args.threads]:
            raw.request(clients[k], "POST", path, body=body)

    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(work, range(args.threads)))
    owed: int = args.nodes + args.nodes * args.pods_per_node + len(pairs)
    return owed


def floor(kubeconfig: Path, loads: Callable[[bytes], Any]) -> float:
    """Seconds for the bare client to list every watched resource as JSON, parsed by
    `loads`, and to open a watch on each from the list's resourceVersion."""
    core: Any = client.CoreV1Api(api_client(kubeconfig))
    calls = [
        (core.list_node, {"label_selector": EDGE_LABEL}),
        (core.list_pod_for_all_namespaces, {}),
        (core.list_config_map_for_all_namespaces, {}),
        (core.list_secret_for_all_namespaces, {}),
    ]
    start = time.perf_counter()
    for call, selector in calls:
        listing = loads(call(_preload_content=False, **selector).data)
        rv = listing["metadata"]["resourceVersion"]
        watch = call(
            watch=True, resource_version=rv, timeout_seconds=1, _preload_content=False, **selector
        )
        watch.release_conn()
    return time.perf_counter() - start


def parse_only(kubeconfig: Path, loads: Callable[[bytes], Any]) -> float:
    """Seconds `loads` takes for the same lists, fetched beforehand: the floor's own work."""
    api = api_client(kubeconfig)
    bodies = []
    auth = {"Authorization": api.configuration.auth_settings()["BearerToken"]["value"]}
    for path in WATCHED:
        url = api.configuration.host + path
        bodies.append(api.rest_client.pool_manager.request("GET", url, headers=auth).data)
    start = time.perf_counter()
    for body in bodies:
        loads(body)
    return time.perf_counter() - start


def typed_floor(kubeconfig: Path) -> float:
    """Seconds to list the same objects into the official client's models."""
    core: Any = client.CoreV1Api(api_client(kubeconfig))
    start = time.perf_counter()
    core.list_node(label_selector=EDGE_LABEL)
    core.list_pod_for_all_namespaces()
    core.list_config_map_for_all_namespaces()
    core.list_secret_for_all_namespaces()
    return time.perf_counter() - start


def controller_hive(kubeconfig: Path, tally: Tally, mailbox: int) -> Hive:
    hive = Hive()
    services = {"kube": KubeConnection(kubeconfig), "tally": tally}
    hive.add("cloudhub", Counter, services=services, mailbox=MailboxSpec(size=mailbox))
    settings = EdgeControllerSettings(qps=1000, burst=2000)
    hive.add("edgecontroller", EdgeController, settings=settings, services=services)
    return hive


def initial_sync(kubeconfig: Path, owed: int, timeout: float) -> tuple[float, Hive, Tally]:
    tally = Tally()
    tally.expect(owed)
    hive = controller_hive(kubeconfig, tally, owed + 10_000)
    start = time.perf_counter()
    hive.start()
    if not tally.done.wait(timeout):
        print(f"  initial sync incomplete: {tally.count} of {owed} messages", file=sys.stderr)
    return time.perf_counter() - start, hive, tally


def memory_per_object(
    kubeconfig: Path, owed: int, objects: int, timeout: float
) -> tuple[float, float]:
    """(bytes per object of the parsed objects, edgecontroller's bytes per object on top)."""
    api = api_client(kubeconfig)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    parsed = [
        raw.request(api, "GET", p) for p in ("/api/v1/nodes", "/api/v1/pods", "/api/v1/configmaps")
    ]
    objects_bytes = tracemalloc.get_traced_memory()[0] - base
    del parsed
    base = tracemalloc.get_traced_memory()[0]
    tally = Tally()
    tally.expect(owed)
    hive = controller_hive(kubeconfig, tally, owed + 10_000)
    hive.start()
    tally.done.wait(timeout)
    while hive.module("cloudhub").mailbox.depth:
        time.sleep(0.05)
    total = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    hive.stop()
    return objects_bytes / objects, (total - objects_bytes) / objects


def steady_updates(kubeconfig: Path, tally: Tally, args: argparse.Namespace) -> None:
    """Patch pods (each at most once) from driver threads; rate and latency to cloudhub."""
    pods = args.nodes * args.pods_per_node
    clients = [api_client(kubeconfig) for _ in range(args.threads)]
    returned: dict[str, float] = {}  # resource at cloudhub -> when its patch returned
    stop = time.monotonic() + args.steady_seconds

    def work(k: int) -> None:
        for i in range(k, pods, args.threads):
            if time.monotonic() >= stop:
                return
            path = f"/api/v1/namespaces/{NAMESPACE}/pods/pod-{i}"
            body = {"metadata": {"labels": {"tick": "1"}}}
            raw.request(clients[k], "PATCH", path, body=body, content_type=MERGE)
            returned[f"node/edge-{i // args.pods_per_node}/{NAMESPACE}/pod/pod-{i}"] = (
                time.monotonic()
            )

    tally.arrived.clear()
    tally.expect(0)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(work, range(args.threads)))
    deadline = time.monotonic() + 30
    while tally.count < len(returned) and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    lat = sorted(tally.arrived[r] - t for r, t in returned.items() if r in tally.arrived)
    print(
        f"steady pod updates: {len(returned):,} patches, {tally.count:,} messages,"
        f" {tally.count / elapsed:,.0f} events/s; latency patch returned -> cloudhub"
        f" p50 {_pct(lat, 50)} p99 {_pct(lat, 99)} max {_pct(lat, 100)}"
    )


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _pct(values: list[float], pct: int) -> str:
    if not values:
        return "-"
    return f"{values[min(len(values) - 1, len(values) * pct // 100)] * 1000:.1f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--configmaps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steady-seconds", type=float, default=10)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    runtime.tune_gc(runtime.DEFAULT_GC_THRESHOLD)  # as `beehive run` does
    print(f"GC threshold {runtime.DEFAULT_GC_THRESHOLD:,} for floor and controller alike")
    with tempfile.TemporaryDirectory() as tmp:
        proc, kubeconfig = start_api(Path(tmp))
        try:
            run(kubeconfig, proc, args)
        finally:
            proc.terminate()
            proc.wait(10)


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def run(kubeconfig: Path, proc: subprocess.Popen[str], args: argparse.Namespace) -> None:
    start = time.perf_counter()
    owed = populate(kubeconfig, args)
    objects = args.nodes * (1 + args.pods_per_node) + args.configmaps
    took = time.perf_counter() - start
    print(f"populated {objects:,} objects in {took:.1f}s; edgecontroller owes {owed:,} messages")
    parsing = min(parse_only(kubeconfig, codec.loads) for _ in range(3))
    std_parsing = min(parse_only(kubeconfig, json.loads) for _ in range(3))
    print(
        f"parsing the lists alone: {parsing:.3f}s with orjson (as the controller does),"
        f" {std_parsing:.3f}s with the standard library's json (as the client does)"
    )
    warm = time.perf_counter()
    _ = (client.CoreV1Api, client.CoordinationV1Api, client.CustomObjectsApi)  # lazy imports
    took = time.perf_counter() - warm
    print(f"importing the client's API classes (once per process, not counted): {took:.2f}s")
    gc.collect()
    typed = typed_floor(kubeconfig)
    print(f"floor with the client's typed models instead of raw JSON: {typed:.2f}s")
    api, me = psutil.Process(proc.pid), psutil.Process()
    fast, std, runs = [], [], []
    hive: Hive | None = None
    for _ in range(args.rounds):  # interleaved, so a slow spell of the machine hits all three
        # Each measurement starts with the collector clear of what the last one left
        # (a stopped hive leaves tens of thousands of objects in cycles): a process
        # that starts edgecontroller has no such garbage either.
        gc.collect()
        fast.append(floor(kubeconfig, codec.loads))
        gc.collect()
        std.append(floor(kubeconfig, json.loads))
        if hive is not None:
            hive.stop()
        gc.collect()
        api_cpu, my_cpu = cpu(api), cpu(me)
        took, hive, tally = initial_sync(kubeconfig, owed, args.timeout)
        api_cpu, my_cpu = cpu(api) - api_cpu, cpu(me) - my_cpu
        runs.append(took)
    assert hive is not None
    print(f"{args.rounds} rounds, each: both floors, then edgecontroller's initial sync")
    for name, times in (
        ("floor, bare client list + watch, orjson", fast),
        ("floor, bare client list + watch, stdlib json", std),
        ("edgecontroller initial sync", runs),
    ):
        shown = ", ".join(f"{t:.3f}" for t in times)
        print(f"  {name}: best {min(times):.3f}s, median {_median(times):.3f}s ({shown})")
    for name, times in (("orjson", fast), ("stdlib json", std)):
        ratios = [r / f for r, f in zip(runs, times, strict=True)]
        print(
            f"  initial sync / floor with {name}: best {min(runs) / min(times):.2f}x,"
            f" median of rounds {_median(ratios):.2f}x"
        )
    print(f"  {tally.count:,} messages, {tally.count / min(runs):,.0f} msgs/s at best")
    print(
        f"  CPU in the last run: edgecontroller's process {my_cpu:.2f}s, API server {api_cpu:.2f}s"
    )
    steady_updates(kubeconfig, tally, args)
    hive.stop()
    per_object, overhead = memory_per_object(kubeconfig, owed, objects, args.timeout)
    print(
        f"memory: the objects {per_object / 1024:.2f} KiB each as parsed JSON;"
        f" edgecontroller on top of them: {overhead / 1024:.2f} KiB per object (goal < 2)"
    )


if __name__ == "__main__":
    main()
