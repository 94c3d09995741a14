"""cloudhub benchmark (issue 5): 1,000 fleet edges against cloudhub alone, and the floor.

Run: python bench/cloudhub_bench.py [--nodes 1000] [--updates 10000] [--quick] [--plain]

Processes: cloudhub (`beehive run` with edgecontroller swapped for `Injector`, which
builds object messages itself on orders read from its stdin, so no API server is
involved) and this one, which holds the edges (the fleet's `EdgeSession`s). The
floor is a bare `websockets` server in its own process that sends frames of the same
size to the same number of connections. Times are the system-wide monotonic clock.
As in production, every connection is mutual TLS (the floor's too): a CA, cloudhub's
certificate and one per edge are made here first; `--plain` for plain websockets.

Prints: (a) fan-out of `--updates` updates, delivered and acked, from cloudhub
receiving the first until the edges hold the last, beside the floor (`--repeat`
rounds of a fan-out run then a floor run, since the machine's pace drifts: the best
of each, and each round's share with their median);
(b) change-to-edge latency at `--rate` changes/s; (c) cloudhub's memory per idle
connected edge; (d) a reconnect storm: all the edges drop while one object per node
changes: time until every edge converged, and the p99 latency of `--keep` more edges
that stay connected (as many changes for them, spread evenly), beside the same
changes without the storm. The kept edges run in
a `beehive fleet` process of their own, as edges that stay connected are other
machines than the ones reconnecting: what is measured is whether cloudhub lets the
storm delay them, not whether this process's loop does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
from e2e_bench import FleetControl, py_spy

from beehive import codec, runtime
from beehive.message import JsonValue, Message
from beehive.module import Module
from modules import contract
from modules.certs import ca as ca_mod
from modules.certs import enroll, tls, token
from modules.fleet import fleet as fleet_mod
from modules.fleet.options import FleetOptions

HERE = Path(__file__).resolve().parent
CONFIG = """hive: {{admin: {{address: "off"}}}}
modules:
  edgecontroller: {{impl: "cloudhub_bench:Injector"}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}, node_limit: {limit}, object_sync: false,
                {tls}}}
"""
TLS = 'tls: true, tls_ca_file: "{ca}", tls_cert_file: "{cert}", tls_key_file: "{key}"'


class BenchCerts:
    """A CA, cloudhub's server certificate and each edge's, as files (`beehive fleet
    --certs` layout: <folder>/<node>/ca.crt, node.crt, node.key)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = folder / "ca.crt"
        self.cert = folder / "server.crt"
        self.key = folder / "server.key"

    @classmethod
    def create(cls, folder: Path, nodes: list[str]) -> BenchCerts:
        """Make them all now (the floor's server only loads them: `BenchCerts(folder)`)."""
        certs, now = cls(folder), token.utc_now()
        ca = ca_mod.generate_ca(now)
        server = ca_mod.generate_server_cert(ca, ips=["127.0.0.1"], dns_names=[], now=now)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = [(certs.ca, ca.cert_pem), (certs.cert, server.cert_pem),
                 (certs.key, server.key_pem)]  # fmt: skip
        for name in nodes:
            key = ca_mod.new_key()
            pair = ca_mod.KeyPair(
                ca_mod.sign_node(ca, key.public_key(), name, days=1, now=now), key
            )
            paths = enroll.EdgeCertPaths.in_directory(folder / name)
            paths.cert.parent.mkdir(mode=0o700, exist_ok=True)
            files += [(paths.ca, ca.cert_pem), (paths.cert, pair.cert_pem),
                      (paths.key, pair.key_pem)]  # fmt: skip
        for path, data in files:
            path.write_bytes(data)
        return certs

    def config(self) -> str:
        return TLS.format(ca=self.ca, cert=self.cert, key=self.key)

    def server_context(self) -> ssl.SSLContext:
        return tls.server_context(ca_pem=self.ca.read_bytes(), cert=self.cert, key=self.key)

    def client_context(self, node: str) -> ssl.SSLContext:
        paths = enroll.EdgeCertPaths.in_directory(self.folder / node)
        return tls.client_context(ca_pem=self.ca.read_bytes(), cert=paths.cert, key=paths.key)


Sent = list[tuple[str, str, int, float]]  # (node, key, resourceVersion, when queued)
BATCH = 512  # messages the injector hands to cloudhub at once (edgecontroller's SEND_BATCH)


# The injector, inside the cloudhub process.


class Injector(Module):
    """Stands in for edgecontroller: object messages on orders from stdin, resync answers."""

    def on_start(self) -> None:
        self._rv = 0  # resourceVersion of the last object built
        self._uids: dict[str, set[str]] = {}  # node -> uids it was sent
        self._turns: dict[str, int] = {}  # node -> updates it was sent
        threading.Thread(target=self._orders, name="bench-injector", daemon=True).start()

    def on_message(self, message: Message) -> None:
        if message.route.operation == contract.RESYNC:
            node = contract.parse_resource(message.route.resource).node
            uids: list[Any] = sorted(self._uids.get(node, ()))
            answer = Message.new(
                source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE,
                operation=contract.RESYNCED, resource=contract.build_resource(node),
                content={"uids": uids},
            )  # fmt: skip
            self.hive.send(contract.CLOUDHUB, answer)

    def _orders(self) -> None:
        for line in sys.stdin:
            order = json.loads(line)
            sent = self._inject(order["nodes"], order["per_node"], order["rate"])
            # orjson: the report is written while cloudhub still delivers, and the
            # standard library takes long enough over 10,000 entries to delay it.
            sys.stdout.write(orjson.dumps(sent).decode() + "\n")
            sys.stdout.flush()

    def _inject(self, nodes: list[str], per_node: int, rate: float) -> Sent:
        """`per_node` pod updates per node, round robin, built first (building them is
        edgecontroller's work, not cloudhub's), then handed over at `rate`/s or (0) in
        batches of `BATCH`, as edgecontroller sends what it has at hand. Each is stamped
        when handed over. A node's updates go to its pods p0..p9 in turn (a node listed
        twice gets two pods a round)."""
        orders: list[tuple[str, str, int, Message]] = []
        for i in range(per_node * len(nodes)):
            node = nodes[i % len(nodes)]
            turn = self._turns[node] = self._turns.get(node, -1) + 1
            name = f"p{turn % 10}"
            self._rv += 1
            self._uids.setdefault(node, set()).add(f"{node}-{name}")
            orders.append((node, f"bench/pod/{name}", self._rv, pod_message(node, name, self._rv)))
        sent: Sent = []
        step = 1 if rate else BATCH
        start = time.monotonic()
        for i in range(0, len(orders), step):
            if rate:
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
            chunk = orders[i : i + step]
            now = time.monotonic()
            sent.extend((node, key, rv, now) for node, key, rv, _ in chunk)
            self.hive.send_many(contract.CLOUDHUB, [message for *_, message in chunk])
        return sent


def pod_message(node: str, name: str, rv: int) -> Message:
    """An update of pod `name` on `node` at `rv`, as edgecontroller sends it."""
    uid = f"{node}-{name}"
    meta: JsonValue = {"name": name, "namespace": "bench", "uid": uid, "resourceVersion": str(rv)}
    spec: JsonValue = {"nodeName": node, "containers": [{"name": "c", "image": "pause"}]}
    pod: JsonValue = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation="update",
        resource=contract.build_resource(node, "bench", contract.POD, name),
        content=pod, resource_version=str(rv),
    )  # fmt: skip


# The bench process.


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


@contextlib.contextmanager
def profiled(prefix: str, phase: str, pids: dict[str, int]) -> Iterator[None]:
    """py-spy samples each process (every thread, collapsed stacks to
    PREFIX-PHASE-NAME.txt) while the block runs; nothing happens when `prefix` is empty."""
    if not prefix:
        yield
        return
    spy = py_spy()
    options = ["--format", "raw", "--threads", "--nonblocking", "-r", "100"]
    procs = [
        subprocess.Popen(
            [spy, "record", "-p", str(pid), "-o", f"{prefix}-{phase}-{name}.txt", *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    time.sleep(0.5)  # py-spy attaches
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


class CloudHub:
    """The cloudhub process and its injector's order channel."""

    def __init__(self, tmp: Path, port: int, nodes: int, certs: BenchCerts | None) -> None:
        path = tmp / "cloudhub.yaml"
        tls_settings = certs.config() if certs is not None else "tls: false"
        path.write_text(CONFIG.format(port=port, limit=nodes + 10, tls=tls_settings))
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modules.cli", "run", str(path)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=(tmp / "cloudhub.log").open("w"),
            text=True, cwd=HERE.parent,
        )  # fmt: skip
        self.ps = psutil.Process(self.proc.pid)

    def inject(self, nodes: list[str], *, per_node: int = 1, rate: float = 0.0) -> Sent:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        order = {"nodes": nodes, "per_node": per_node, "rate": rate}
        self.proc.stdin.write(json.dumps(order) + "\n")
        self.proc.stdin.flush()
        return [tuple(x) for x in orjson.loads(self.proc.stdout.readline())]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class KeptFleet:
    """`--keep` edges in a `beehive fleet --control` process of their own."""

    def __init__(self, tmp: Path, port: int, nodes: int, certs: BenchCerts | None) -> None:
        auth = ["--certs", str(certs.folder)] if certs is not None else ["--plain"]
        args = [sys.executable, "-m", "modules.cli", "fleet", "--cloud", f"127.0.0.1:{port}",
                "--nodes", str(nodes), "--prefix", "kept", *auth, "--control",
                "--no-progress", "--no-pod-status", "--status-interval", "60",
                "--json"]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=(tmp / "kept.log").open("w"), text=True, cwd=HERE.parent,
        )  # fmt: skip
        self.ask = FleetControl(self.proc).ask  # one command, one JSON reply
        self.names = FleetOptions(cloud="", nodes=nodes, prefix="kept").node_names
        self._tmp = tmp
        self._checks = 0  # check files written (the fleet reads each path once)

    async def connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (await asyncio.to_thread(self.ask, "stats"))["connected"] < len(self.names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kept edges did not connect within {timeout:.0f} s")
            await asyncio.sleep(0.1)

    async def arrivals(self, sent: Sent, timeout: float) -> dict[Any, float]:
        """When each version in `sent` for a kept edge arrived (waits until all have)."""
        expected: dict[str, dict[str, int]] = {}
        for node, key, rv, _ in sent:
            if node.startswith("kept-"):
                expected.setdefault(node, {})[key] = rv
        self._checks += 1
        path = self._tmp / f"kept-expected-{self._checks}.json"
        path.write_text(json.dumps(expected))
        deadline = time.monotonic() + timeout
        while True:
            check = await asyncio.to_thread(self.ask, f"check {path}")
            if check["met"] == check["total"]:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"kept edges: {check} within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        dump = self._tmp / "kept-arrivals.json"
        await asyncio.to_thread(self.ask, f"dump {dump}")
        held = json.loads(dump.read_text())
        return {(node, key): held[node]["objects"][key][1]
                for node, keys in expected.items() for key in keys}  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # it may be gone
            self.ask("stop")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def wait_arrived(fleet: fleet_mod.Fleet, sent: Sent, timeout: float) -> dict[Any, float]:
    """When each sent version (or a newer one) arrived, from the stores' arrival stamps.

    Polled every 20 ms; each poll goes on from the first version not seen yet, in the
    order sent, and stops at the next one missing, so that waiting costs the edges'
    process (this one) little CPU."""
    stores = {s.node_id: s.store.objects for s in fleet.sessions}
    newest = {(node, key): rv for node, key, rv, _ in sent if node in stores}
    order = list(newest.items())
    times: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + timeout
    done = 0
    while True:
        while done < len(order):
            (node, key), rv = order[done]
            held = stores[node].get(key)
            if held is None or held[0] < rv:
                break
            times[(node, key)] = held[2]
            done += 1
        if done == len(order):
            return times
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every update arrived within {timeout:.0f} s")
        await asyncio.sleep(0.02)


def latencies(sent: Sent, times: dict[Any, float], nodes: set[str] | None = None) -> list[float]:
    """Queued -> arrived for the newest version per (node, key) in `sent`."""
    newest = {(n, k): t for n, k, _, t in sent if nodes is None or n in nodes}
    return [times[key] - t for key, t in newest.items()]


async def fan_out(hub: CloudHub, fleet: fleet_mod.Fleet, names: list[str], per_node: int,
                  timeout: float) -> dict[str, Any]:  # fmt: skip
    sent = await asyncio.to_thread(hub.inject, names, per_node=per_node)
    times = await wait_arrived(fleet, sent, timeout)
    seconds = max(times.values()) - min(t for *_, t in sent)  # from the first hand-over
    return {"updates": len(sent), "seconds": round(seconds, 3),
            "per_second": round(len(sent) / seconds)}  # fmt: skip


async def at_rate(hub: CloudHub, fleet: fleet_mod.Fleet, names: list[str], rate: float,
                  per_node: int, timeout: float) -> tuple[Sent, dict[Any, float]]:  # fmt: skip
    sent = await asyncio.to_thread(hub.inject, names, per_node=per_node, rate=rate)
    return sent, await wait_arrived(fleet, sent, timeout)


async def storm(hub: CloudHub, fleet: fleet_mod.Fleet, kept: KeptFleet, names: list[str],
                args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    # Every edge that drops gets one change, every kept edge ten (for a p99 of 1,000
    # samples), spread evenly through the run.
    everyone = [node for pair in zip(names, itertools.cycle(kept.names)) for node in pair]
    quiet = await asyncio.to_thread(hub.inject, everyone, per_node=1, rate=args.rate)
    await wait_arrived(fleet, quiet, args.timeout)
    kept_nodes = set(kept.names)
    quiet_times = await kept.arrivals(quiet, args.timeout)
    before = percentiles(latencies(quiet, quiet_times, kept_nodes))["p99"]
    start = time.monotonic()
    dropped = fleet.storm()
    sent = await asyncio.to_thread(hub.inject, everyone, per_node=1, rate=args.rate)
    times = await wait_arrived(fleet, sent, args.timeout)
    while not all(s.is_connected for s in fleet.sessions):
        await asyncio.sleep(0.01)
    end = max(time.monotonic(), *times.values())
    kept_times = await kept.arrivals(sent, args.timeout)
    return {"dropped": dropped, "kept": len(kept.names), "updates": len(sent),
            "converged_seconds": round(max(end, *kept_times.values()) - start, 3),
            "kept_p99_ms": percentiles(latencies(sent, kept_times, kept_nodes))["p99"],
            "kept_p99_quiet_ms": before}  # fmt: skip


async def run_hub(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = free_port()
    names = [f"bench-{i}" for i in range(args.nodes)] + [f"kept-{i}" for i in range(args.keep)]
    certs = None if args.plain else BenchCerts.create(tmp / "certs", names)
    hub = CloudHub(tmp, port, args.nodes + args.keep, certs)
    try:
        await asyncio.sleep(3)  # start-up (bounded)
        idle_before = hub.ps.memory_info().rss
        options = FleetOptions(cloud=f"127.0.0.1:{port}", nodes=args.nodes, prefix="bench",
                               plain=certs is None, certs=tmp / "certs", pod_status=False,
                               heartbeat=15.0, connect_concurrency=args.nodes)  # fmt: skip
        fleet = fleet_mod.Fleet(options)
        task = asyncio.create_task(fleet.run())
        await asyncio.wait_for(fleet.all_connected.wait(), args.timeout)
        runtime.freeze_startup()  # as `beehive fleet` does once its nodes are connected
        await asyncio.sleep(2)  # registrations and first reports drain
        idle_after = hub.ps.memory_info().rss
        names = options.node_names
        pids = {"cloudhub": hub.proc.pid, "edges": os.getpid()}
        result: dict[str, Any] = {
            "memory_kib_per_edge": round((idle_after - idle_before) / args.nodes / 1024, 1)
        }
        per_node = args.updates // args.nodes
        runs, floors = [], []
        for i in range(args.repeat):  # fan-out and floor in turn: the machine's pace drifts
            with profiled(args.profile, f"fan-out-{i + 1}", pids):
                runs.append(await fan_out(hub, fleet, names, per_node, args.timeout))
            floors.append(await floor(args.nodes, per_node, frame_size(), certs))
        result["fan_out"] = max(runs, key=lambda run: run["per_second"])
        result["floor"] = max(floors, key=lambda run: run["per_second"])
        result["fan_out_shares"] = [
            round(run["per_second"] / fl["per_second"] * 100)
            for run, fl in zip(runs, floors, strict=True)
        ]
        sent, times = await at_rate(hub, fleet, names, args.rate, args.seconds * args.rate //
                                    args.nodes or 1, args.timeout)  # fmt: skip
        result["latency_ms"] = percentiles(latencies(sent, times))
        result["latency_updates"] = len(sent)
        kept = KeptFleet(tmp, port, args.keep, certs)
        try:
            await kept.connected(args.timeout)
            with profiled(args.profile, "storm", {**pids, "kept": kept.proc.pid}):
                result["storm"] = await storm(hub, fleet, kept, names, args)
        finally:
            kept.stop()
        fleet.stop.set()
        await task
        return result
    finally:
        hub.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The floor: a bare websockets server sending same-size frames.


async def floor_server(port: int, nodes: int, frames: int, size: int, certs: str) -> None:
    """Serve until `nodes` connections are in, send each `frames` frames round robin
    (over mutual TLS with the certificates in `certs`, if given)."""
    from websockets.asyncio.server import ServerConnection, serve

    context = BenchCerts(Path(certs)).server_context() if certs else None

    conns: list[ServerConnection] = []
    ready = asyncio.Event()
    payload = "x" * size

    async def handler(ws: ServerConnection) -> None:
        conns.append(ws)
        if len(conns) == nodes:
            ready.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None,
                     ssl=context):  # fmt: skip
        print("listening", flush=True)
        await asyncio.wait_for(ready.wait(), 120)
        print(time.monotonic(), flush=True)
        for _ in range(frames):
            for ws in conns:
                await ws.send(payload)
        await asyncio.wait_for(asyncio.gather(*(ws.wait_closed() for ws in conns)), 120)


async def floor(nodes: int, frames: int, size: int, certs: BenchCerts | None) -> dict[str, Any]:
    from websockets.asyncio.client import ClientConnection, connect

    port = free_port()
    folder = str(certs.folder) if certs is not None else ""
    args = [sys.executable, __file__, "--floor-server", f"{port},{nodes},{frames},{size},{folder}"]
    scheme = "wss" if certs is not None else "ws"
    contexts = [certs.client_context(f"bench-{i}") for i in range(nodes)] if certs else None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    sem = asyncio.Semaphore(64)

    async def client(index: int) -> float:
        async with sem:
            ws: ClientConnection = await connect(
                f"{scheme}://127.0.0.1:{port}", compression=None, ping_interval=None,
                max_size=None, ssl=contexts[index] if contexts else None,
            )  # fmt: skip
        for _ in range(frames):
            await ws.recv()
        done = time.monotonic()
        await ws.close()
        return done

    ends = await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(nodes))), 300)
    start = float(await asyncio.to_thread(proc.stdout.readline))
    proc.wait(30)
    seconds = max(ends) - start
    return {"frames": nodes * frames, "seconds": round(seconds, 3),
            "per_second": round(nodes * frames / seconds)}  # fmt: skip


def frame_size() -> int:
    return len(codec.encode(pod_message("bench-0", "p0", 1)))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cloudhub-bench-") as tmp:
        return await run_hub(args, Path(tmp))


def report(r: dict[str, Any]) -> str:
    fan, fl, lat, st = r["fan_out"], r["floor"], r["latency_ms"], r["storm"]
    share = fan["per_second"] / fl["per_second"] * 100
    shares = sorted(r["fan_out_shares"])
    return "\n".join([
        f"(a) fan-out: {fan['updates']} updates acked in {fan['seconds']} s, "
        f"{fan['per_second']}/s; raw websockets floor {fl['per_second']}/s "
        f"({fl['seconds']} s): {share:.0f}% of the floor (best of each); round by round "
        f"{', '.join(f'{x}%' for x in r['fan_out_shares'])}, median {shares[len(shares) // 2]}%",
        f"(b) latency at {r['rate']}/s ({r['latency_updates']} changes): "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms",
        f"(c) idle memory: {r['memory_kib_per_edge']} KiB per connected edge",
        f"(d) storm: {st['dropped']} edges dropped, {st['updates']} changes; converged in "
        f"{st['converged_seconds']} s; {st['kept']} kept edges p99 {st['kept_p99_ms']} ms "
        f"(without the storm {st['kept_p99_quiet_ms']} ms)",
    ])  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=10_000, help="fan-out updates")
    parser.add_argument("--rate", type=int, default=500, help="changes/s for the latency")
    parser.add_argument("--seconds", type=int, default=5, help="length of the latency run")
    parser.add_argument(
        "--keep", type=int, default=100, help="more edges, kept connected through the storm"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="rounds of a fan-out run and a floor run"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds a step may take")
    parser.add_argument("--quick", action="store_true", help="50 nodes, 500 updates")
    parser.add_argument("--plain", action="store_true", help="plain websockets, no TLS")
    parser.add_argument("--json", default="", metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--profile", default="", metavar="PREFIX",
        help="py-spy both processes: PREFIX-{fan-out-N,storm}-{cloudhub,edges}.txt",
    )  # fmt: skip
    parser.add_argument("--floor-server", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.updates, args.keep, args.seconds = 50, 500, 5, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.floor_server:
        *numbers, certs = args.floor_server.split(",")
        port, nodes, frames, size = (int(x) for x in numbers)
        asyncio.run(floor_server(port, nodes, frames, size, certs))
        return 0
    runtime.tune_gc(runtime.DEFAULT_GC_THRESHOLD)  # this process holds the edges: as beehive fleet
    result = asyncio.run(main_async(args))
    result["rate"] = args.rate
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
