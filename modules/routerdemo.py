"""A demo of the router for config/local.yaml: rules, an app, and traffic through them.

On start it creates, through the API (the ``kube`` service), three RuleEndpoints
(``demo-rest``, ``demo-eventbus``, ``demo-servicebus``) and three Rules:

- ``demo-lamp``: REST ``/<node>/<namespace>/lamp`` -> the edge's MQTT topic ``lamp``;
- ``demo-app``: REST ``/<node>/<namespace>/app`` -> the edge's local app (servicebus),
  path ``/hello``;
- ``demo-sensor``: the edge's MQTT topic ``<namespace>/sensor`` -> a POST to this
  module's ``/sensor``.

It serves the local app and the REST target itself (HTTP on 127.0.0.1:`app_port`,
threads "beehive-routerdemo-http-*"), and every `interval` seconds it calls the two
REST rules on the router and, when the MQTT broker is up, publishes a reading on the
sensor topic as a device at the edge would (paho's thread). Each call, answer and
POST received is a line of log; the router logs each message it routes.
"""

from __future__ import annotations

import dataclasses
import http.server
import itertools
import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any

import paho.mqtt.client as mqtt
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from paho.mqtt.enums import CallbackAPIVersion

from beehive import Module

log = logging.getLogger("modules.routerdemo")

GROUP, VERSION = "rules.kubeedge.io", "v1"


@dataclasses.dataclass(frozen=True)
class RouterDemoSettings:
    node: str = "edge-1"  # the edge the rules route to and from
    namespace: str = "default"
    router: str = "127.0.0.1:9443"  # host:port of the router's REST endpoint
    broker: str = "127.0.0.1:1883"  # the edge's MQTT broker, where the "sensor" publishes
    app_port: int = dataclasses.field(default=10013, metadata={"min": 0})  # 0: any free port
    interval: float = dataclasses.field(default=2.0, metadata={"min": 0.01})
    timeout: float = dataclasses.field(default=10.0, metadata={"min": 0.01})  # per REST call


class RouterDemo(Module):
    """Creates the demo rules, serves their HTTP ends and drives traffic through them."""

    settings_type = RouterDemoSettings

    def on_start(self) -> None:
        s: RouterDemoSettings = self.settings or RouterDemoSettings()
        self._settings = s
        self.api_client = self.context.services["kube"].api_client()
        self._server = _AppServer(("127.0.0.1", s.app_port), s.node)
        self.app_port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="beehive-routerdemo-http").start()  # fmt: skip
        self._create_rules()
        host, _, port = s.broker.rpartition(":")
        self._mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="beehive-routerdemo")
        self._mqtt.connect_async(host or "127.0.0.1", int(port))
        self._mqtt.loop_start()  # keeps retrying while no broker runs
        self._broker_up: bool | None = None  # as last logged; None before the first tick

    def on_stop(self) -> None:
        self._mqtt.disconnect()
        self._mqtt.loop_stop()
        self._server.shutdown()
        self._server.server_close()
        self.api_client.close()

    def run(self) -> None:
        s = self._settings
        base = f"http://{s.router}/{s.node}/{s.namespace}"
        for tick in itertools.count(1):
            if self.stopping.wait(s.interval):
                return
            self._call("POST", f"{base}/lamp", json.dumps({"on": tick % 2 == 1}).encode())
            self._call("GET", f"{base}/app/tick/{tick}", b"")
            self._sense(tick)

    def _call(self, method: str, url: str, body: bytes) -> None:
        request = urllib.request.Request(url, data=body or None, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._settings.timeout) as resp:
                status, answer = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        except OSError as exc:  # the router is not listening (yet)
            log.warning("demo: %s %s: %s", method, url, exc)
            return
        log.info(
            "demo: REST %s %s -> %d %s", method, url, status, answer[:120].decode(errors="replace")
        )

    def _sense(self, tick: int) -> None:
        connected = self._mqtt.is_connected()
        if connected != self._broker_up:  # a line when it changes, not one a tick
            self._broker_up = connected
            log.info("demo: MQTT broker at %s %s", self._settings.broker,
                     "reached: publishing sensor readings" if connected
                     else "unreachable: no sensor readings published")  # fmt: skip
        if not connected:
            return
        topic = f"{self._settings.namespace}/sensor"
        self._mqtt.publish(topic, json.dumps({"tick": tick, "celsius": 20 + tick % 5}), qos=1)
        log.info("demo: sensor published tick %d on %s at %s", tick, topic, self._settings.broker)

    def _create_rules(self) -> None:
        for kind, plural, name, spec in demo_objects(self._settings, self.app_port):
            self._apply(kind, plural, name, spec)

    def _apply(self, kind: str, plural: str, name: str, spec: dict[str, Any]) -> None:
        api: Any = client.CustomObjectsApi(self.api_client)
        ns = self._settings.namespace
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                "metadata": {"name": name, "namespace": ns}, "spec": spec}  # fmt: skip
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            api.patch_namespaced_custom_object(GROUP, VERSION, ns, plural, name, {"spec": spec})
        log.info("demo: %s %s/%s: %s", kind, ns, name, json.dumps(spec, sort_keys=True))


def demo_objects(
    s: RouterDemoSettings, app_port: int
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, plural, name, spec) of the demo's RuleEndpoints, then its Rules."""
    target = f"http://127.0.0.1:{app_port}/sensor"
    endpoints: dict[str, dict[str, Any]] = {
        "demo-rest": {"ruleEndpointType": "rest"},
        "demo-eventbus": {"ruleEndpointType": "eventbus"},
        "demo-servicebus": {"ruleEndpointType": "servicebus",
                            "properties": {"service_port": str(app_port)}},
    }  # fmt: skip
    rules = {
        "demo-lamp": ("demo-rest", {"path": "/lamp"}, "demo-eventbus", {"topic": "lamp"}),
        "demo-app": ("demo-rest", {"path": "/app"}, "demo-servicebus", {"path": "/hello"}),
        "demo-sensor": ("demo-eventbus", {"topic": "sensor", "node_name": s.node},
                        "demo-rest", {"resource": target}),
    }  # fmt: skip
    out: list[tuple[str, str, str, dict[str, Any]]] = [
        ("RuleEndpoint", "ruleendpoints", name, spec) for name, spec in endpoints.items()
    ]
    for name, (source, src, tgt_name, tgt) in rules.items():
        spec = {"source": source, "sourceResource": src, "target": tgt_name,
                "targetResource": tgt}  # fmt: skip
        out.append(("Rule", "rules", name, spec))
    return out


class _AppServer(http.server.ThreadingHTTPServer):
    """The edge's local app (``/hello``) and the cloud's REST target (``/sensor``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], node: str) -> None:
        self.node = node
        super().__init__(address, _AppHandler)


class _AppHandler(http.server.BaseHTTPRequestHandler):
    server: _AppServer

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/sensor"):
            reading = body[:120].decode(errors="replace")
            node = self.headers.get("NodeName", "?")
            log.info("demo: REST target got a reading from %s: %s", node, reading)
            out = b"thanks"
        else:
            out = f"{self.server.node}'s local app: {self.command} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("demo app: " + format, *args)
