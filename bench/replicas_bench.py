"""Replica benchmark: 3 cloudcore replicas behind a load balancer, failing in turn under load.

Run: .venv/bin/python bench/replicas_bench.py --quick       (60 nodes, 1-2 minutes here)
     .venv/bin/python bench/replicas_bench.py [--nodes 300] [--plain] [--kubeconfig PATH]
         [--rate 20] [--json out.json] [--logs DIR]    (300 nodes: about 2.5 minutes here)
     .venv/bin/python bench/replicas_bench.py --nodes 150 --skip kill,stop,rolling
         [--api-loss busiest] [--api-cut blackhole|refuse|stall] [--api-loss-seconds S]
         [--ack-poll 0.5]              (the api-loss scenario alone: about 1 minute here)
Prints a readable report, then the same figures as JSON (also to --json PATH); --logs
keeps every process's log (rN-G.log: replica N's G-th start).

Processes (reusing bench/e2e_bench.py's machinery): the API server (`beehive kube-api`,
unless --kubeconfig names one); three cloudcore replicas r1-r3 (`beehive run`, each
certserver, edgecontroller, cloudhub and metrics on its own ports, with a ``replica:``
section of short Lease durations), each reaching the API server through its own route
of a TCP proxy (bench/replicas_apiproxy.py; a copy of the kubeconfig names the route,
same host, so TLS and the token pass through; no proxy with --skip api-loss); a
round-robin TCP load balancer in front of the three cloudhub ports
(bench/replicas_lb.py, skipping backends that refuse or whose /readyz fails); the fleet
(bench/replicas_fleet.py: ``beehive fleet --control`` with a short reconnect backoff and
records of every session open and close and every delivery), pointed at the balancer,
over mutual TLS enrolled through r1's certserver (--plain: plain websockets).

Workload: pods-per-node pods per node, each mounting one of a few configmaps; a writer
thread here updates the pods (and now and then a configmap) at --rate writes/s and logs
every version it wrote. Right after each fault it also updates one pod on every node
the victim owned, and creates one more pod on each (a probe: each affected node gets
post-fault changes while it is taken over; --no-probe-creates: the updates only).

Scenarios (--skip names them), in order: (1) kill: kill -9 a replica (the leader by
default) under load, restart it; (2) stop: SIGSTOP a replica for longer than its
lease_duration (half of its edges are dropped by the fleet meanwhile, as edges whose
heartbeats go unanswered would; the other half stay on the stopped replica), SIGCONT;
(3) api-loss: a replica (--api-loss, the busiest by default) loses the API server while
it runs on and its edges stay connected: its route in the proxy is cut (--api-cut:
blackhole resets its connections and answers new ones never, refuse resets them and
refuses new ones, stall freezes them) for --api-loss-seconds (2 x duration + 1), then
restored; it must fence itself within its renew deadline, close its sessions, and its
edges reconnect through the balancer to the others, which claim the nodes; after the
restore it renews its member Lease and is ready again; (4) rolling: rolling SIGTERM and
restart of r1, r2, r3. After each, the writer pauses and the checker waits (at most
--check-timeout) until every edge holds the API's newest version of each of its pods and
configmaps, then reports lost (the newest version never arrived: missing, or an older
one held), behind at quiesce, and regressions (an arrival older than what the edge held,
from the fleet's records), and that exactly one CA Secret exists, unchanged since the
start. Throughout, the ObjectSyncShard records (what the nodes acked) are listed every
--ack-poll s: acked versions must never go down between two reads (reported per
scenario and for the run).

Reported per scenario: failover times (fault -> every affected node connected again;
fault -> first post-fault version applied on each affected node; the node's new session
-> that version; and the cloud's part: from when both the new session was open and that
version written -> its arrival) p50/p99/max; for SIGSTOP the dropped and the kept edges
apart, when the kept sessions were closed after SIGCONT, and deliveries over a pre-fault
session after SIGCONT (a zombie's: must be 0); for api-loss when the cut replica logged
its fence and closed its sessions after the cut, deliveries over its sessions after the
fence (must be 0), when the other replicas claimed its nodes and by whom, and after the
restore when its member Lease was renewed and it was ready;
duplicates (the fleet's counter: deliveries not newer than what the node held);
Lease writes during the fault and per second at rest (counted from a watch of the
replicas' namespace: every ADDED/MODIFIED event is one write, by member Leases, the
leader Lease and the owner Leases); each replica's RSS, CPU and owned nodes at rest.
Timings are measured, never asserted: the machine is small and shared.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import yaml
from e2e_bench import (
    Bench,
    FleetControl,
    free_port,
    keep_logs,
    percentiles,
    profiled,
    spawn,
    stop,
    thread_cpu,
    thread_cpu_spent,
    wait_until,
)
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from modules.cloudhub import syncrecord

HERE = Path(__file__).resolve().parent
REPLICAS = ("r1", "r2", "r3")
LEADER_LEASE = "cloudcore-leader"
MEMBER_LABEL = "cloudcore.beehive-edge.io/member"
OWNERSHIP_LABEL = "cloudcore.beehive-edge.io/ownership"
NODE_ANNOTATION = "cloudcore.beehive-edge.io/node"
SYNC_RECORDS = (syncrecord.GROUP, syncrecord.VERSION, syncrecord.PLURAL)
SLOWEST = 6  # nodes listed with their timeline, slowest cloud's parts last
REPLICA = """kube: {{mode: kubeconfig, kubeconfig: "{kubeconfig}"}}
replica: {{id: {id}, namespace: {namespace}, lease_duration: {lease_duration},
           renew_deadline: {renew_deadline}, retry_period: {retry_period}, ca_wait: 60}}
modules:
  metrics:
    settings: {{address: 127.0.0.1, port: {metrics_port}}}
  certserver:
    settings: {{address: 127.0.0.1, port: {cert_port}, advertise_addresses: [127.0.0.1]}}
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}, node_limit: {limit}, tls: {tls},
                handshake_threads: {handshake_threads}, hand_over_seconds: {hand_over}}}
hive: {{stop_timeout: {stop_timeout}}}
"""

Log = list[tuple[str, int, float]]  # (key, resourceVersion, when the call returned)


def raw(resp: Any) -> Any:
    return json.loads(resp.data)


class Api:
    """Plain-JSON reads of the objects the checker needs, one client per thread."""

    def __init__(self, kubeconfig: str) -> None:
        self._kubeconfig = kubeconfig
        self._local = threading.local()

    def core(self) -> Any:
        if not hasattr(self._local, "core"):
            api = config.new_client_from_config(config_file=self._kubeconfig)  # type: ignore[no-untyped-call]
            self._local.api = api
            self._local.core = client.CoreV1Api(api)
            self._local.coord = client.CoordinationV1Api(api)
        return self._local.core

    def coord(self) -> Any:
        self.core()
        return self._local.coord

    def sync_records(self) -> list[dict[str, Any]]:
        """Every ObjectSyncShard (what the nodes acked), as plain JSON."""
        self.core()
        objects = client.CustomObjectsApi(self._local.api)
        items: list[dict[str, Any]] = raw(objects.list_cluster_custom_object(
            *SYNC_RECORDS, _preload_content=False, _request_timeout=10))["items"]  # fmt: skip
        return items

    def leases(self, namespace: str, selector: str = "") -> dict[str, Any]:
        found: dict[str, Any] = raw(self.coord().list_namespaced_lease(
            namespace, label_selector=selector, _preload_content=False))  # fmt: skip
        return found

    def owners(self, namespace: str) -> dict[str, tuple[str, int]]:
        """node -> (holder, epoch) from the owner Leases."""
        out = {}
        for lease in self.leases(namespace, f"{OWNERSHIP_LABEL}=true")["items"]:
            node = (lease["metadata"].get("annotations") or {}).get(NODE_ANNOTATION)
            spec = lease.get("spec") or {}
            if node:
                out[node] = (spec.get("holderIdentity") or "", spec.get("leaseTransitions") or 0)
        return out

    def leader(self, namespace: str) -> str:
        lease = raw(self.coord().read_namespaced_lease(LEADER_LEASE, namespace,
                                                        _preload_content=False))  # fmt: skip
        return str((lease.get("spec") or {}).get("holderIdentity") or "")

    def ca_secrets(self, namespace: str) -> list[tuple[str, str, str]]:
        """(name, uid, sha256 of the CA) of every Secret holding a CA (``cadata``)."""
        found = raw(self.core().list_namespaced_secret(namespace, _preload_content=False))
        return [(s["metadata"]["name"], s["metadata"]["uid"],
                 hashlib.sha256(s["data"]["cadata"].encode()).hexdigest()[:16])
                for s in found["items"] if "cadata" in (s.get("data") or {})]  # fmt: skip


class Writer:
    """Pods and configmaps of one namespace: creates them, then updates them at a fixed
    rate on a thread (pausable); every version written goes to `log`."""

    def __init__(
        self, api: Api, namespace: str, nodes: list[str], args: argparse.Namespace
    ) -> None:
        self.api, self.ns, self.args = api, namespace, args
        self.configmaps = [f"cm-{i}" for i in range(args.configmaps)]
        self.pods = [(f"p-{n}-{i}", n) for i in range(args.pods_per_node) for n in nodes]
        self.log: Log = []  # every version written
        self.behind = 0  # ticks skipped because a write took longer than its slot
        self._run = threading.Event()  # set while writing
        self._idle = threading.Event()  # set while the thread is between writes and paused
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="writer", daemon=True)
        self._count = 0
        self._probes = 0  # probes so far (names the pods they create)

    def cm_of(self, node: str) -> str:
        return self.configmaps[int(hashlib.sha256(node.encode()).hexdigest(), 16)
                               % len(self.configmaps)]  # fmt: skip

    def create(self) -> None:
        core = self.api.core()
        for name in self.configmaps:
            resp = core.create_namespaced_config_map(
                self.ns, {"metadata": {"name": name}, "data": {"v": "0"}}, _preload_content=False
            )
            self._logged("configmap", name, resp)
        with ThreadPoolExecutor(self.args.drivers) as pool:
            list(pool.map(lambda p: self._create_pod(*p), self.pods))

    def _create_pod(self, name: str, node: str) -> None:
        body = {"metadata": {"name": name, "labels": {"v": "0"}}, "spec": {
            "nodeName": node, "containers": [{"name": "main", "image": "registry.invalid/a:1"}],
            "volumes": [{"name": "cfg", "configMap": {"name": self.cm_of(node)}}]}}  # fmt: skip
        resp = self.api.core().create_namespaced_pod(self.ns, body, _preload_content=False)
        self._logged("pod", name, resp)

    def _logged(self, kind: str, name: str, resp: Any) -> int:
        rv = int(raw(resp)["metadata"]["resourceVersion"])
        self.log.append((f"{self.ns}/{kind}/{name}", rv, time.monotonic()))
        return rv

    def update_pod(self, name: str) -> int:
        self._count += 1
        patch = {"metadata": {"labels": {"v": str(self._count)}}}
        core = self.api.core()
        return self._logged(
            "pod", name, core.patch_namespaced_pod(name, self.ns, patch, _preload_content=False)
        )

    def update_configmap(self, name: str) -> int:
        self._count += 1
        patch = {"data": {"v": str(self._count)}}
        resp = self.api.core().patch_namespaced_config_map(
            name, self.ns, patch, _preload_content=False
        )
        return self._logged("configmap", name, resp)

    def probe(self, nodes: list[str]) -> None:
        """One pod update on each of `nodes`, at once, and (--probe-creates) one new pod
        on each: they land while the nodes are taken over."""
        first = {n: name for name, n in reversed(self.pods)}
        self._probes += 1
        with ThreadPoolExecutor(self.args.drivers) as pool:
            list(pool.map(lambda n: self.update_pod(first[n]), nodes))
            if self.args.probe_creates:
                new = [(f"probe{self._probes}-{n}", n) for n in nodes]
                list(pool.map(lambda p: self._create_pod(*p), new))

    def start(self) -> None:
        self._run.set()
        self._thread.start()

    def pause(self) -> None:
        self._run.clear()
        self._idle.wait(30)

    def resume(self) -> None:
        self._run.set()

    def close(self) -> None:
        self._stop.set()
        self._run.set()
        if self._thread.ident is not None:  # started
            self._thread.join(10)

    def _loop(self) -> None:
        period, i = 1.0 / self.args.rate, 0
        due = time.monotonic()
        while not self._stop.is_set():
            if not self._run.is_set():
                self._idle.set()
                self._run.wait()
                self._idle.clear()
                due = time.monotonic()
                continue
            try:
                if (
                    self.configmaps
                    and i % self.args.configmap_every == self.args.configmap_every - 1
                ):
                    self.update_configmap(self.configmaps[i // self.args.configmap_every
                                                          % len(self.configmaps)])  # fmt: skip
                else:
                    self.update_pod(self.pods[i % len(self.pods)][0])
            except Exception as exc:  # an API hiccup: count it, go on at the same rate
                print(f"writer: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
            i += 1
            due += period
            late = time.monotonic() - due
            if late > 1.0:  # no bursts to catch up
                self.behind += int(late / period)
                due = time.monotonic()
            elif late < 0:
                time.sleep(-late)

    def expected(self) -> dict[str, dict[str, int]]:
        """node -> key -> the API's resourceVersion now (pods and the configmaps they mount)."""
        core = self.api.core()
        pods = raw(core.list_namespaced_pod(self.ns, _preload_content=False))["items"]
        cms = raw(core.list_namespaced_config_map(self.ns, _preload_content=False))["items"]
        cm_rv = {c["metadata"]["name"]: int(c["metadata"]["resourceVersion"]) for c in cms}
        out: dict[str, dict[str, int]] = collections.defaultdict(dict)
        for pod in pods:
            node, meta = pod["spec"]["nodeName"], pod["metadata"]
            out[node][f"{self.ns}/pod/{meta['name']}"] = int(meta["resourceVersion"])
            for volume in pod["spec"].get("volumes") or []:
                name = (volume.get("configMap") or {}).get("name")
                if name in cm_rv:
                    out[node][f"{self.ns}/configmap/{name}"] = cm_rv[name]
        return dict(out)


class LeaseWatch:
    """Every write to the replicas' Leases, seen by a watch: (time, class, name, holder)."""

    def __init__(self, api: Api, namespace: str) -> None:
        self.events: list[tuple[float, str, str, str]] = []
        self._api, self._ns = api, namespace
        self._closing = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._loop, name="lease-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        rv = ""
        while not self._closing.is_set():
            try:
                if not rv:
                    rv = self._api.leases(self._ns)["metadata"]["resourceVersion"]
                self._resp = self._api.coord().list_namespaced_lease(
                    self._ns, watch=True, resource_version=rv, timeout_seconds=3600,
                    _preload_content=False)  # fmt: skip
                rv = self._read(rv)
            except Exception:
                if self._closing.is_set():
                    return
                time.sleep(0.5)

    def _read(self, rv: str) -> str:
        buffer = b""
        for chunk in self._resp.stream(65536):
            now = time.monotonic()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    return ""
                meta = obj["metadata"]
                rv = meta.get("resourceVersion") or rv
                if event["type"] in ("ADDED", "MODIFIED"):
                    holder = (obj.get("spec") or {}).get("holderIdentity") or ""
                    self.events.append((now, lease_class(meta), meta["name"], holder))
        return rv

    def count(self, start: float, end: float) -> dict[str, int]:
        found = collections.Counter(c for t, c, _, _ in self.events if start <= t < end)
        return {k: found.get(k, 0) for k in ("member", "leader", "owner", "other")}

    def close(self) -> None:
        self._closing.set()
        if self._resp is not None:
            self._resp.close()


class AckWatch:
    """Polls the records of what the nodes acked (ObjectSyncShards) every `period` s and
    notes every (node, object) whose acked resourceVersion is lower than one read before:
    acked versions only go up, also when a replica that lost a node writes late."""

    def __init__(self, api: Api, period: float) -> None:
        self.polls = 0  # reads that succeeded
        self.failures = 0  # reads that failed
        self.entries = 0  # acked entries in the last read
        # (when, node, object, highest acked read before, acked now)
        self.decreases: list[tuple[float, str, str, int, int]] = []
        self._api, self._period = api, period
        self._high: dict[tuple[str, str], int] = {}  # (node, uid) -> highest acked read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ack-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                items = self._api.sync_records()
            except Exception:  # an API hiccup: the next poll reads again
                self.failures += 1
                continue
            self._read(items, time.monotonic())

    def _read(self, items: list[dict[str, Any]], now: float) -> None:
        acked: dict[tuple[str, str], syncrecord.Held] = {}  # the newest over a read's parts
        for record in filter(None, map(syncrecord.parse, items)):
            for node, entries in record.nodes.items():
                for uid, held in entries.items():
                    if held.rv is None:  # queued, not acked yet
                        continue
                    newest = acked.get((node, uid))
                    if newest is None or held.rv > (newest.rv or 0):
                        acked[(node, uid)] = held
        for key, held in acked.items():
            rv, high = held.rv or 0, self._high.get(key, 0)
            if rv < high:
                name = f"{held.ref.namespace}/{held.ref.kind}/{held.ref.name}"
                self.decreases.append((now, key[0], name, high, rv))
            else:
                self._high[key] = rv
        self.polls += 1
        self.entries = len(acked)

    def between(self, start: float, end: float) -> list[tuple[float, str, str, int, int]]:
        return [d for d in self.decreases if start <= d[0] < end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)


def lease_class(meta: dict[str, Any]) -> str:
    labels = meta.get("labels") or {}
    if labels.get(MEMBER_LABEL) == "true":
        return "member"
    if labels.get(OWNERSHIP_LABEL) == "true":
        return "owner"
    return "leader" if meta["name"] == LEADER_LEASE else "other"


class ReplicaBench(Bench):
    """e2e_bench's Bench with three replicas, a load balancer and the wrapped fleet."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        super().__init__(args, tmp)
        self.ports: dict[str, dict[str, int]] = {}  # replica -> port, cert_port, metrics_port
        self.configs: dict[str, Path] = {}
        self.generation: collections.Counter[str] = collections.Counter()  # restarts
        self.idle_rss: dict[str, int] = {}  # replica -> RSS when it became ready (no edges)
        self.writer: Writer | None = None
        self.leases: LeaseWatch | None = None
        self.acks: AckWatch | None = None
        self.api: Api | None = None
        self.proxy: FleetControl | None = None  # bench/replicas_apiproxy.py's commands
        self.kubeconfigs: dict[str, str] = {}  # replica -> its kubeconfig (through the proxy)

    # Processes.

    def start_apiproxy(self) -> None:
        """A route to the API server per replica (bench/replicas_apiproxy.py), and a copy
        of the kubeconfig for each that names its route (the same host: the serving
        certificate still verifies; another host gets ``tls-server-name``)."""
        document = yaml.safe_load(Path(self.kubeconfig).read_text())
        current = next(c["context"] for c in document["contexts"]
                       if c["name"] == document["current-context"])  # fmt: skip
        cluster = next(c["cluster"] for c in document["clusters"]
                       if c["name"] == current["cluster"])  # fmt: skip
        url = urllib.parse.urlsplit(cluster["server"])
        host, port = url.hostname or "127.0.0.1", url.port or 443
        args = [sys.executable, str(HERE / "replicas_apiproxy.py"),
                "--upstream", f"{host}:{port}"]  # fmt: skip
        for name in REPLICAS:
            route = free_port()
            args += ["--route", f"{name}={route}"]
            if host not in ("127.0.0.1", "localhost"):
                cluster.setdefault("tls-server-name", host)
            cluster["server"] = urllib.parse.urlunsplit(url._replace(netloc=f"127.0.0.1:{route}"))
            path = self.tmp / f"kubeconfig-{name}"
            path.touch(0o600)
            path.write_text(yaml.safe_dump(document, sort_keys=False))
            self.kubeconfigs[name] = str(path)
        proc = spawn(args, self.tmp / "apiproxy.log", stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)  # fmt: skip
        self.procs["apiproxy"] = proc
        self.proxy = FleetControl(proc)
        self.proxy.ask("stats")  # answers once every route listens

    def start_replicas(self) -> None:
        for name in REPLICAS:
            ports = {"port": free_port(), "cert_port": free_port(), "metrics_port": free_port()}
            self.ports[name] = ports
            path = self.tmp / f"{name}.yaml"
            a = self.args
            path.write_text(REPLICA.format(
                kubeconfig=self.kubeconfigs.get(name, self.kubeconfig), id=name,
                namespace=a.replica_namespace,
                lease_duration=a.lease_duration, renew_deadline=a.renew_deadline,
                retry_period=a.retry_period, limit=a.nodes + 10, tls=str(not a.plain).lower(),
                handshake_threads=a.handshake_threads, hand_over=a.hand_over,
                stop_timeout=a.hand_over + 10, **ports,
            ))  # fmt: skip
            self.configs[name] = path
            self.spawn_replica(name)
        for name in REPLICAS:
            self.wait_ready(name)
        self.config, self.cert_port = self.configs["r1"], self.ports["r1"]["cert_port"]

    def spawn_replica(self, name: str) -> None:
        self.generation[name] += 1
        log = self.tmp / f"{name}-{self.generation[name]}.log"
        command = [sys.executable, "-m", "modules.cli", "run", str(self.configs[name])]
        self.procs[name] = spawn(command, log)

    def metrics_text(self, name: str) -> str:
        """The replica's /metrics, as Prometheus reads it."""
        url = f"http://127.0.0.1:{self.ports[name]['metrics_port']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def hub_counts(self, name: str) -> dict[str, float]:
        """The replica's cloudhub totals so far: messages written to nodes (first writes
        and resends) and sessions accepted."""
        text = self.metrics_text(name)
        wanted = {
            "beehive_cloudhub_messages_sent_total": "sent",
            "beehive_cloudhub_messages_resent_total": "resent",
            "beehive_objectsync_writes_total": "record_writes",
            "beehive_objectsync_conflicts_total": "record_conflicts",
            'beehive_cloudhub_handshakes_total{reason="ok",result="accepted"}': "accepted",
        }
        found = {}
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series in wanted:
                found[wanted[series]] = float(value)
        return found

    def api_requests(self, name: str) -> dict[str, tuple[float, float]]:
        """The replica's API requests so far: "verb resource" -> (count, seconds spent)."""
        found: dict[str, tuple[float, float]] = {}
        for family in text_string_to_metric_families(self.metrics_text(name)):
            if family.name != "beehive_kube_request_duration_seconds":
                continue
            for sample in family.samples:
                key = f"{sample.labels['verb']} {sample.labels['resource']}"
                count, spent = found.get(key, (0.0, 0.0))
                if sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_sum"):
                    spent += sample.value
                found[key] = (count, spent)
        return found

    def record_counts(self) -> dict[str, tuple[int, dict[str, float]]]:
        """Each running replica's (generation, record writes and conflicts so far)."""
        found = {}
        for name, proc in self.procs.items():
            if name in self.configs and proc.poll() is None:
                with contextlib.suppress(OSError):
                    counts = self.hub_counts(name)
                    found[name] = (
                        self.generation[name],
                        {k: counts.get(k, 0.0) for k in ("record_writes", "record_conflicts")},
                    )
        return found

    def wait_ready(self, name: str, timeout: float = 90, *, idle: bool = True) -> None:
        """Wait for the replica's /readyz; `idle`: note its RSS then (no edges yet)."""
        url = f"http://127.0.0.1:{self.ports[name]['metrics_port']}/readyz"

        def ready() -> bool:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"replica {name} exited with {self.procs[name].returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            except (OSError, urllib.error.URLError):
                return False

        wait_until(ready, timeout, f"replica {name} ready")
        if idle:
            self.idle_rss[name] = psutil.Process(self.procs[name].pid).memory_info().rss

    def start_lb(self) -> None:
        port = free_port()
        backends = [f"127.0.0.1:{self.ports[n]['port']}" for n in REPLICAS]
        args = [sys.executable, str(HERE / "replicas_lb.py"), "--port", str(port),
                "--stats", str(self.tmp / "lb-stats.json")]  # fmt: skip
        for backend in backends:
            args += ["--backend", backend]
        if not self.args.no_health_checks:
            for n in REPLICAS:
                args += ["--health", f"127.0.0.1:{self.ports[n]['metrics_port']}/readyz"]
        self.procs["lb"] = spawn(args, self.tmp / "lb.log")
        self.cloud = f"127.0.0.1:{port}"

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, 30, "the load balancer listening")

    def start_fleet(self) -> None:
        a = self.args
        args = [sys.executable, str(HERE / "replicas_fleet.py"),
                "--reconnect-initial", str(a.reconnect_initial),
                "--reconnect-max", str(a.reconnect_max),
                "--connect-timeout", str(a.connect_timeout),
                "--cloud", self.cloud, "--nodes", str(a.nodes), "--prefix", a.prefix,
                "--kubeconfig", self.kubeconfig, "--control", "--no-progress", "--no-pod-status",
                "--status-interval", "60", "--json", "--connect-concurrency", "64",
                *self.fleet_auth()]  # fmt: skip
        proc = spawn(args, self.tmp / "fleet.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.procs["fleet"] = proc
        self.fleet = FleetControl(proc)
        self.wait_connected(0, 300)

    def wait_connected(self, connects: int, timeout: float) -> None:
        """Every node connected, after at least `connects` connections in all."""
        fleet, nodes = self.fleet, self.args.nodes
        assert fleet is not None

        def back() -> bool:
            stats = fleet.ask("stats")
            return bool(stats["connects"] >= connects and stats["connected"] == nodes)

        wait_until(back, timeout, "fleet connected")

    def records(self) -> dict[str, Any]:
        assert self.fleet is not None
        path = self.tmp / f"records-{uuid.uuid4().hex[:6]}.json"
        self.fleet.ask(f"rdump {path}")
        found: dict[str, Any] = json.loads(path.read_text())
        path.unlink()
        return found

    def pick(self, who: str) -> str:
        """`who` as a replica: "leader", "busiest" (owns the most nodes) or a name."""
        assert self.api is not None
        if who == "leader":
            return self.api.leader(self.args.replica_namespace)
        if who == "busiest":
            owners = self.api.owners(self.args.replica_namespace).values()
            return collections.Counter(h for h, _ in owners if h).most_common(1)[0][0]
        return who

    def affected(self, victim: str) -> list[str]:
        assert self.api is not None
        owners = self.api.owners(self.args.replica_namespace)
        ours = set(self.nodes)  # an API server kept across runs has other runs' Leases
        return sorted(n for n, (holder, _) in owners.items() if holder == victim and n in ours)

    def last_rv(self) -> int:
        assert self.writer is not None
        return max(rv for _, rv, _ in self.writer.log)


# Checks.


def check(bench: ReplicaBench, since: float) -> dict[str, Any]:
    """Pause the writer, wait until the edges hold the API's newest versions (bounded),
    report what did not arrive and what went backwards; resume the writer."""
    assert bench.writer is not None and bench.fleet is not None and bench.api is not None
    bench.writer.pause()
    try:
        quiesce = time.monotonic()
        expected = bench.writer.expected()
        path = bench.tmp / f"expected-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(expected))
        fleet = bench.fleet
        converged: float | None = None
        try:
            wait_until(lambda: (r := fleet.ask(f"check {path}"))["met"] == r["total"],
                       bench.args.check_timeout, "edges converged")  # fmt: skip
            converged = time.monotonic() - quiesce
        except TimeoutError:
            pass
        records = bench.records()
        held = held_at(records, float("inf"))
        then = held_at(records, quiesce)
        missing, stale, behind = [], [], 0
        for node, keys in expected.items():
            for key, rv in keys.items():
                now_rv = held.get((node, key))
                behind += then.get((node, key), 0) < rv
                if now_rv is None:
                    missing.append(f"{node} {key} api {rv}")
                elif now_rv < rv:
                    stale.append(f"{node} {key} edge {now_rv} api {rv}")
        regressions = [r for r in records["regressions"] if r[4] >= since]
        cas = bench.api.ca_secrets("kubeedge")
    finally:
        bench.writer.resume()
    total = sum(len(k) for k in expected.values())
    return {"objects": total, "converged_seconds": round(converged, 2) if converged else None,
            "lost": len(missing) + len(stale), "missing": len(missing), "stale": len(stale),
            "behind_at_quiesce": behind, "regressions": len(regressions),
            "examples": (missing + stale)[:5] + [str(r) for r in regressions[:5]],
            "ca_secrets": cas}  # fmt: skip


def held_at(records: dict[str, Any], when: float) -> dict[tuple[str, str], int]:
    """(node, key) -> newest version arrived by `when`."""
    out: dict[tuple[str, str], int] = {}
    for node, key, rv, t in records["arrivals"]:
        if t <= when and rv > out.get((node, key), 0):
            out[(node, key)] = rv
    return out


def failover(
    records: dict[str, Any], step: dict[str, Any], written: dict[tuple[str, int], float]
) -> dict[str, Any]:
    """Per node the victim owned: fault -> its next session open; fault -> first arrival
    of a version newer than the newest written before the fault, and the cloud's part
    of it: from when both its session was open and that version written (`written`:
    (key, rv) -> when the write returned) to its arrival. With a resume (SIGCONT):
    for the nodes the fleet did not drop, resume -> their session's close, and
    deliveries over a session opened before the fault after the resume (the zombie's)."""
    t0, rv0 = step["t0"], step["rv0"]
    resumed = step.get("resumed", float("inf"))
    elsewhere = _served_elsewhere(records, step)
    affected = [n for n in step["affected"] if n not in elsewhere]
    wanted = set(affected)
    opened: dict[str, float] = {}
    applied: dict[str, float] = {}
    first: dict[str, tuple[str, int, float]] = {}  # node -> (key, rv, arrival) of `applied`
    closed: dict[str, float] = {}  # resume -> close, for sessions open across the fault
    opens: dict[str, list[float]] = collections.defaultdict(list)
    for node, what, t in records["events"]:
        if node not in wanted:
            continue
        if what == "open":
            opens[node].append(t)
            if t > t0 and node not in opened:
                opened[node] = t - t0
        elif t > resumed and node not in closed and node not in opened:
            closed[node] = t - resumed
    zombie = 0
    zombies: list[list[Any]] = []  # the first deliveries over pre-fault sessions
    for node, key, rv, t in records["arrivals"]:
        if node not in wanted or t <= t0:
            continue
        if rv > rv0 and node not in applied:
            applied[node] = t - t0
            first[node] = (key, rv, t)
        before = [o for o in opens[node] if o <= t]
        if t > resumed and before and before[-1] < t0:
            zombie += 1
            if len(zombies) < SLOWEST:  # node, key, version (newer than the fault's?), when
                zombies.append([node, key, rv, rv > rv0, round(t - resumed, 3)])
    n = len(affected)
    gaps = [applied[k] - opened[k] for k in applied if k in opened and applied[k] >= opened[k]]
    timeline = sorted(
        (t - max(t0 + opened[node], written[(key, rv)]), node, opened[node],
         written[(key, rv)] - t0, t - t0)
        for node, (key, rv, t) in first.items() if node in opened and (key, rv) in written
    )  # fmt: skip
    cloud = [row[0] for row in timeline]
    result: dict[str, Any] = {
        "affected": n, "elsewhere": len(elsewhere),
        "reconnected": _quantiles(list(opened.values()), n),
        "applied": _quantiles(list(applied.values()), n), "old_session_deliveries": zombie,
        "old_session_examples": zombies,
        "open_to_applied": _quantiles(gaps, n), "cloud_part": _quantiles(cloud, n),
        # the slowest cloud's parts: node, and its session opened, version written and
        # version arrived, seconds after the fault
        "slowest": [[node, round(o, 3), round(w, 3), round(a, 3)]
                    for _, node, o, w, a in timeline[-SLOWEST:]],
    }  # fmt: skip
    if "dropped" in step:
        kept = [n for n in affected if n not in set(step["dropped"])]
        for group, nodes in (("dropped", step["dropped"]), ("kept", kept)):
            result[group] = {
                "reconnected": _quantiles([opened[n] for n in nodes if n in opened], len(nodes)),
                "applied": _quantiles([applied[n] for n in nodes if n in applied], len(nodes)),
            }
        result["kept"]["closed_after_resume"] = _quantiles(
            [closed[n] for n in kept if n in closed], len(kept))  # fmt: skip
    return result


def _served_elsewhere(records: dict[str, Any], step: dict[str, Any]) -> set[str]:
    """Nodes the victim's owner Leases named at the fault that another replica was
    serving: after the victim was gone (kill -9, or a SIGTERM's exit), they still got
    versions over a session opened before the fault. (A node rebalanced away just
    before: its new owner's claim had not been written when the Leases were read.)
    None after a pause or a cut (SIGSTOP, api-loss: a step with "resumed"): deliveries
    over old sessions there are the zombie's."""
    if "resumed" in step:
        return set()
    gone = step["t0"] + step.get("exit_seconds", 0.0) + 1.0  # frames in flight landed
    wanted = set(step["affected"])
    last_open: dict[str, float] = {}
    elsewhere: set[str] = set()
    events = sorted(
        [(t, node, "open") for node, what, t in records["events"] if what == "open"]
        + [(t, node, "arrival") for node, _, _, t in records["arrivals"]]
    )  # fmt: skip
    for t, node, what in events:
        if node not in wanted:
            continue
        if what == "open":
            last_open[node] = t
        elif t > gone and last_open.get(node, t) < step["t0"]:
            elsewhere.add(node)
    return elsewhere


def _quantiles(values: list[float], of: int) -> dict[str, Any]:
    q = percentiles(values)
    return {"n": len(values), "of": of, "p50": round(q["p50"], 3), "p99": round(q["p99"], 3),
            "max": round(q["max"], 3)}  # fmt: skip


def at_rest(bench: ReplicaBench, seconds: float) -> dict[str, Any]:
    """Lease writes per second, and per replica RSS, CPU and owned nodes, over `seconds`."""
    assert bench.leases is not None and bench.api is not None
    procs = {n: psutil.Process(bench.procs[n].pid) for n in REPLICAS}
    cpu0 = {n: sum(p.cpu_times()[:2]) for n, p in procs.items()}
    start = time.monotonic()
    time.sleep(seconds)
    end = time.monotonic()
    writes = bench.leases.count(start, end)
    owners = collections.Counter(h for h, _ in bench.api.owners(bench.args.replica_namespace)
                                 .values())  # fmt: skip
    replicas = {}
    for name, proc in procs.items():
        cpu = (sum(proc.cpu_times()[:2]) - cpu0[name]) / (end - start)
        rss, owned = proc.memory_info().rss, owners.get(name, 0)
        idle = bench.idle_rss[name]
        replicas[name] = {
            "owned": owned, "rss_mib": round(rss / 2**20, 1), "cpu_percent": round(cpu * 100, 1),
            "idle_mib": round(idle / 2**20, 1),
            "kib_per_owned": round((rss - idle) / 1024 / owned, 1) if owned else None,
            "cpu_ms_per_s_per_owned": round(cpu * 1000 / owned, 3) if owned else None,
        }  # fmt: skip
    rates = {k: round(v / (end - start), 2) for k, v in writes.items()}
    leader = bench.api.leader(bench.args.replica_namespace)
    return {"seconds": round(end - start, 1), "lease_writes_per_second": rates,
            "leader": leader, "replicas": replicas}  # fmt: skip


# Scenarios.


def fault_step(bench: ReplicaBench, victim: str, act: Callable[[float, list[str]], None]
               ) -> dict[str, Any]:  # fmt: skip
    """Note who the victim owns, run `act(t0, affected)` (the fault), then probe."""
    assert bench.writer is not None and bench.fleet is not None
    bench.wait_connected(0, bench.args.timeout)
    affected = bench.affected(victim)
    stats0, records0 = bench.fleet.ask("stats"), bench.record_counts()
    rv0, t0 = bench.last_rv(), time.monotonic()
    act(t0, affected)
    return {"victim": victim, "t0": t0, "rv0": rv0, "affected": affected, "stats0": stats0,
            "records0": records0}  # fmt: skip


def record_writes(before: dict[str, tuple[int, dict[str, float]]],
                  after: dict[str, tuple[int, dict[str, float]]]) -> dict[str, int]:  # fmt: skip
    """ObjectSync record writes and conflicts (409s) the replicas made in between; a
    replica restarted in between counts from zero, a killed one is not counted."""
    total = {"record_writes": 0, "record_conflicts": 0}
    for name, (generation, counts) in after.items():
        base = before.get(name)
        start = base[1] if base is not None and base[0] == generation else {}
        for key in total:
            total[key] += int(counts[key] - start.get(key, 0.0))
    return total


def finish(bench: ReplicaBench, name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The check after a scenario, its failover figures, and a rest window."""
    assert bench.fleet is not None and bench.leases is not None
    start = steps[0]["t0"]
    result = check(bench, start)
    end = time.monotonic()
    records = bench.records()
    stats = bench.fleet.ask("stats")
    assert bench.writer is not None
    written = {(key, rv): t for key, rv, t in bench.writer.log}
    result["failover"] = [{"victim": s["victim"], **failover(records, s, written),
                           **{k: s[k] for k in ("takeover_cpu", "window_cpu", "window_requests")
                              if k in s}}
                          for s in steps]  # fmt: skip
    result["duplicates"] = stats["duplicates"] - steps[0]["stats0"]["duplicates"]
    result["connect_failures"] = stats["connect_failures"] - steps[0]["stats0"]["connect_failures"]
    result["lease_writes_during"] = bench.leases.count(start, end)
    result["during_seconds"] = round(end - start, 1)
    result["record_writes"] = record_writes(steps[0]["records0"], bench.record_counts())
    if bench.acks is not None:
        found = bench.acks.between(start, end)
        result["acked_decreases"] = len(found)
        result["examples"] += [f"acked {n} {k} {a} -> {b}" for _, n, k, a, b in found[:5]]
    result["rest"] = at_rest(bench, bench.args.rest_seconds)
    return {"scenario": name, **result}


def after_fault(bench: ReplicaBench, step: dict[str, Any]) -> None:
    """Probe the affected nodes and wait until they are all connected again."""
    assert bench.writer is not None
    bench.writer.probe(step["affected"])
    bench.wait_connected(step["stats0"]["connects"] + len(step["affected"]), bench.args.timeout)


def _requests_between(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, list[float]]:
    """API requests made between two reads: "verb resource" -> [count, mean ms], busiest
    first."""
    spent = {}
    for key, (count, seconds) in after.items():
        count0, seconds0 = before.get(key, (0.0, 0.0))
        if count > count0:
            spent[key] = [count - count0, round(1000 * (seconds - seconds0) / (count - count0), 1)]
    return dict(sorted(spent.items(), key=lambda kv: -kv[1][0] * kv[1][1]))


def scenario_kill(bench: ReplicaBench) -> dict[str, Any]:
    victim = bench.pick(bench.args.kill)
    survivors = {name: bench.procs[name].pid for name in bench.configs if name != victim}
    cpu0 = {name: thread_cpu(pid) for name, pid in survivors.items()}
    others = {name: psutil.Process(proc.pid) for name, proc in bench.procs.items()
              if name != victim and proc.poll() is None}  # fmt: skip
    others0 = {name: sum(p.cpu_times()[:2]) for name, p in others.items()}
    wall0 = time.monotonic()
    requests0 = {name: bench.api_requests(name) for name in survivors}
    prefix = bench.args.profile
    with contextlib.ExitStack() as spies:
        spied = {**survivors, **({"api": others["api"].pid} if "api" in others else {})}
        for name, pid in spied.items():
            spies.enter_context(profiled(pid, f"{prefix}-{name}.txt" if prefix else ""))
        step = fault_step(bench, victim, lambda t0, a: bench.procs[victim].kill())
        bench.procs[victim].wait(10)
        after_fault(bench, step)
        time.sleep(bench.args.takeover_tail)  # what follows the reconnects: resyncs
    step["takeover_cpu"] = {name: thread_cpu_spent(pid, cpu0[name])
                            for name, pid in survivors.items()}  # fmt: skip
    step["window_requests"] = {name: _requests_between(requests0[name], bench.api_requests(name))
                               for name in survivors}  # fmt: skip
    # every process's CPU over the same window: what the machine's cores went to
    step["window_cpu"] = {
        "seconds": round(time.monotonic() - wall0, 2),
        **{name: round(sum(p.cpu_times()[:2]) - others0[name], 2) for name, p in others.items()},
    }
    bench.spawn_replica(victim)
    bench.wait_ready(victim)
    return finish(bench, f"kill -9 {victim}, restart", [step])


def scenario_stop(bench: ReplicaBench) -> dict[str, Any]:
    victim, a = bench.pick(bench.args.stop), bench.args
    proc = bench.procs[victim]
    step = fault_step(bench, victim, lambda t0, aff: proc.send_signal(signal.SIGSTOP))
    assert bench.fleet is not None
    affected = step["affected"]
    drop_at = min(a.lease_duration + 0.5, a.stop_seconds * 0.5)
    time.sleep(drop_at)
    dropped = affected[: len(affected) // 2]
    path = bench.tmp / "drop.json"
    path.write_text(json.dumps(dropped))
    bench.fleet.ask(f"drop-nodes {path}")
    step["dropped"] = dropped
    assert bench.writer is not None
    bench.writer.probe(affected)
    time.sleep(max(0.0, step["t0"] + a.stop_seconds - time.monotonic()))
    proc.send_signal(signal.SIGCONT)
    step["resumed"] = time.monotonic()
    bench.wait_connected(step["stats0"]["connects"] + len(affected), bench.args.timeout)
    result = finish(bench, f"SIGSTOP {victim} {a.stop_seconds:g} s, SIGCONT", [step])
    result["owned_after"] = len(bench.affected(victim))
    result["fence_log"] = fence_lines(bench, victim)
    return result


def scenario_rolling(bench: ReplicaBench) -> dict[str, Any]:
    steps = []
    for victim in REPLICAS:
        proc = bench.procs[victim]
        step = fault_step(bench, victim, lambda t0, a, p=proc: p.terminate())  # type: ignore[misc]
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # its threads' stacks to its log, then kill it
            proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1)
            proc.kill()
            proc.wait(5)
        step["exit_seconds"] = round(time.monotonic() - step["t0"], 2)
        after_fault(bench, step)
        bench.spawn_replica(victim)
        bench.wait_ready(victim)
        steps.append(step)
        time.sleep(bench.args.rolling_pause)  # a Deployment's minReadySeconds
    result = finish(bench, "rolling SIGTERM + restart r1, r2, r3", steps)
    for row, step in zip(result["failover"], steps, strict=True):
        row["exit_seconds"] = step["exit_seconds"]
    return result


def scenario_api_loss(bench: ReplicaBench) -> dict[str, Any]:
    """Cut a replica off the API server (its route in the proxy) while its edges stay
    connected; restore the route after --api-loss-seconds."""
    victim, a = bench.pick(bench.args.api_loss), bench.args
    proxy = bench.proxy
    assert proxy is not None
    cut: dict[str, Any] = {}
    step = fault_step(bench, victim, lambda t0, aff: cut.update(proxy.ask(
        f"cut {victim} {a.api_cut}")))  # fmt: skip
    step["cut"] = cut
    after_fault(bench, step)
    step["back"] = time.monotonic() - step["t0"]
    step["hub_back"] = bench.hub_counts(victim)  # fenced by now: its nodes left it
    time.sleep(max(0.0, step["t0"] + a.api_loss_seconds - time.monotonic()))
    step["hub_restore"] = bench.hub_counts(victim)
    restored = proxy.ask(f"restore {victim}")
    step["restored"] = step["resumed"] = restored["at"]  # resumed: failover's zombie count
    bench.wait_ready(victim, idle=False)
    step["ready"] = time.monotonic() - restored["at"]
    result = finish(bench, f"api-loss {victim} ({a.api_cut}) {a.api_loss_seconds:g} s,"
                    " restore", [step])  # fmt: skip
    result["api_loss"] = api_loss_figures(bench, step, bench.records(), victim)
    result["owned_after"] = len(bench.affected(victim))
    words = ("closing every edge session", f"replica {victim}:", "held (epoch")
    result["fence_log"] = fence_lines(bench, victim, words)
    return result


def api_loss_figures(
    bench: ReplicaBench, step: dict[str, Any], records: dict[str, Any], victim: str
) -> dict[str, Any]:
    """When the cut replica fenced (its log) and closed its sessions (the fleet's records),
    deliveries over those sessions after the fence, who claimed its nodes and when, and
    when it renewed its member Lease and was ready again after the restore."""
    assert bench.leases is not None
    t0, affected = step["t0"], step["affected"]
    wanted, n = set(affected), len(affected)
    fenced_at = logged_at(bench, victim, "closing every edge session", after=t0)
    deadline = t0 + bench.args.renew_deadline  # fenced by then at the latest
    closed: dict[str, float] = {}
    for node, what, t in records["events"]:
        if node in wanted and what == "close" and t > t0:
            closed.setdefault(node, t - t0)
    pre_cut = {}  # node -> its session open at the cut: [node, opened, deliveries, last]
    for row in records["sessions"]:
        if row[0] in wanted and row[1] < t0:
            pre_cut[row[0]] = row
    late = [r for r in pre_cut.values() if r[3] is not None and r[3] > t0]
    bound = min(fenced_at or deadline, deadline)
    claimed: dict[str, float] = {}
    holders: collections.Counter[str] = collections.Counter()
    names = {f"edge-owner-{node.lower()}": node for node in affected}
    member = f"cloudcore-{victim.lower()}"
    renewed, last_renewal = None, None
    for t, kind, name, holder in bench.leases.events:
        if t <= t0:
            if name == member and holder == victim:
                last_renewal = t  # as the watch saw it: a little after the write
            continue
        node = names.get(name)
        if kind == "owner" and node is not None and node not in claimed and holder != victim:
            claimed[node] = t - t0
            holders[holder] += 1
        if name == member and renewed is None and t > step["restored"]:
            renewed = t - step["restored"]
    return {
        "fence_logged": round(fenced_at - t0, 3) if fenced_at is not None else None,
        "last_renewal_before_cut": round(t0 - last_renewal, 3) if last_renewal else None,
        "sessions_closed": _quantiles(list(closed.values()), n),
        "sessions_before_cut": len(pre_cut),
        "sessions_delivering_after_cut": len(late),
        "sessions_delivering_after_fence": sum(1 for r in late if r[3] > bound),
        "last_delivery_after_fence": round(max(r[3] for r in late) - bound, 3) if late else None,
        "claimed_elsewhere": _quantiles(list(claimed.values()), n),
        "claimed_by": dict(holders),
        "all_back": round(step["back"], 3),
        "member_renewed_after_restore": round(renewed, 3) if renewed is not None else None,
        "ready_after_restore": round(step["ready"], 3),
        # written or accepted by the cut replica from when its nodes were back elsewhere
        # (it was fenced by then) to the restore: must be 0
        "while_fenced": {
            k: v - step["hub_back"].get(k, 0.0) for k, v in step["hub_restore"].items()
        },
        "proxy": {k: v for k, v in step["cut"].items() if k != "at"},
    }


def logged_at(bench: ReplicaBench, name: str, text: str, *, after: float) -> float | None:
    """The monotonic time of the first line of the replica's current log that holds
    `text` and was written after `after` (its asctime, read as this machine's)."""
    offset = time.time() - time.monotonic()
    log = bench.tmp / f"{name}-{bench.generation[name]}.log"
    for line in log.read_text().splitlines():
        if text not in line:
            continue
        try:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        if stamp - offset > after:
            return stamp - offset
    return None


def fence_lines(
    bench: ReplicaBench,
    name: str,
    words: tuple[str, ...] = ("fenced", "member", "foreign", "taken"),
) -> list[str]:
    """The last lines of the replica's current log about its Leases (holding `words`),
    and how many nodes it gave up."""
    log = bench.tmp / f"{name}-{bench.generation[name]}.log"
    text = log.read_text().splitlines()
    lines = [line[:240] for line in text if any(w in line for w in words)][-8:]
    given_up = sum(": given up: " in line for line in text)
    return lines + ([f"({given_up} nodes given up in this log)"] if given_up else [])


SCENARIOS: dict[str, Callable[[ReplicaBench], dict[str, Any]]] = {
    "kill": scenario_kill, "stop": scenario_stop, "api-loss": scenario_api_loss,
    "rolling": scenario_rolling,
}  # fmt: skip


# The run.


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="replicas-bench-") as tmp:
        bench = ReplicaBench(args, Path(tmp))
        try:
            return _run(bench)
        finally:
            for closer in (bench.writer, bench.leases, bench.acks):
                if closer is not None:
                    closer.close()
            for name in ("fleet", "lb", *REPLICAS, "apiproxy", "api"):
                proc = bench.procs.get(name)
                if proc is not None and proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                stop(proc)
            if args.logs:
                keep_logs(Path(tmp), Path(args.logs))


def _run(bench: ReplicaBench) -> dict[str, Any]:
    args = bench.args
    started = time.monotonic()
    if not bench.kubeconfig:
        bench.start_api()
    bench.api = Api(bench.kubeconfig)
    bench.leases = LeaseWatch(bench.api, args.replica_namespace)
    if "api-loss" not in args.skip:
        bench.start_apiproxy()
    bench.start_replicas()
    if args.ack_poll > 0:
        bench.acks = AckWatch(bench.api, args.ack_poll)
    ca0 = bench.api.ca_secrets("kubeedge")
    bench.start_lb()
    bench.start_fleet()
    ns = bench.namespace(f"replicas-{bench.run_id}")
    bench.writer = Writer(bench.api, ns, bench.nodes, args)
    bench.writer.create()
    bench.writer.start()
    first = time.monotonic()
    baseline = check(bench, first)
    baseline["rest"] = at_rest(bench, args.rest_seconds)
    scenarios = []
    for key, scenario in SCENARIOS.items():
        if key in args.skip:
            continue
        scenarios.append(scenario(bench))
        print(f"{scenarios[-1]['scenario']}: done", file=sys.stderr, flush=True)
    assert bench.fleet is not None
    summary = bench.fleet.ask("stats")
    records = bench.records()
    lb = json.loads((bench.tmp / "lb-stats.json").read_text())
    return {"nodes": args.nodes, "pods_per_node": args.pods_per_node,
            "configmaps": args.configmaps, "rate": args.rate, "plain": args.plain,
            "leases": {"duration": args.lease_duration, "renew_deadline": args.renew_deadline,
                       "retry_period": args.retry_period},
            "ca_at_start": ca0, "baseline": baseline, "scenarios": scenarios,
            "writes": len(bench.writer.log), "writer_behind": bench.writer.behind,
            "fleet": {k: summary.get(k) for k in ("connects", "duplicates", "connect_failures",
                                                   "errors", "received")},
            "repeats": records["repeats"], "regressions": len(records["regressions"]),
            "acks": None if bench.acks is None else {
                "polls": bench.acks.polls, "failures": bench.acks.failures,
                "entries": bench.acks.entries, "decreases": len(bench.acks.decreases),
                "examples": [list(d) for d in bench.acks.decreases[:10]]},
            "lb": lb, "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    leases = result["leases"]
    lines = [
        f"{result['nodes']} nodes x {result['pods_per_node']} pods, {result['configmaps']}"
        f" configmaps, {result['rate']} writes/s, over"
        f" {'plain websockets' if result['plain'] else 'mutual TLS'}; 3 replicas, Leases"
        f" {leases['duration']}/{leases['renew_deadline']}/{leases['retry_period']} s"
        f" (duration/renew deadline/retry); {result['writes']} versions written,"
        f" {result['seconds']} s in all",
        "baseline: " + _check_line(result["baseline"]),
        "  at rest: " + _rest_line(result["baseline"]["rest"]),
    ]
    ca0 = result["ca_at_start"]
    for s in result["scenarios"]:
        lines.append(f"{s['scenario']}: " + _check_line(s))
        for f in s["failover"]:
            r, a, g, c = f["reconnected"], f["applied"], f["open_to_applied"], f["cloud_part"]
            extra = f", exited in {f['exit_seconds']} s" if "exit_seconds" in f else ""
            if f.get("elsewhere"):
                extra += f" (and {f['elsewhere']} its Leases named, served elsewhere: left out)"
            lines.append(
                f"  victim {f['victim']} owned {f['affected']}{extra}: reconnected"
                f" {r['n']}/{r['of']} p50/p99/max {r['p50']}/{r['p99']}/{r['max']} s; first new"
                f" version applied {a['n']}/{a['of']} {a['p50']}/{a['p99']}/{a['max']} s"
                f" (after its session opened: {g['p50']}/{g['p99']}/{g['max']} s; after its"
                f" session opened and the version was written, the cloud's part:"
                f" {c['p50']}/{c['p99']}/{c['max']} s);"
                f" deliveries over pre-fault sessions after resume {f['old_session_deliveries']}"
            )
            if f["old_session_examples"]:
                lines.append(
                    f"  deliveries over pre-fault sessions (node, key, version, newer than"
                    f" the fault's, s after resume): {f['old_session_examples']}"
                )
            slow = "; ".join(f"{node} {o}/{w}/{a}" for node, o, w, a in f["slowest"])
            lines.append(f"  slowest cloud's parts (opened/written/arrived s after): {slow}")
            for name, threads in f.get("takeover_cpu", {}).items():
                spent = ", ".join(f"{thread} {cpu}" for thread, cpu in threads.items())
                lines.append(f"  {name}'s cpu s by thread, kill to reconnected + tail: {spent}")
            for name, requests in f.get("window_requests", {}).items():
                spent = ", ".join(f"{key} {int(n)} x {ms} ms" for key, (n, ms) in requests.items())
                lines.append(f"  {name}'s API requests over that window (count x mean): {spent}")
            if "window_cpu" in f:
                spent = ", ".join(f"{name} {cpu}" for name, cpu in f["window_cpu"].items())
                lines.append(f"  cpu s by process over that window: {spent}")
        w = s["lease_writes_during"]
        lines.append(
            f"  duplicates {s['duplicates']}, connect failures {s['connect_failures']}; Lease"
            f" writes in {s['during_seconds']} s: owner {w['owner']}, member {w['member']},"
            f" leader {w['leader']}; CA {'unchanged' if s['ca_secrets'] == ca0 else 'CHANGED'}"
            f" ({len(s['ca_secrets'])} CA Secret); record writes"
            f" {s['record_writes']['record_writes']}, conflicts"
            f" {s['record_writes']['record_conflicts']}"
        )
        if "acked_decreases" in s:
            lines[-1] += f"; acked versions decreased {s['acked_decreases']}"
        if "fence_log" in s and "api_loss" not in s:
            f = s["failover"][0]
            for group, what in (("dropped", "dropped by the fleet while stopped"),
                                ("kept", "kept on the stopped replica")):  # fmt: skip
                r, a = f[group]["reconnected"], f[group]["applied"]
                lines.append(f"  {r['of']} {what}: reconnected p50/p99/max {r['p50']}/{r['p99']}/"
                             f"{r['max']} s, new version applied {a['p50']}/{a['p99']}/{a['max']}"
                             " s after SIGSTOP")  # fmt: skip
            c = f["kept"]["closed_after_resume"]
            lines.append(f"  the kept sessions closed {c['n']}/{c['of']} p50/p99/max {c['p50']}/"
                         f"{c['p99']}/{c['max']} s after SIGCONT; the resumed replica owns"
                         f" {s['owned_after']} nodes after; its log:")  # fmt: skip
            lines += [f"  | {line}" for line in s["fence_log"]]
        if "api_loss" in s:
            lines += _api_loss_lines(s)
        lines.append("  at rest: " + _rest_line(s["rest"]))
    lines.append(f"fleet: {result['fleet']}, repeats {result['repeats']}, regressions"
                 f" {result['regressions']}; balancer: {result['lb']}")  # fmt: skip
    acks = result["acks"]
    if acks is not None:
        e = f", e.g. {acks['examples'][:3]}" if acks["examples"] else ""
        lines.append(f"acked versions (ObjectSyncShards read {acks['polls']} times,"
                     f" {acks['failures']} failed, {acks['entries']} acked entries at the end):"
                     f" decreased {acks['decreases']}{e}")  # fmt: skip
    return "\n".join(lines)


def _api_loss_lines(s: dict[str, Any]) -> list[str]:
    f, c = s["api_loss"], s["api_loss"]["sessions_closed"]
    m = s["api_loss"]["claimed_elsewhere"]
    return [
        f"  the cut replica renewed its member Lease last {f['last_renewal_before_cut']} s before"
        f" the cut, logged its fence {f['fence_logged']} s after the cut and closed"
        f" {c['n']}/{c['of']} sessions p50/p99/max {c['p50']}/{c['p99']}/{c['max']} s after;"
        f" of its {f['sessions_before_cut']} sessions open at the cut,"
        f" {f['sessions_delivering_after_cut']} delivered after the cut,"
        f" {f['sessions_delivering_after_fence']} after the fence",
        f"  claimed elsewhere {m['n']}/{m['of']} p50/p99/max {m['p50']}/{m['p99']}/{m['max']} s"
        f" after the cut (by {f['claimed_by']}); every node back {f['all_back']} s after;"
        f" after the restore the member Lease renewed in {f['member_renewed_after_restore']} s,"
        f" ready in {f['ready_after_restore']} s; it owns {s['owned_after']} nodes after;"
        f" proxy {f['proxy']}; written or accepted while fenced {f['while_fenced']}; its log:",
        *[f"  | {line}" for line in s["fence_log"]],
    ]


def _check_line(c: dict[str, Any]) -> str:
    text = (f"{c['objects']} (node, object) pairs converged in {c['converged_seconds']} s;"
            f" lost {c['lost']} (missing {c['missing']}, stale {c['stale']}), behind at quiesce"
            f" {c['behind_at_quiesce']}, regressions {c['regressions']}")  # fmt: skip
    return text + (f"; e.g. {c['examples']}" if c["examples"] else "")


def _rest_line(rest: dict[str, Any]) -> str:
    w = rest["lease_writes_per_second"]
    per = "; ".join(
        f"{n} owns {r['owned']}, {r['rss_mib']} MiB (idle {r['idle_mib']},"
        f" {r['kib_per_owned']} KiB/node more),"
        f" cpu {r['cpu_percent']} % ({r['cpu_ms_per_s_per_owned']} ms/s per node)"
        for n, r in rest["replicas"].items()
    )
    return (f"Lease writes/s member {w['member']}, leader {w['leader']}, owner {w['owner']}"
            f" (leader {rest['leader']}); {per}")  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = p.add_argument
    add("--nodes", type=int, default=300)
    add("--pods-per-node", type=int, default=2)
    add("--configmaps", type=int, default=4, help="configmaps the pods mount (one per pod)")
    add("--rate", type=float, default=20.0, help="writes per second while under load")
    add("--configmap-every", type=int, default=25, help="every Nth write is a configmap's")
    add("--drivers", type=int, default=4, help="threads for creates and probes")
    add("--kubeconfig", default="", help="an API server to use (default: start one)")
    add("--prefix", default="", help="node name prefix (default: unique per run)")
    add("--plain", action="store_true", help="plain websockets, no TLS")
    add("--replica-namespace", default="kubeedge")
    add("--lease-duration", type=float, default=6.0)
    add("--renew-deadline", type=float, default=4.0)
    add("--retry-period", type=float, default=0.5)
    add("--handshake-threads", type=int, default=1, help="each cloudhub's TLS handshake threads")
    add("--reconnect-initial", type=float, default=0.2, help="the fleet's first backoff, s")
    add("--reconnect-max", type=float, default=2.0, help="the fleet's backoff cap, s")
    add("--connect-timeout", type=float, default=3.0, help="the fleet's handshake timeout, s")
    add("--kill", default="leader", help="scenario 1's victim: leader, busiest or r1..r3")
    add("--stop", default="busiest", help="scenario 2's victim: leader, busiest or r1..r3")
    add("--stop-seconds", type=float, default=0.0, help="SIGSTOP length (default 2 x duration + 1)")
    add(
        "--probe-creates",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each probe also creates a pod on every affected node",
    )
    add("--api-loss", default="busiest", help="api-loss's victim: leader, busiest or r1..r3")
    add("--api-loss-seconds", type=float, default=0.0,
        help="how long its API stays cut (default 2 x duration + 1)")  # fmt: skip
    add("--api-cut", default="blackhole", choices=("blackhole", "refuse", "stall"),
        help="how the API is cut (bench/replicas_apiproxy.py)")  # fmt: skip
    add("--ack-poll", type=float, default=0.5,
        help="seconds between reads of the acked versions (0: none)")  # fmt: skip
    add(
        "--skip",
        default="",
        help=f"scenarios to skip, e.g. stop,rolling (of {','.join(SCENARIOS)})",
    )
    add("--timeout", type=float, default=120, help="seconds a reconnection may take")
    add("--check-timeout", type=float, default=60, help="bound of each convergence wait")
    add("--rest-seconds", type=float, default=10, help="window of the at-rest figures")
    add("--quick", action="store_true", help="60 nodes, 10 writes/s, short windows")
    add(
        "--hand-over",
        type=float,
        default=5.0,
        metavar="S",
        help="cloudhub's hand_over_seconds: a SIGTERM closes the sessions over S seconds",
    )
    add(
        "--rolling-pause",
        type=float,
        default=0.0,
        metavar="S",
        help="rolling: seconds between a replica ready and the next SIGTERM (a Deployment's"
        " minReadySeconds: time for rebalancing)",
    )
    add(
        "--no-health-checks",
        action="store_true",
        help="the balancer does not read the replicas' /readyz",
    )
    add(
        "--profile",
        default="",
        metavar="PREFIX",
        help="py-spy the surviving replicas (and the API server, if started here) from the kill"
        " until --takeover-tail seconds after every affected node reconnected: PREFIX-r1.txt,"
        " ..., PREFIX-api.txt",
    )
    add(
        "--takeover-tail",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds after the reconnects that the kill's takeover CPU counts",
    )
    add("--logs", default="", metavar="DIR", help="keep the processes' logs here")
    add("--json", default="", metavar="PATH", help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.nodes, args.rate, args.rest_seconds, args.check_timeout = 60, 10.0, 4, 30
        args.timeout = 60
    args.stop_seconds = args.stop_seconds or 2 * args.lease_duration + 1
    args.api_loss_seconds = args.api_loss_seconds or 2 * args.lease_duration + 1
    args.skip = {name for name in args.skip.split(",") if name}
    if args.skip - set(SCENARIOS):
        p.error(f"--skip: unknown {','.join(sorted(args.skip - set(SCENARIOS)))}")
    args.prefix = args.prefix or f"rb{uuid.uuid4().hex[:4]}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    print(report(result), flush=True)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
