"""End-to-end benchmark: Kubernetes API -> cloudcore -> 1,000 fleet edges, against the watch floor.

Run: python bench/e2e_bench.py [--nodes 1000] [--pods-per-node 10] [--kubeconfig PATH] [--quick]
     [--plain]

Processes: the API server (`beehive kube-api`, unless --kubeconfig names one), cloudcore
(`beehive run` on a generated config: certserver, edgecontroller and cloudhub, pointed
at the API by kubeconfig) and the fleet (`beehive fleet --control`, driven over its
stdin). As in production, edges connect over mutual TLS: the fleet enrols every node
with cloudcore's join token first (not timed); `--plain` runs plain websockets instead. Driver
threads here call the API and record when each call returned; the fleet records when
each object arrived at its node (both on the system-wide monotonic clock).

Workload W: create pods-per-node pods on every node, update each once, delete all.
First the floor: the same workload in another namespace, seen by a bare watch in this
process with no cloudcore in between. Then W through cloudcore, and a reconnect storm
(every session drops while one pod per node changes). Prints per phase: time until
all arrived, messages/s, latency p50/p90/p99/max (call returned -> arrived),
duplicates, CPU seconds per process and cloudcore's peak memory; cloudcore's memory
per connected node at idle; the storm's convergence time and lost updates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import psutil
import urllib3
from kubernetes import client, config

BEEHIVE = [sys.executable, "-m", "modules.cli"]  # the project's console script
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
Expected = dict[str, dict[str, int | None]]  # node -> key -> resourceVersion (None: deleted)
Returned = dict[str, tuple[str, int | None, float]]  # key -> (node, rv, when the call returned)
CLOUDCORE = """kube: {{mode: kubeconfig, kubeconfig: "{kubeconfig}"}}
hive: {{admin: {{address: "off"}}}}
modules:
  metrics:
    settings: {{address: 127.0.0.1, port: {metrics_port}}}
{certserver}  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}, node_limit: {limit}, tls: {tls},
                handshake_threads: {handshake_threads}}}
"""
CERTSERVER = """  certserver:
    settings: {{address: 127.0.0.1, port: {port}, advertise_addresses: [127.0.0.1]}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


# Processes.


def spawn(args: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen(
            args, stdout=kwargs.pop("stdout", out), stderr=out, text=True, **kwargs
        )


def stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    times = {}
    for name, pid in pids.items():
        t = psutil.Process(pid).cpu_times()
        times[name] = t.user + t.system
    return times


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id of a process (Linux: /proc/PID/task)."""
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the thread ended
        times[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return times


def thread_names(pid: int) -> dict[int, str]:
    """Python's name for each thread id (py-spy dump), a pool's number dropped; {} when
    py-spy is not installed."""
    spy = py_spy()
    try:
        out = subprocess.run([spy, "dump", "--nonblocking", "-p", str(pid)],
                             capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    except OSError:
        return {}
    found = re.findall(r'^Thread (\d+) \(\w+\): "(.*)"$', out, re.MULTILINE)
    return {int(tid): name.rstrip("0123456789").rstrip("_-") for tid, name in found}


def thread_cpu_spent(pid: int, before: dict[int, float]) -> dict[str, float]:
    """CPU seconds spent since `before` per thread name (threads py-spy cannot name, or
    that ended, are summed as 'other')."""
    after, names = thread_cpu(pid), thread_names(pid)
    spent: dict[str, float] = {}
    for tid, cpu in after.items():
        name = names.get(tid, "other")
        spent[name] = spent.get(name, 0.0) + cpu - before.get(tid, 0.0)
    return dict(sorted(((k, round(v, 2)) for k, v in spent.items() if v >= 0.05),
                       key=lambda kv: -kv[1]))  # fmt: skip


@contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """Sample a process's RSS every 50 ms while the block runs; yields [peak]."""
    peak, done, proc = [0], threading.Event(), psutil.Process(pid)

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def py_spy() -> str:
    """The py-spy command: on the PATH, else beside this Python."""
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


@contextmanager
def profiled(pid: int, out: str, *, gil: bool = False) -> Iterator[None]:
    """py-spy samples `pid` (every thread, collapsed stacks to `out`; with `gil`, only
    the thread holding the GIL) while the block runs; nothing happens when `out` is
    empty."""
    if not out:
        yield
        return
    spy = py_spy()
    args = [
        spy,
        "record",
        "-p",
        str(pid),
        "-o",
        out,
        "--format",
        "raw",
        "--threads",
        "--nonblocking",
        "-r",
        "50",
        *(["--gil"] if gil else []),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


class FleetControl:
    """The fleet process's control channel: one JSON reply per command."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._in: IO[str] = proc.stdin
        self._out: IO[str] = proc.stdout

    def ask(self, command: str) -> dict[str, Any]:
        self._in.write(command + "\n")
        self._in.flush()
        line = self._out.readline()
        if not line:
            raise RuntimeError(f"the fleet exited (code {self.proc.poll()}) on {command!r}")
        reply: dict[str, Any] = json.loads(line)
        return reply


# The workload.


class Driver:
    """Driver threads calling the API, each with its own client; records when calls return."""

    def __init__(self, kubeconfig: str, namespace: str, threads: int) -> None:
        self.namespace = namespace
        self.threads = threads
        self._local = threading.local()
        self._kubeconfig = kubeconfig
        self._clients: list[client.ApiClient] = []

    def _core(self) -> Any:
        if not hasattr(self._local, "core"):
            api = config.new_client_from_config(config_file=self._kubeconfig)  # type: ignore[no-untyped-call]
            self._clients.append(api)
            self._local.core = client.CoreV1Api(api)
        return self._local.core

    def run(self, calls: list[tuple[str, str, str]]) -> Returned:
        """(verb, node, pod name) calls spread over the threads."""
        with ThreadPoolExecutor(self.threads) as pool:
            return dict(pool.map(lambda c: self._call(*c), calls))

    def _call(self, verb: str, node: str, name: str) -> tuple[str, tuple[str, int | None, float]]:
        core, ns = self._core(), self.namespace
        if verb == "create":
            body = {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [
                {"name": "main", "image": "registry.invalid/app:1"}]}}  # fmt: skip
            resp = core.create_namespaced_pod(ns, body, _preload_content=False)
        elif verb == "update":
            patch = {"metadata": {"labels": {"phase": uuid.uuid4().hex[:8]}}}
            resp = core.patch_namespaced_pod(name, ns, patch, _preload_content=False)
        else:
            resp = core.delete_namespaced_pod(
                name, ns, grace_period_seconds=0, _preload_content=False
            )
        returned = time.monotonic()
        data = resp.data  # read also for a delete: an unread answer keeps its connection
        rv = json.loads(data)["metadata"].get("resourceVersion") if verb != "delete" else None
        return f"{ns}/pod/{name}", (node, int(rv) if rv else None, returned)

    def close(self) -> None:
        for api in self._clients:
            api.close()  # type: ignore[no-untyped-call]


class FloorWatch:
    """A bare watch on the namespace's pods: key -> [(event type, rv, arrival)]."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.events: dict[str, list[tuple[str, int, float]]] = {}
        self._lock = threading.Lock()
        self._api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self._namespace = namespace
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._closing = False  # set by close: the watch's end is expected
        core: Any = client.CoreV1Api(self._api)
        listed = json.loads(core.list_namespaced_pod(namespace, _preload_content=False).data)
        self._resp = core.list_namespaced_pod(
            namespace, watch=True, resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=3600, _preload_content=False,
        )  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except urllib3.exceptions.ProtocolError:  # close() cut the watch
            if not self._closing:
                raise

    def _read(self) -> None:
        buffer = b""
        for chunk in self._resp.stream(65536):
            arrived = time.monotonic()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                meta = event["object"]["metadata"]
                key = f"{self._namespace}/pod/{meta['name']}"
                with self._lock:
                    self.events.setdefault(key, []).append(
                        (event["type"], int(meta["resourceVersion"]), arrived)
                    )

    def arrival(self, key: str, rv: int | None) -> float | None:
        with self._lock:
            for kind, event_rv, t in self.events.get(key, []):
                if (rv is None and kind == "DELETED") or (
                    rv is not None and kind != "DELETED" and event_rv >= rv
                ):
                    return t
        return None

    def close(self) -> None:
        self._closing = True
        self._resp.release_conn()
        self._api.close()


# Phases.


class Bench:
    """The processes of one run and the measurements taken from them."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[str]] = {}  # api, cloudcore, fleet
        self.kubeconfig = args.kubeconfig
        self.fleet: FleetControl | None = None
        self.nodes = [f"{args.prefix}-{i}" for i in range(args.nodes)]
        self.run_id = uuid.uuid4().hex[:6]

    def pids(self) -> dict[str, int]:
        pids = {name: proc.pid for name, proc in self.procs.items() if proc.poll() is None}
        return {**pids, "driver": os.getpid()}

    def start_api(self) -> None:
        path = self.tmp / "kubeconfig"
        self.procs["api"] = spawn([*BEEHIVE, "kube-api", "--port", "0", "--kubeconfig", str(path)],
                                  self.tmp / "api.log")  # fmt: skip
        wait_until(path.exists, 30, "the API server's kubeconfig")
        self.kubeconfig = str(path)

    def namespace(self, name: str) -> str:
        """A new namespace, with its ServiceAccount "default" (pods are refused without
        it; an API server without a controller manager makes none)."""
        api = config.new_client_from_config(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]
        core: Any = client.CoreV1Api(api)
        try:
            core.create_namespace({"metadata": {"name": name}})
            try:
                core.create_namespaced_service_account(name, {"metadata": {"name": "default"}})
            except client.ApiException as exc:
                if exc.status != 409:  # made by the cluster's controller manager
                    raise
        finally:
            api.close()
        return name

    def start_cloudcore(self) -> None:
        port, tls = free_port(), not self.args.plain
        self.cert_port, self.metrics_port = free_port(), free_port()
        path = self.tmp / "cloudcore.yaml"
        certserver = CERTSERVER.format(port=self.cert_port) if tls else ""
        path.write_text(CLOUDCORE.format(
            kubeconfig=self.kubeconfig, port=port, limit=self.args.nodes + 10,
            certserver=certserver, tls=str(tls).lower(), metrics_port=self.metrics_port,
            handshake_threads=self.args.handshake_threads,
        ))  # fmt: skip
        self.config = path
        command = [sys.executable, "-m", self.args.cloudcore_module, "run", str(path)]
        self.procs["cloudcore"] = spawn(command, self.tmp / "cloudcore.log")
        self.cloud = f"127.0.0.1:{port}"

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, 60, "cloudcore listening")

    def start_fleet(self) -> None:
        args = [*BEEHIVE, "fleet", "--cloud", self.cloud, "--nodes", str(self.args.nodes),
                "--prefix", self.args.prefix, "--kubeconfig", self.kubeconfig,
                "--control", "--no-progress", "--no-pod-status", "--status-interval", "60",
                "--json", "--handshake-threads", str(self.args.fleet_handshake_threads),
                "--connect-concurrency", str(self.args.connect_concurrency),
                *self.fleet_auth()]  # fmt: skip
        proc = spawn(args, self.tmp / "fleet.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.procs["fleet"] = proc
        self.fleet = FleetControl(proc)
        fleet = self.fleet
        wait_until(
            lambda: fleet.ask("stats")["connected"] == self.args.nodes, 300, "fleet connected"
        )

    def fleet_auth(self) -> list[str]:
        """--plain, or the join token and a certificate folder for this run's CA."""
        if self.args.plain:
            return ["--plain"]
        read = [*BEEHIVE, "token", "-c", str(self.config)]
        token = ""

        def issued() -> bool:
            nonlocal token
            done = subprocess.run(read, capture_output=True, text=True, check=False)
            token = done.stdout.strip()
            return done.returncode == 0 and bool(token)

        wait_until(issued, 60, "cloudcore's join token")
        return ["--token", token, "--certs", str(self.tmp / "certs"),
                "--cert-server", f"https://127.0.0.1:{self.cert_port}"]  # fmt: skip

    def calls(self, verb: str, prefix: str, per_node: int) -> list[tuple[str, str, str]]:
        return [(verb, n, f"{prefix}-{n}-{i}") for i in range(per_node) for n in self.nodes]

    def phase(self, name: str, driver: Driver, calls: list[tuple[str, str, str]],
              waiter: Callable[[Returned], dict[str, float]]) -> dict[str, Any]:  # fmt: skip
        """Run the calls, wait for every arrival; timing, latency and CPU of the phase."""
        cpu0 = cpu_seconds(self.pids())
        writes0 = self.api_writes()
        dup0 = self.fleet.ask("stats")["duplicates"] if self.fleet else 0
        cloudcore = self.procs.get("cloudcore")
        with peak_rss(cloudcore.pid if cloudcore else os.getpid()) as peak:
            start = time.monotonic()
            returned = driver.run(calls)
            arrived = waiter(returned)
        cpu1 = cpu_seconds(self.pids())
        wait_until(lambda: self.records_written(), 30, "the ObjectSync records written")
        writes = {k: v - writes0.get(k, 0) for k, v in self.api_writes().items()}
        latencies = [arrived[k] - t for k, (_, _, t) in returned.items()]
        elapsed = max(arrived.values()) - start
        return {
            "phase": name, "objects": len(calls), "seconds": round(elapsed, 3),
            "messages_per_second": round(len(calls) / elapsed, 1),
            "latency_ms": {q: round(v * 1000, 1) for q, v in percentiles(latencies).items()},
            "duplicates": (self.fleet.ask("stats")["duplicates"] - dup0) if self.fleet else 0,
            "cpu_seconds": {p: round(cpu1[p] - cpu0.get(p, 0.0), 2) for p in cpu1},
            "cloudcore_peak_mib": round(peak[0] / 2**20, 1) if cloudcore else None,
            "api_writes": {k: v for k, v in sorted(writes.items()) if v},
            "api_writes_per_object": round(sum(writes.values()) / len(calls), 3),
        }  # fmt: skip

    def scrape(self) -> dict[str, float]:
        """cloudcore's /metrics as {series with labels: value} ({} without cloudcore)."""
        if "cloudcore" not in self.procs:
            return {}
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def api_writes(self) -> dict[str, float]:
        """cloudcore's own API writes so far, by verb and resource (not its reads)."""
        writes: dict[str, float] = {}
        for series, value in self.scrape().items():
            if series.startswith("beehive_kube_requests_total{"):
                labels = dict(part.split("=", 1) for part in series[28:-1].split(","))
                verb, resource = labels["verb"].strip('"'), labels["resource"].strip('"')
                if verb in WRITE_VERBS:
                    key = f"{verb} {resource}"
                    writes[key] = writes.get(key, 0.0) + value
        return writes

    def records_written(self) -> bool:
        """Nothing waits to be written to the ObjectSync records."""
        return self.scrape().get("beehive_objectsync_pending", 0.0) == 0.0

    def floor_waiter(self, watch: FloorWatch) -> Callable[[Returned], dict[str, float]]:
        def wait(returned: Returned) -> dict[str, float]:
            found: dict[str, float] = {}

            def done() -> bool:
                for key, (_, rv, _) in returned.items():
                    if key not in found and (t := watch.arrival(key, rv)) is not None:
                        found[key] = t
                return len(found) == len(returned)

            wait_until(done, self.args.timeout, "floor arrivals")
            return found

        return wait

    def fleet_waiter(self, returned: Returned) -> dict[str, float]:
        assert self.fleet is not None
        fleet = self.fleet
        expected: Expected = {}
        for key, (node, rv, _) in returned.items():
            expected.setdefault(node, {})[key] = rv
        path = self.tmp / f"expected-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(expected))
        wait_until(lambda: (r := fleet.ask(f"check {path}"))["met"] == r["total"],
                   self.args.timeout, "fleet arrivals")  # fmt: skip
        return self.fleet_arrivals(returned)

    def fleet_arrivals(self, returned: Returned) -> dict[str, float]:
        assert self.fleet is not None
        dump = self.tmp / "arrivals.json"
        self.fleet.ask(f"dump {dump}")
        records = json.loads(dump.read_text())
        arrived = {}
        for key, (node, rv, _) in returned.items():
            held = records[node]["objects"].get(key)
            if rv is not None and held is not None and held[0] >= rv:
                arrived[key] = held[1]
            elif rv is None and key in records[node]["deleted"]:
                arrived[key] = records[node]["deleted"][key]
        return arrived

    def workload(
        self, waiter: Callable[[Returned], dict[str, float]], namespace: str,
        profile_pid: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """W's three phases; with `profile_pid` and --profile, each phase's profile of
        that process in PREFIX-<phase>.txt."""
        driver = Driver(self.kubeconfig, namespace, self.args.drivers)
        per_node, prefix = self.args.pods_per_node, self.args.profile
        results = []
        try:
            for verb in ("create", "update", "delete"):
                out = f"{prefix}-{verb}.txt" if prefix and profile_pid else ""
                with profiled(profile_pid or 0, out, gil=self.args.profile_gil):
                    calls = self.calls(verb, "w", per_node)
                    results.append(self.phase(verb, driver, calls, waiter))
            return results
        finally:
            driver.close()

    def storm(self, namespace: str) -> dict[str, Any]:
        """One pod per node; drop every session and update every pod at once."""
        assert self.fleet is not None
        driver = Driver(self.kubeconfig, namespace, self.args.drivers)
        try:
            self.fleet_waiter(driver.run(self.calls("create", "s", 1)))
            before = self.fleet.ask("stats")
            connects, failures0 = before["connects"], before["connect_failures"]
            cpu0 = cpu_seconds(self.pids())
            threads0 = {p: thread_cpu(self.procs[p].pid) for p in ("cloudcore", "fleet")}
            start = time.monotonic()
            dropped = self.fleet.ask("storm")["dropped"]
            done: dict[str, Returned] = {}
            updates = self.calls("update", "s", 1)
            worker = threading.Thread(target=lambda: done.update(r=driver.run(updates)))
            worker.start()
            reconnected = self._reconnected(connects + dropped) - start
            worker.join(self.args.timeout)
            returned = done["r"]
            arrived, lost = self._storm_arrivals(returned)
            cpu1 = cpu_seconds(self.pids())
            threads = {p: thread_cpu_spent(self.procs[p].pid, threads0[p]) for p in threads0}
            failed = self.fleet.ask("stats")["connect_failures"] - failures0
        finally:
            driver.close()
        end = max(arrived.values()) if arrived else time.monotonic()
        last_call = max(t for _, _, t in returned.values())
        latencies = [arrived[k] - t for k, (_, _, t) in returned.items() if k in arrived]
        quantiles = {q: round(v * 1000, 1) for q, v in percentiles(latencies).items()}
        return {"dropped": dropped, "updates": len(returned), "lost": lost,
                "reconnected_seconds": round(reconnected, 3),
                "converged_seconds": round(end - start, 3),
                "after_last_update_seconds": round(end - last_call, 3),
                "latency_ms": quantiles, "connects_failed": failed,
                "cpu_seconds": {p: round(cpu1[p] - cpu0.get(p, 0.0), 2) for p in cpu1},
                "thread_cpu_seconds": threads}  # fmt: skip

    def _reconnected(self, connects: int) -> float:
        """When every session is back (polled): the fleet made `connects` connections."""
        assert self.fleet is not None
        fleet, nodes = self.fleet, self.args.nodes

        def back() -> bool:
            stats = fleet.ask("stats")
            return bool(stats["connects"] >= connects and stats["connected"] == nodes)

        wait_until(back, self.args.timeout, "fleet reconnected")
        return time.monotonic()

    def _storm_arrivals(self, returned: Returned) -> tuple[dict[str, float], int]:
        try:
            return self.fleet_waiter(returned), 0
        except TimeoutError:
            arrived = self.fleet_arrivals(returned)
            return arrived, len(returned) - len(arrived)


def idle_memory(bench: Bench) -> dict[str, float]:
    """cloudcore's RSS before the fleet connects and after, per connected node."""
    proc = psutil.Process(bench.procs["cloudcore"].pid)
    time.sleep(2)  # let cloudcore's start-up settle (bounded; a benchmark, not a test)
    before = proc.memory_info().rss
    bench.start_fleet()
    time.sleep(5)  # registrations and first status reports drain, the heap is released
    after = proc.memory_info().rss
    fleet = psutil.Process(bench.procs["fleet"].pid).memory_info().rss
    return {"before_mib": round(before / 2**20, 1), "after_mib": round(after / 2**20, 1),
            "per_node_kib": round((after - before) / bench.args.nodes / 1024, 1),
            "fleet_mib": round(fleet / 2**20, 1)}  # fmt: skip


def keep_logs(tmp: Path, dest: Path) -> None:
    """Copy the processes' logs out of the run's temporary directory."""
    dest.mkdir(parents=True, exist_ok=True)
    for log in tmp.glob("*.log"):
        shutil.copy(log, dest / log.name)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            if not bench.kubeconfig:
                bench.start_api()
            floor: list[dict[str, Any]] = []
            if not args.storm_only:
                floor_ns = bench.namespace(f"floor-{bench.run_id}")
                watch = FloorWatch(bench.kubeconfig, floor_ns)
                try:
                    floor = bench.workload(bench.floor_waiter(watch), floor_ns)
                finally:
                    watch.close()
            bench.start_cloudcore()
            memory = idle_memory(bench)
            edge_ns = bench.namespace(f"edge-{bench.run_id}")
            pid, prefix = bench.procs["cloudcore"].pid, args.profile
            phases: list[dict[str, Any]] = []
            if not args.storm_only:
                phases = bench.workload(bench.fleet_waiter, edge_ns, profile_pid=pid)
            fleet_pid = bench.procs["fleet"].pid
            with (
                profiled(pid, f"{prefix}-storm.txt" if prefix else "", gil=args.profile_gil),
                profiled(
                    fleet_pid, f"{prefix}-fleet-storm.txt" if prefix else "", gil=args.profile_gil
                ),
            ):
                storm = bench.storm(edge_ns)
            summary = bench.fleet.ask("stats") if bench.fleet else {}
        finally:
            for name in ("fleet", "cloudcore", "api"):
                stop(bench.procs.get(name))
            if args.logs:
                keep_logs(Path(tmp), Path(args.logs))
    return {"nodes": args.nodes, "pods_per_node": args.pods_per_node, "plain": args.plain,
            "floor": floor,
            "cloudcore": phases, "idle_memory": memory, "storm": storm,
            "fleet_errors": summary.get("errors")}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    head = "phase              arrived s   msg/s  p50 ms  p90 ms  p99 ms  max ms  dup  x floor"
    lines = [
        f"workload: {result['nodes']} nodes x {result['pods_per_node']} pods over"
        f" {'plain websockets' if result['plain'] else 'mutual TLS'}",
        head + "  cpu s api/cloudcore/fleet/driver, cloudcore peak MiB",
    ]
    for floor, edge in zip(result["floor"], result["cloudcore"], strict=True):
        for label, row in (
            ("floor " + floor["phase"], floor),
            ("cloudcore " + edge["phase"], edge),
        ):
            lines.append(f"{label:<18}" + _row(row, floor["seconds"]))
    mem, storm = result["idle_memory"], result["storm"]
    lines.append(
        f"idle cloudcore: {mem['before_mib']} MiB, {mem['after_mib']} MiB with every node"
        f" connected: {mem['per_node_kib']} KiB per node; the fleet's process:"
        f" {mem['fleet_mib']} MiB, {mem['fleet_mib'] * 1024 / result['nodes']:.1f} KiB per node"
        " (all of it)"
    )
    lat = storm["latency_ms"]
    lines.append(
        f"storm: {storm['dropped']} sessions dropped, {storm['updates']} updates; every session"
        f" back in {storm['reconnected_seconds']} s; converged in {storm['converged_seconds']} s"
        f" ({storm['after_last_update_seconds']} s after the last update returned), latency"
        f" p50/p99/max {lat['p50']}/{lat['p99']}/{lat['max']} ms, lost {storm['lost']};"
        f" {storm['connects_failed']} connection attempts failed (refused or cut) on the way;"
        f" cpu s {_cpus(storm['cpu_seconds'])}"
    )
    for proc, threads in storm["thread_cpu_seconds"].items():
        spent = ", ".join(f"{name} {cpu}" for name, cpu in threads.items())
        lines.append(f"storm cpu s by thread, {proc}: {spent}")
    for edge in result["cloudcore"]:
        kinds = ", ".join(f"{k} {v:.0f}" for k, v in edge["api_writes"].items())
        lines.append(f"cloudcore's API writes, {edge['phase']}:"
                     f" {edge['api_writes_per_object']} per object ({kinds})")  # fmt: skip
    return "\n".join(lines)


def _row(row: dict[str, Any], floor_seconds: float) -> str:
    lat, cpu = row["latency_ms"], row["cpu_seconds"]
    ratio = row["seconds"] / floor_seconds if floor_seconds else 0.0
    cpus = _cpus(cpu)
    figures = (
        f"{row['seconds']:>10.2f}{row['messages_per_second']:>8.0f}{lat['p50']:>8.1f}"
        f"{lat['p90']:>8.1f}{lat['p99']:>8.1f}{lat['max']:>8.1f}{row['duplicates']:>5}"
    )
    return f"{figures}{ratio:>9.2f}  {cpus}, {row['cloudcore_peak_mib'] or '-'}"


def _cpus(cpu: dict[str, float]) -> str:
    return "/".join(str(cpu.get(p, "-")) for p in ("api", "cloudcore", "fleet", "driver"))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--drivers", type=int, default=8, help="driver threads calling the API")
    parser.add_argument(
        "--kubeconfig", default="", help="an API server to use (default: start one)"
    )
    parser.add_argument("--prefix", default="", help="node name prefix (default: unique per run)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a phase may take")
    parser.add_argument("--quick", action="store_true", help="20 nodes x 3 pods, 4 drivers")
    parser.add_argument("--plain", action="store_true", help="plain websockets, no TLS")
    parser.add_argument("--storm-only", action="store_true", help="no floor, no workload")
    parser.add_argument("--handshake-threads", type=int, default=2, metavar="N",
                        help="cloudhub's TLS handshake threads (default: %(default)s)")  # fmt: skip
    parser.add_argument("--fleet-handshake-threads", type=int, default=2, metavar="N")
    parser.add_argument(
        "--connect-concurrency", type=int, default=1000, metavar="N",
        help="the fleet's handshakes at once: as many as there are edges, which do not"
        " wait for each other (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--cloudcore-module",
        default="modules.cli",
        metavar="MODULE",
        help="cloudcore is started as python -m MODULE run CONFIG (to compare a variant)",
    )
    parser.add_argument(
        "--profile",
        default="",
        metavar="PREFIX",
        help="py-spy cloudcore: PREFIX-create.txt, -update, -delete and -storm.txt (and"
        " the fleet in the storm: PREFIX-fleet-storm.txt)",
    )
    parser.add_argument(
        "--profile-gil", action="store_true",
        help="profile only the thread holding the GIL (where Python time goes)",
    )  # fmt: skip
    parser.add_argument("--logs", default="", metavar="DIR", help="keep the processes' logs here")
    parser.add_argument("--json", default="", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.pods_per_node, args.drivers, args.timeout = 20, 3, 4, 60
    args.prefix = args.prefix or f"e2e{uuid.uuid4().hex[:4]}"
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
