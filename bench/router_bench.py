"""Router benchmark: REST -> cloudcore's router -> cloudhub -> edge -> reply, concurrently.

Run: python bench/router_bench.py [--requests 5000] [--concurrency 100] [--json PATH]

One process holds the embedded API, cloudcore (edgecontroller, cloudhub, router) and
one edge (edgehub, metamanager, eventbus, servicebus) over a plain websocket on
127.0.0.1, as tests/modules/router/test_end_to_end.py does; the HTTP clients are
threads of this process too (persistent HTTP/1.1 connections, one per client).
Two paths, each measured after a warm-up:

- servicebus: ``GET /<node>/default/app/<i>`` -> the edge's servicebus -> a local HTTP
  app that answers at once -> its answer back as the HTTP response;
- eventbus (when ``mosquitto`` is installed: started on a free port): ``POST
  /<node>/default/pub`` -> the edge's eventbus publishes on an MQTT topic -> its reply
  (200 once handed to the broker) back; a subscriber counts what the broker delivered.

The per-node rate limits (cloudhub's and edgehub's ``message_qps``/``message_burst``,
30/60 by default: they cap every edge's upstream, and so the router's replies, at 30
a second) are raised to 100,000 here, as the tests raise them. Prints throughput
(requests/s) and latency p50/p90/p99 per path, and the errors by status.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

from beehive import Hive
from beehive.config import build_hive
from modules.cli import APP, services
from modules.kube import crds

NODE = "edge-b"
QPS = 100_000  # the raised rate limit (message_qps and message_burst)
CONFIG = """
kube: {{mode: embedded}}
modules:
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {hub}, message_qps: {qps}, message_burst: {qps}}}
  router:
    settings: {{address: 127.0.0.1, port: 0, rest_timeout: 30, status_interval: 1}}
  metamanager:
    settings: {{db_path: "{db}", node_name: {node}}}
  edgehub:
    settings: {{server: "127.0.0.1:{hub}", node_name: {node}, message_qps: {qps},
                message_burst: {qps}}}
  eventbus:
    settings: {{broker: "127.0.0.1:{mqtt}", node_name: {node}, reconnect_initial: 1,
                reconnect_max: 1}}
  servicebus:
    settings: {{timeout: 10, workers: {workers}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _App(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


class _AppHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # servicebus opens a connection a call; keep-alive is moot

    def do_GET(self) -> None:
        out = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def local_app() -> Iterator[int]:
    app = _App(("127.0.0.1", 0), _AppHandler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        yield int(app.server_address[1])
    finally:
        app.shutdown()
        app.server_close()


@contextmanager
def mosquitto(tmp: Path) -> Iterator[int | None]:
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if exe is None:
        yield None
        return
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: _listening(port), 10, "mosquitto did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(0.02)


def create(api: Any, plural: str, name: str, spec: dict[str, Any]) -> None:
    kind = "Rule" if plural == "rules" else "RuleEndpoint"
    body = {"apiVersion": "rules.kubeedge.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}  # fmt: skip
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "rules.kubeedge.io", "v1", "default", plural, body
    )


def setup_rules(hive: Hive, api: Any, app_port: int) -> None:
    crds.install(api)
    create(api, "ruleendpoints", "rest", {"ruleEndpointType": "rest"})
    create(api, "ruleendpoints", "bus", {"ruleEndpointType": "eventbus"})
    svc = {"ruleEndpointType": "servicebus", "properties": {"service_port": str(app_port)}}
    create(api, "ruleendpoints", "svc", svc)
    for name, target, resource in (
        ("app", "svc", {"path": "/x"}),
        ("pub", "bus", {"topic": "bench"}),
    ):
        create(api, "rules", name, {"source": "rest", "sourceResource": {"path": f"/{name}"},
                                    "target": target, "targetResource": resource})  # fmt: skip

    def ready() -> bool:
        rules = hive.commands["router.rules"]()
        nodes = hive.commands["cloudhub.nodes"]()
        return (sum(1 for r in rules if not r["problem"]) == 2
                and any(n["connected"] for n in nodes))  # fmt: skip

    wait_for(ready, 30, "the rules or the edge did not come up")


def drive(port: int, method: str, path: str, *, requests: int,
          concurrency: int) -> dict[str, Any]:  # fmt: skip
    """`requests` calls on `concurrency` client threads; latencies and statuses."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    per = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    per = [n for n in per if n]
    start_line = threading.Barrier(len(per) + 1)  # every client connected, then go

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        seen: Counter[int] = Counter()
        start_line.wait()
        for i in range(n):
            t0 = time.perf_counter()
            conn.request(method, f"{path}/{i}" if method == "GET" else path, body=b'{"v": 1}')
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            seen[resp.status] += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in per]
    for t in threads:
        t.start()
    start_line.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "concurrency": len(threads), "seconds": elapsed,
            "per_second": len(latencies) / elapsed if elapsed else 0.0,
            "p50_ms": _pct(latencies, 50), "p90_ms": _pct(latencies, 90),
            "p99_ms": _pct(latencies, 99),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}  # fmt: skip


def _pct(sorted_values: list[float], pct: int) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index] * 1000


def subscriber(port: int, topic: str) -> tuple[Any, list[int]]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = [0]
    done = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2)
    sub.on_message = lambda *_a: got.__setitem__(0, got[0] + 1)
    sub.on_subscribe = lambda *_a: done.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe(topic)
    sub.loop_start()
    if not done.wait(10):
        raise RuntimeError("the MQTT subscriber did not subscribe")
    return sub, got


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"rate_limits_raised_to": QPS, "paths": {}}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        app_port = stack.enter_context(local_app())
        mqtt_port = stack.enter_context(mosquitto(tmp))
        path = tmp / "router.yaml"
        path.write_text(CONFIG.format(hub=free_port(), db=tmp / "edge.db", node=NODE,
                                      mqtt=mqtt_port or free_port(), qps=QPS,
                                      workers=args.servicebus_workers))  # fmt: skip
        cfg = APP.load(str(path))
        shared = stack.enter_context(services(cfg))
        hive = build_hive(cfg, services=shared)
        hive.start()
        stack.callback(hive.stop, timeout=5)
        api = shared["kube"].api_client()
        stack.callback(api.close)
        setup_rules(hive, api, app_port)
        port = hive.commands["router.address"]()["port"]
        warm = max(args.concurrency, args.requests // 10)
        calls = {"requests": args.requests, "concurrency": args.concurrency}
        drive(port, "GET", f"/{NODE}/default/app", requests=warm, concurrency=args.concurrency)
        result["paths"]["servicebus"] = drive(port, "GET", f"/{NODE}/default/app", **calls)
        if mqtt_port is None:
            result["paths"]["eventbus"] = None
            return result
        wait_for(lambda: hive.commands["eventbus.state"]()["connected"], 15,
                 "the eventbus did not connect to mosquitto")  # fmt: skip
        sub, got = subscriber(mqtt_port, "bench")
        stack.callback(sub.loop_stop)
        drive(port, "POST", f"/{NODE}/default/pub", requests=warm, concurrency=args.concurrency)
        eventbus = drive(port, "POST", f"/{NODE}/default/pub", **calls)
        total = warm + args.requests
        deadline = time.monotonic() + 10
        while got[0] < total and time.monotonic() < deadline:
            time.sleep(0.05)
        eventbus["delivered_to_subscriber"] = got[0] - warm
        result["paths"]["eventbus"] = eventbus
    return result


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"router: REST -> edge -> reply, {args.requests} requests on {args.concurrency} "
          f"concurrent clients (one persistent HTTP/1.1 connection each), one edge node; "
          f"servicebus workers {args.servicebus_workers}")  # fmt: skip
    print(
        f"rate limits raised: cloudhub and edgehub message_qps/message_burst = {QPS:,} "
        "(default 30/60 a node caps a node's routed replies at 30/s)"
    )
    print("everything (API, cloudcore, edge, clients) in this one process")
    for name, r in result["paths"].items():
        if r is None:
            print(f"{name:>10}: skipped (no mosquitto on the PATH)")
            continue
        extra = ""
        if "delivered_to_subscriber" in r:
            extra = f", MQTT subscriber got {r['delivered_to_subscriber']}"
        print(f"{name:>10}: {r['per_second']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
              f"p90 {r['p90_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
              f"statuses {r['statuses']}{extra}")  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="timed requests per path")
    parser.add_argument("--concurrency", type=int, default=100, help="client threads")
    parser.add_argument("--servicebus-workers", type=int, default=8,
                        help="the edge servicebus's workers (its default: 8)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the result here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    report(result, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
