"""Benchmark of the embedded Kubernetes API server, driven by the official client.

Run: python bench/kubeapi_bench.py [--pods 10000] [--procs 4] [--threads 4] [--persist]

The server runs in a child process (as `beehive kube-api` would). One Python client
process costs about 1 ms of CPU per create and its threads share one GIL, so creates are
driven from several client processes, each with a few threads; on a small machine
clients and server still share the CPUs, so the server's own CPU per create (read from
the OS) is the figure that says what the server can do. Prints:
- creates/s and server CPU per create, from several processes and from one process;
- the time to list every pod (raw JSON and as models);
- watch events/s to 1 and to 10 watchers replaying the creates from the history;
- a live watch following creates as they happen: events/s and the latency from a
  create's response to the watcher seeing the event;
- memory per stored pod.
With --persist the server keeps its state in a sqlite file (`--data`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config

from modules.kubeapi.resources import Catalogue
from modules.kubeapi.store import Store

NAMESPACE = "bench"  # multi-process creates, list and replayed watches
SINGLE = "bench-single"  # creates from one process
LIVE = "bench-live"  # creates followed by a live watch


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "edge"}},
        "spec": {
            "nodeName": f"edge-{hash(name) % 100}",
            "containers": [
                {
                    "name": "main",
                    "image": "registry.invalid/app:1",
                    "ports": [{"containerPort": 80}],
                }
            ],
        },
    }


def start_server(tmp: Path, *, persist: bool) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = tmp / "kubeconfig"
    command = [sys.executable, "-m", "modules.kubeapi.cli", "--port", "0"]
    command += ["--kubeconfig", str(kubeconfig)]
    if persist:
        command += ["--data", str(tmp / "state.db")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving at" not in line:
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, kubeconfig


def new_core(kubeconfig: Path) -> Any:
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]


def cpu_seconds(proc: subprocess.Popen[str]) -> float:
    times = psutil.Process(proc.pid).cpu_times()
    return float(times.user + times.system)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def create_pods(kubeconfig: Path, namespace: str, names: list[str], threads: int) -> list[float]:
    """Create `names` from `threads` threads; the monotonic time each create returned."""
    apis = [new_core(kubeconfig) for _ in range(threads)]
    done = [0.0] * len(names)

    def work(index: int) -> None:
        api = apis[index]
        for i in range(index, len(names), threads):
            api.create_namespaced_pod(namespace, pod(names[i]), _preload_content=False).read()
            done[i] = time.monotonic()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return done


def _create_share(args: tuple[Path, str, list[str], int]) -> list[float]:
    return create_pods(*args)


def create_from_processes(
    kubeconfig: Path, namespace: str, names: list[str], *, procs: int, threads: int
) -> tuple[float, dict[str, float]]:
    """Create `names` from `procs` processes: (seconds taken, name -> time returned)."""
    shares = [names[i::procs] for i in range(procs)]
    with multiprocessing.Pool(procs) as pool:
        pool.map(time.sleep, [0] * procs)  # processes started and importing done
        start = time.perf_counter()
        results = pool.map(_create_share, [(kubeconfig, namespace, s, threads) for s in shares])
        elapsed = time.perf_counter() - start
    pairs = zip(shares, results, strict=True)
    returned = {n: t for share, times in pairs for n, t in zip(share, times, strict=True)}
    return elapsed, returned


def bench_list(api: Any) -> tuple[float, float, int]:
    box: list[int] = []
    raw = timed(
        lambda: box.append(
            len(
                json.loads(api.list_namespaced_pod(NAMESPACE, _preload_content=False).read())[
                    "items"
                ]
            )
        )
    )
    models = timed(lambda: api.list_namespaced_pod(NAMESPACE))
    return raw, models, box[0]


def bench_watch(kubeconfig: Path, since: str, expected: int, watchers: int) -> float:
    """Every watcher replays `expected` events from `since`; total events/s delivered."""
    apis = [new_core(kubeconfig) for _ in range(watchers)]
    ready = threading.Barrier(watchers + 1)

    def watch(api: Any) -> None:
        response = api.list_namespaced_pod(
            NAMESPACE,
            watch=True,
            resource_version=since,
            timeout_seconds=120,
            _preload_content=False,
        )
        ready.wait()
        seen = 0
        for line in response:
            if line.strip():
                seen += 1
                if seen == expected:
                    break
        response.close()

    threads = [threading.Thread(target=watch, args=(api,)) for api in apis]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return expected * watchers / (time.perf_counter() - start)


def follow(kubeconfig: Path, since: str, expected: int, pipe: Connection) -> None:
    """Watch LIVE from `since` until `expected` ADDED events; send name -> time seen."""
    response = new_core(kubeconfig).list_namespaced_pod(
        LIVE, watch=True, resource_version=since, timeout_seconds=300, _preload_content=False
    )
    pipe.send("ready")
    seen: dict[str, float] = {}
    for line in response:
        if line.strip():
            event = json.loads(line)
            seen[event["object"]["metadata"]["name"]] = time.monotonic()
            if len(seen) == expected:
                break
    response.close()
    pipe.send(seen)


def bench_live(kubeconfig: Path, since: str, count: int, *, procs: int, threads: int) -> None:
    names = [f"l{i:06d}" for i in range(count)]
    ours, theirs = multiprocessing.Pipe()
    watcher = multiprocessing.Process(target=follow, args=(kubeconfig, since, count, theirs))
    watcher.start()
    assert ours.recv() == "ready"
    elapsed, returned = create_from_processes(kubeconfig, LIVE, names, procs=procs, threads=threads)
    seen: dict[str, float] = ours.recv()
    watcher.join()
    lags = sorted(seen[n] - returned[n] for n in names)
    span = max(seen.values()) - min(seen.values())
    ms = [lags[len(lags) // 2] * 1e3, lags[int(len(lags) * 0.99)] * 1e3, lags[-1] * 1e3]
    print(f"live watch: {count / span:,.0f} events/s while creating {count / elapsed:,.0f}/s")
    print(f"  latency create returned -> watcher saw it: p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms,")
    print(f"  max {ms[2]:.1f} ms (negative: seen before the creator read its response)")


def bench_memory(count: int) -> float:
    store = Store(history=1)
    pods = Catalogue().lookup("", "v1", "pods")
    assert pods is not None
    store.bootstrap()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        store.create(pods, "default", pod(f"p{i:06d}"))
        store.changes.clear()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def print_creates(label: str, count: int, elapsed: float, cpu: float) -> None:
    per_create = cpu / count
    print(f"creates: {count / elapsed:,.0f}/s ({count} pods, {label}, raw responses)")
    print(f"  server CPU {per_create * 1e6:.0f} us/create = {1 / per_create:,.0f}/s per core")


def report(proc: subprocess.Popen[str], kubeconfig: Path, args: argparse.Namespace) -> None:
    api = new_core(kubeconfig)
    for namespace in (NAMESPACE, SINGLE, LIVE):
        api.create_namespace({"metadata": {"name": namespace}})
    since = api.list_namespaced_pod(NAMESPACE).metadata.resource_version
    names = [f"p{i:06d}" for i in range(args.pods)]
    cpu = cpu_seconds(proc)
    elapsed, _ = create_from_processes(
        kubeconfig, NAMESPACE, names, procs=args.procs, threads=args.threads
    )
    label = f"{args.procs} processes x {args.threads} threads"
    print_creates(label, args.pods, elapsed, cpu_seconds(proc) - cpu)
    raw, models, n = bench_list(api)
    print(f"list {n} pods: {raw:.2f}s raw JSON (_preload_content=False), {models:.2f}s models")
    for watchers in (1, 10):
        cpu = cpu_seconds(proc)
        events = bench_watch(kubeconfig, since, args.pods, watchers)
        per_event = (cpu_seconds(proc) - cpu) / (args.pods * watchers)
        print(f"watch: {events:,.0f} events/s to {watchers} watcher(s) (replay, raw lines)")
        print(f"  server CPU {per_event * 1e6:.1f} us/event")
    cpu = cpu_seconds(proc)
    elapsed = timed(lambda: create_pods(kubeconfig, SINGLE, names, args.single_threads))
    label = f"1 process x {args.single_threads} threads"
    print_creates(label, args.pods, elapsed, cpu_seconds(proc) - cpu)
    since = api.list_namespaced_pod(LIVE).metadata.resource_version
    bench_live(kubeconfig, since, args.live, procs=args.procs, threads=args.threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000, help="pods per create phase")
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--single-threads", type=int, default=8, help="threads, one process")
    parser.add_argument("--live", type=int, default=3000, help="pods created under a live watch")
    parser.add_argument("--persist", action="store_true", help="server state in a sqlite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, kubeconfig = start_server(Path(tmp), persist=args.persist)
        try:
            report(proc, kubeconfig, args)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"memory: {bench_memory(args.pods) / 1024:.1f} KiB per stored pod (tracemalloc)")


if __name__ == "__main__":
    main()
