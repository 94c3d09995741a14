"""Benchmark of the embedded Kubernetes API server, driven by the official client.

Run: python bench/kubeapi_bench.py [--pods 10000] [--threads 8]

The server runs in a child process (as `beehive kube-api` would), so client and server
do not share a GIL; on a 2-core machine they still share the CPUs. Prints:
creates/s from several client threads, the time to list every pod (raw JSON and as
models), watch events/s to 1 and to 10 watchers (replaying the creates from the
history, i.e. as fast as the server can deliver), and memory per stored pod.
"""

from __future__ import annotations

import argparse
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

from modules.kubeapi.resources import Catalogue
from modules.kubeapi.store import Store

NAMESPACE = "bench"


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


def start_server(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = tmp / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modules.kubeapi.cli",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
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


def bench_creates(kubeconfig: Path, count: int, threads: int) -> float:
    apis = [new_core(kubeconfig) for _ in range(threads)]

    def work(index: int) -> None:
        api = apis[index]
        for i in range(index, count, threads):
            api.create_namespaced_pod(NAMESPACE, pod(f"p{i:06d}"), _preload_content=False).read()

    with ThreadPoolExecutor(threads) as pool:
        elapsed = timed(lambda: list(pool.map(work, range(threads))))
    return count / elapsed


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


def report(proc: subprocess.Popen[str], kubeconfig: Path, pods: int, threads: int) -> None:
    api = new_core(kubeconfig)
    api.create_namespace({"metadata": {"name": NAMESPACE}})
    since = api.list_namespaced_pod(NAMESPACE).metadata.resource_version
    cpu = cpu_seconds(proc)
    rate = bench_creates(kubeconfig, pods, threads)
    per_create = (cpu_seconds(proc) - cpu) / pods
    print(f"creates: {rate:,.0f}/s ({pods} pods, {threads} client threads, raw responses)")
    print(f"  server CPU {per_create * 1e6:.0f} us/create = {1 / per_create:,.0f}/s per core")
    raw, models, n = bench_list(api)
    print(f"list {n} pods: {raw:.2f}s raw JSON (_preload_content=False), {models:.2f}s models")
    for watchers in (1, 10):
        cpu = cpu_seconds(proc)
        events = bench_watch(kubeconfig, since, pods, watchers)
        per_event = (cpu_seconds(proc) - cpu) / (pods * watchers)
        print(f"watch: {events:,.0f} events/s to {watchers} watcher(s) (replay, raw lines)")
        print(f"  server CPU {per_event * 1e6:.1f} us/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, kubeconfig = start_server(Path(tmp))
        try:
            report(proc, kubeconfig, args.pods, args.threads)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"memory: {bench_memory(args.pods) / 1024:.1f} KiB per stored pod (tracemalloc)")


if __name__ == "__main__":
    main()
