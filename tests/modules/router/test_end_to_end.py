"""The router end to end with a real broker: REST -> cloudhub -> edge (eventbus on MQTT,
servicebus on a local HTTP app) -> reply, and an edge topic -> a REST target; rule status."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from kubernetes import client
from paho.mqtt.enums import CallbackAPIVersion

from beehive import Hive, Message
from beehive.config import build_hive
from modules.cli import APP, services
from modules.kube import crds
from tests.fakes import eventually, free_port
from tests.modules.router.conftest import Broker, start_broker

pytestmark = pytest.mark.integration
WAIT = 15.0

CONFIG = """
kube: {{mode: embedded}}
modules:
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {hub}, message_qps: 10000, message_burst: 10000}}
  router:
    settings: {{address: 127.0.0.1, port: 0, rest_timeout: 1.0, max_body: 1000, status_interval: 0.05, target_timeout: 2}}
  metamanager:
    settings: {{db_path: "{db}", node_name: edge-r}}
  edgehub:
    settings: {{server: "127.0.0.1:{hub}", node_name: edge-r, heartbeat: 1, status_interval: 5, reconnect_initial: 0.05, reconnect_max: 0.2, message_qps: 10000, message_burst: 10000}}
  eventbus:
    settings: {{broker: "127.0.0.1:{mqtt}", node_name: edge-r, reconnect_initial: 1, reconnect_max: 1}}
  servicebus:
    settings: {{timeout: 5}}
"""


class App(http.server.ThreadingHTTPServer):
    """A local app (servicebus target) and a REST target: records what it was sent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.posts: list[bytes] = []
        self.release = threading.Event()  # a /slow request waits for it
        super().__init__(("127.0.0.1", 0), _AppHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _AppHandler(http.server.BaseHTTPRequestHandler):
    server: App

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/slow"):
            self.server.release.wait(10)
        if self.command == "POST" and self.path.startswith("/target"):
            self.server.posts.append(body)
        out = f"{self.command} {self.path} {body.decode()}".encode()
        self.send_response(201)
        self.send_header("X-App", "yes")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, *args: Any) -> None:
        pass


class Stack:
    def __init__(self, hive: Hive, kube: Any, app: App) -> None:
        self.hive = hive
        self.app = app
        self.api = kube.api_client()
        crds.install(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.port = hive.commands["router.address"]()["port"]

    def create(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        kind = "Rule" if plural == "rules" else "RuleEndpoint"
        body = {"apiVersion": "rules.kubeedge.io/v1", "kind": kind,
                "metadata": {"name": name, "namespace": "default"}, "spec": spec}  # fmt: skip
        self.custom.create_namespaced_custom_object(
            "rules.kubeedge.io", "v1", "default", plural, body
        )

    def rule(self, name: str, source: str, target: str, src: Any, tgt: Any) -> None:
        self.create("rules", name, {"source": source, "sourceResource": src, "target": target,
                                    "targetResource": tgt})  # fmt: skip

    def routed(self, name: str) -> bool:
        return any(r["rule"] == f"default/{name}" and not r["problem"]
                   for r in self.hive.commands["router.rules"]())  # fmt: skip

    def status(self, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(
            "rules.kubeedge.io", "v1", "default", "rules", name
        )
        return dict(obj.get("status") or {})

    def call(self, path: str, body: bytes = b"", method: str = "POST") -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def edge_connected(self) -> bool:
        return bool(self.hive.commands["eventbus.state"]()["connected"]) and any(
            r["connected"] for r in self.hive.commands["cloudhub.nodes"]()
        )


def build(tmp_path: Path, mqtt_port: int) -> Generator[Stack, None, None]:
    path = tmp_path / "router.yaml"
    path.write_text(CONFIG.format(hub=free_port(), db=tmp_path / "edge.db", mqtt=mqtt_port))
    cfg = APP.load(str(path))
    app = App()
    with services(cfg) as shared:
        hive = build_hive(cfg, services=shared)
        hive.start()
        s = Stack(hive, shared["kube"], app)
        try:
            s.create("ruleendpoints", "rest", {"ruleEndpointType": "rest"})
            s.create("ruleendpoints", "bus", {"ruleEndpointType": "eventbus"})
            s.create("ruleendpoints", "svc", {"ruleEndpointType": "servicebus",
                                              "properties": {"service_port": str(app.port)}})  # fmt: skip
            yield s
        finally:
            hive.stop(timeout=5)
            app.close()
            s.api.close()


@pytest.fixture
def stack(tmp_path: Path, broker: Broker) -> Iterator[Stack]:
    yield from build(tmp_path, broker.port)


def subscriber(port: int, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2)
    subscribed = threading.Event()
    sub.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe(topic)
    sub.loop_start()
    assert subscribed.wait(WAIT)
    return sub, got


def test_a_rest_call_reaches_the_local_app_and_its_answer_comes_back(stack: Stack) -> None:
    stack.rule("svc", "rest", "svc", {"path": "/api"}, {"path": "/app"})
    assert eventually(lambda: stack.routed("svc") and stack.edge_connected(), timeout=WAIT)
    status, body = stack.call("/edge-r/default/api/items", b"hello", method="PUT")
    assert (status, body) == (201, b"PUT /app/items hello")
    assert eventually(lambda: stack.status("svc").get("successMessages") == 1, timeout=WAIT)


def test_the_router_adds_its_counts_to_what_another_router_wrote(stack: Stack) -> None:
    """With several replicas, each one's router counts for the same Rule."""
    stack.rule("svc", "rest", "svc", {"path": "/api"}, {"path": "/app"})
    assert eventually(lambda: stack.routed("svc") and stack.edge_connected(), timeout=WAIT)
    theirs = {"successMessages": 100, "failMessages": 7, "errors": ["theirs"]}
    stack.custom.patch_namespaced_custom_object("rules.kubeedge.io", "v1", "default", "rules",
                                                "svc", {"status": theirs})  # fmt: skip
    assert stack.call("/edge-r/default/api/items", b"hello", method="PUT")[0] == 201
    assert eventually(lambda: stack.status("svc").get("successMessages") == 101, timeout=WAIT)
    assert stack.status("svc")["failMessages"] == 7
    assert stack.status("svc")["errors"] == ["theirs"]


def test_a_rest_call_reaches_an_mqtt_subscriber_on_the_edge(stack: Stack, broker: Broker) -> None:
    stack.rule("pub", "rest", "bus", {"path": "/pub"}, {"topic": "cmd"})
    assert eventually(lambda: stack.routed("pub") and stack.edge_connected(), timeout=WAIT)
    sub, got = subscriber(broker.port, "cmd/#")
    try:
        assert stack.call("/edge-r/default/pub", b'{"on": true}')[0] == 200
        assert stack.call("/edge-r/default/pub/lamp", b"x")[0] == 200
        assert eventually(lambda: len(got) == 2, timeout=WAIT)
        assert got[0] == b'{"on": true}'
        status, body = stack.call("/edge-r/default/pub/%2B", b"x")
        assert status == 400 and b"wildcard" in body
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert eventually(lambda: stack.status("pub").get("successMessages") == 2, timeout=WAIT)
    assert stack.status("pub")["failMessages"] == 1


def test_an_mqtt_publish_at_the_edge_reaches_the_rest_target(stack: Stack, broker: Broker) -> None:
    url = f"http://127.0.0.1:{stack.app.port}/target"
    stack.rule("up", "bus", "rest", {"topic": "sensor", "node_name": "edge-r"}, {"resource": url})
    assert eventually(lambda: stack.routed("up") and stack.edge_connected(), timeout=WAIT)
    assert eventually(
        lambda: "default/sensor" in stack.hive.commands["eventbus.state"]()["topics"], timeout=WAIT
    )
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        pub.publish("default/sensor", b'{"t": 21}', qos=1).wait_for_publish(WAIT)
        assert eventually(lambda: stack.app.posts == [b'{"t": 21}'], timeout=WAIT)
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert eventually(lambda: stack.status("up").get("successMessages") == 1, timeout=WAIT)


def test_bad_requests_get_clear_errors(stack: Stack) -> None:
    stack.rule("svc", "rest", "svc", {"path": "/api"}, {"path": "/slow"})
    stack.rule("orphan", "rest", "nowhere", {"path": "/o"}, {"topic": "t"})
    assert eventually(lambda: stack.routed("svc") and stack.edge_connected(), timeout=WAIT)
    assert stack.call("/edge-nobody/default/api")[0] == 404
    assert stack.call("/edge-r/default/nothing")[0] == 404
    assert stack.call("/edge-r/default/o")[0] == 404  # its target endpoint is missing
    assert any("does not exist" in r["problem"] for r in stack.hive.commands["router.rules"]())
    assert stack.call("/edge-r/default/api", b"x" * 1001)[0] == 413
    status, body = stack.call("/edge-r/default/api")  # the app does not answer in time
    assert status == 504 and b"no reply" in body
    stack.hive.send("router", Message.new(source="cloudhub", group="resource",
                                          operation="disconnected", resource="node/edge-r"))  # fmt: skip
    assert eventually(lambda: stack.call("/edge-r/default/api")[0] == 503, timeout=WAIT)
    assert eventually(lambda: stack.status("svc").get("failMessages", 0) >= 2, timeout=WAIT)


def test_the_edge_keeps_running_while_the_broker_is_down(tmp_path: Path) -> None:
    port = free_port()
    stack = build(tmp_path, port)
    s = next(stack)
    try:
        s.rule("pub", "rest", "bus", {"path": "/pub"}, {"topic": "cmd"})
        assert eventually(lambda: s.routed("pub") and any(
            r["connected"] for r in s.hive.commands["cloudhub.nodes"]()), timeout=WAIT)  # fmt: skip
        status, body = s.call("/edge-r/default/pub", b"x")
        assert status == 503 and b"unreachable" in body
        assert eventually(lambda: s.hive.commands["eventbus.state"]()["failed_connects"] >= 1,
                          timeout=WAIT)  # fmt: skip
        broker = start_broker(tmp_path, port)
        try:
            assert eventually(lambda: s.call("/edge-r/default/pub", b"x")[0] == 200, timeout=WAIT)
        finally:
            broker.stop()
    finally:
        stack.close()
