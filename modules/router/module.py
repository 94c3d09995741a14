"""The router module: rules between the cloud's REST endpoint and the edges' buses.

Input: its mailbox: Rules and RuleEndpoints from edgecontroller (operation
``insert``/``update``/``delete`` on ``rule/<name>`` / ``ruleendpoint/<name>``, the
object as content, as KubeEdge's message layer hands them to its router); from
cloudhub, the edges' ``user``-group messages (replies to routed requests, uploads
from a rule's source topic) and the session notices ``connected``/``disconnected``.
And HTTP requests on ``address:port`` (``/<node>/<namespace>/<path>``), served on
threads "beehive-router-http-*".

Output: messages to cloudhub for the node (`modules.userbus`), the HTTP answer (the
edge's reply; 404 unknown node or no rule, 503 node disconnected, 413 body too large,
504 no reply within rest_timeout), POSTs of uploads to REST targets (on the
"beehive-router-post" workers), and each Rule's status written through the API on
the thread "beehive-router-status". As cloud/pkg/router (listener/http.go,
provider/*); the rule logic is `modules.router.rules`.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from kubernetes import client

from beehive import errors as beehive_errors
from beehive.message import Message, Operation
from beehive.module import Module
from modules import contract, userbus
from modules.router import forward, rules
from modules.router.settings import RouterSettings

log = logging.getLogger("modules.router")

_STATUS_ATTEMPTS = 5  # writes of one Rule's status in a row that lost a race, at most

# Seconds a node's owner and a replica's router URL, as the Leases said, are used for calls
# passed on to the replica serving the node (a failover moves nodes within seconds).
LEASES_KEPT = 2.0


class _Waiter:
    """One REST request waiting for the edge's reply."""

    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: Message | None = None


class Router(Module):
    """KubeEdge's router (see the module docstring)."""

    settings_type = RouterSettings

    def on_start(self) -> None:
        self._settings: RouterSettings = self.settings or RouterSettings()
        self._lock = threading.Lock()  # guards _table, _nodes, _dirty
        self._table = rules.RuleTable()
        self._nodes: dict[str, bool] = {}  # node -> connected, for every node seen
        self._dirty: set[rules.Key] = set()  # rules whose status changed since written
        self._waiters: dict[str, _Waiter] = {}  # REST requests by the routed message's id
        self._stop = threading.Event()
        self._posts = concurrent.futures.ThreadPoolExecutor(
            self._settings.forward_workers, thread_name_prefix="beehive-router-post"
        )
        kube = self.context.services.get("kube")
        self._api = kube.api_client() if kube is not None else None
        self._status_thread = threading.Thread(target=self._write_status, daemon=True,
                                               name="beehive-router-status")  # fmt: skip
        self._status_thread.start()
        self._server = _Server((self._settings.address, self._settings.port), self)
        self._http = threading.Thread(target=self._server.serve_forever, daemon=True,
                                      name="beehive-router-http")  # fmt: skip
        self._http.start()
        self.port = self._server.server_address[1]
        # With several replicas: REST calls for nodes another one serves go to its router
        # (`modules.router.forward`), which needs this one's address to come back here.
        replica: Any = self.context.services.get("replica")
        self._replica = replica
        self._owners = forward.Recent(ttl=LEASES_KEPT)  # node -> its owner; under _lock
        self._peers = forward.Recent(ttl=LEASES_KEPT)  # replica -> its router URL; _lock
        if replica is not None and replica.settings.advertised_host:
            url = forward.url_for(replica.settings.advertised_host, self.port)
            replica.advertise(forward.ANNOTATION, url)
        log.info("router: REST on http://%s:%d/<node>/<namespace>/<path>",
                 self._settings.address, self.port)  # fmt: skip
        self.hive.register_command("router.address", lambda: {"port": self.port})
        self.hive.register_command("router.rules", self.rules_view)

    def on_stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._posts.shutdown(wait=False, cancel_futures=True)
        self._status_thread.join(5)
        if self._api is not None:
            self._api.close()

    def on_message(self, message: Message) -> None:
        """Rules from edgecontroller; replies, uploads and notices from cloudhub."""
        route = message.route
        kind = route.resource.split("/", 1)[0]
        if kind in (contract.RULE, contract.RULEENDPOINT) and isinstance(message.content, dict):
            self._apply(kind, route.operation, message.content)
        elif message.parent_msg_id:
            with self._lock:
                waiter = self._waiters.get(message.parent_msg_id)
            if waiter is not None:
                waiter.reply = message
                waiter.event.set()
        elif route.operation == userbus.UPLOAD:
            self._upload(message)
        elif route.operation in (Operation.CONNECTED, Operation.DISCONNECTED):
            self._session(route.resource, route.operation == Operation.CONNECTED)

    def rules_view(self) -> list[dict[str, Any]]:
        """Admin command ``router.rules``: every rule, its problem and status."""
        with self._lock:
            return [{"rule": f"{r.namespace}/{r.name}", "source": r.source_type,
                     "target": r.target_type, "problem": r.problem,
                     "status": r.status.as_object()}
                    for r in self._table.rules.values()]  # fmt: skip

    # --- rules and sessions (the actor's thread) ---------------------------------------

    def _apply(self, kind: str, operation: str, obj: dict[str, Any]) -> None:
        with self._lock:
            before = self._table.subscriptions()
            changed = self._table.apply(kind, operation, obj)
            after = self._table.subscriptions()
            connected = {n for n, up in self._nodes.items() if up}
        for rule in changed:
            if rule.problem:
                log.warning("rule %s/%s cannot route: %s", rule.namespace, rule.name, rule.problem)
        for node, topic in sorted(after - before):
            if node in connected:
                self._to_hub(userbus.subscription(node, topic, on=True))
        for node, topic in sorted(before - after):
            if node in connected:
                self._to_hub(userbus.subscription(node, topic, on=False))

    def _session(self, resource: str, up: bool) -> None:
        node = resource.split("/")[1] if resource.count("/") >= 1 else ""
        with self._lock:
            self._nodes[node] = up
            topics = sorted(t for n, t in self._table.subscriptions() if n == node)
        if up:  # the edge keeps no subscriptions across restarts: send them again
            for topic in topics:
                self._to_hub(userbus.subscription(node, topic, on=True))

    def _to_hub(self, message: Message) -> bool:
        try:
            self.hive.send(self._settings.hub_module, message)
            return True
        except beehive_errors.BeehiveError as exc:
            log.error("router: cannot pass %s to %s: %s",
                      message.route.resource, self._settings.hub_module, exc)  # fmt: skip
            return False

    # --- edge -> cloud ------------------------------------------------------------------

    def _upload(self, message: Message) -> None:
        parts = message.route.resource.split("/", 2)
        if len(parts) < 3 or parts[0] != "node":
            return
        node, topic = parts[1], parts[2]
        with self._lock:
            routes = self._table.match_upload(node, topic)
        if not routes:
            log.debug("router: no rule for topic %s at node %s", topic, node)
        content = message.content
        body = content.encode() if isinstance(content, str) else str(content).encode()
        for found in routes:
            self._posts.submit(self._post, found.rule, node, topic, body)

    def _post(self, rule: rules.Rule, node: str, topic: str, body: bytes) -> None:
        url = rule.target_resource.get("resource", "")
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "NodeName": node})  # fmt: skip
        error = ""
        try:
            with urllib.request.urlopen(request, timeout=self._settings.target_timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            error = f"POST {url}: {exc.code}"
        except (OSError, ValueError) as exc:  # refused, timed out, bad URL
            error = f"POST {url}: {exc}"
        self._count(rule, error)
        if error:
            log.warning("routed topic %s at %s -> %s: failed: %s", topic, node, url, error)
        else:
            log.info("routed topic %s at %s -> POST %s (%d bytes)", topic, node, url, len(body))

    # --- cloud REST -> edge (HTTP threads) ----------------------------------------------

    def handle_rest(self, method: str, path: str, header: dict[str, list[str]],
                    body: bytes) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        """Route one REST request and wait for the edge's reply: (status, headers, body)."""
        with self._lock:
            try:
                found = self._table.match_rest(urllib.parse.unquote(path.split("?", 1)[0]))
            except rules.RuleError as exc:
                return exc.status, {}, str(exc).encode()
            state = self._nodes.get(found.node)
        rule = found.rule
        if not state:  # not served here: another replica may serve it
            passed = self._pass_on(found.node, method, path, header, body)
            if passed is not None:
                return passed
        if state is None:
            return 404, {}, f"unknown node {found.node}".encode()
        if not state:
            self._count(rule, f"node {found.node} is disconnected")
            return 503, {}, f"node {found.node} is disconnected".encode()
        try:
            request = self._request(found, method, header, body)
        except rules.RuleError as exc:
            self._count(rule, str(exc))
            return exc.status, {}, str(exc).encode()
        return self._round_trip(found, request)

    def _pass_on(self, node: str, method: str, path: str, header: dict[str, list[str]],
                 body: bytes) -> forward.Answer | None:  # fmt: skip
        """The answer of the replica serving `node`, through its router; None to answer
        here (see `modules.router.forward`)."""
        replica = self._replica
        if replica is None or forward.passed_on(header):
            return None
        try:
            owner = self._recall(self._owners, node, lambda: replica.owner_of(node))
            if not owner or owner == replica.identity:
                return None
            peer = self._recall(
                self._peers, owner, lambda: replica.peer_annotation(owner, forward.ANNOTATION)
            )
        except forward.NO_ANSWER as exc:
            log.warning("router: cannot tell which replica serves node %s: %s", node, exc)
            return None
        if not peer:
            return None
        answer = forward.send(peer, via=replica.identity, method=method, path=path,
                              header=header, body=body,
                              timeout=self._settings.rest_timeout + 5)  # fmt: skip
        if answer[0] == 502:  # the peer did not answer: read the Leases again next time
            with self._lock:
                self._owners.forget(node)
                self._peers.forget(owner)
        log.info("routed %s %s for node %s through replica %s: %d", method, path, node,
                 owner, answer[0])  # fmt: skip
        return answer

    def _recall(self, recent: forward.Recent, key: str, read: Callable[[], str]) -> str:
        """`key`'s value as read within `LEASES_KEPT` seconds, else `read()` now."""
        with self._lock:
            found = recent.get(key, time.monotonic())
        if found is None:
            found = read()
            with self._lock:
                recent.put(key, found, time.monotonic())
        return found

    def _request(self, found: rules.Route, method: str, header: dict[str, list[str]],
                 body: bytes) -> Message:  # fmt: skip
        rule = found.rule
        if rule.target_type == rules.EVENTBUS:
            return userbus.publish(found.node, rules.publish_topic(rule, found.param), body)
        return userbus.service_request(found.node, rules.service_path(rule, found.param),
                                       method=method, header=header, body=body)  # fmt: skip

    def _round_trip(
        self, found: rules.Route, request: Message
    ) -> tuple[int, dict[str, str], bytes]:
        waiter = _Waiter()
        with self._lock:
            if len(self._waiters) >= self._settings.max_pending:
                return 503, {}, b"too many requests waiting for edges"
            self._waiters[request.msg_id] = waiter
        try:
            if not self._to_hub(request):
                return 503, {}, b"cloudhub is not running"
            if not waiter.event.wait(self._settings.rest_timeout) or waiter.reply is None:
                error = f"no reply from node {found.node} within {self._settings.rest_timeout:g} s"
                self._count(found.rule, error)
                log.warning("routed %s to %s: %s", request.route.resource, found.node, error)
                return 504, {}, error.encode()
        finally:
            with self._lock:
                self._waiters.pop(request.msg_id, None)
        return self._answer(found, request, waiter.reply)

    def _answer(self, found: rules.Route, request: Message,
                reply: Message) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        try:
            status, headers, body = userbus.parse_reply(reply.content)
        except ValueError as exc:
            self._count(found.rule, str(exc))
            return 502, {}, str(exc).encode()
        self._count(found.rule, "" if status < 500 else f"the edge answered {status}")
        log.info("routed %s %s -> node %s: %d (%d bytes back)", request.route.operation,
                 request.route.resource, found.node, status, len(body))  # fmt: skip
        return status, headers, body

    # --- rule status --------------------------------------------------------------------

    def _count(self, rule: rules.Rule, error: str) -> None:
        with self._lock:
            self._table.record(rule, error=error)
            self._dirty.add(rule.key)

    def _write_status(self) -> None:
        """Every status_interval, what each Rule counted here since its last write is
        added to the Rule's status in the API (a merge patch: Rules have no status
        subresource in KubeEdge's CRD). Several routers (replicas) count for one Rule,
        so each adds to what the Rule holds, a compare-and-swap on its resourceVersion,
        rather than writing its own totals over the others'. Without an API: nothing."""
        if self._api is None:
            return
        while not self._stop.wait(self._settings.status_interval):
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                found = [(k, self._table.rules[k].unwritten.copy())
                         for k in dirty if k in self._table.rules]  # fmt: skip
            for key, counted in found:
                written = self._add_status(key, counted)
                with self._lock:
                    rule = self._table.rules.get(key)
                    if rule is None:
                        continue
                    if written is None:
                        self._dirty.add(key)  # the next round tries again
                        continue
                    rule.unwritten.minus(counted)
                    rule.status = written.plus(rule.unwritten)

    def _add_status(self, key: rules.Key, counted: rules.Status) -> rules.Status | None:
        """Add `counted` to the Rule's status in the API; the status written (`counted`
        when the Rule is gone), or None when it could not be written."""
        namespace, name = key
        api: Any = client.CustomObjectsApi(self._api)
        where = ("rules.kubeedge.io", "v1", namespace, "rules", name)
        for _ in range(_STATUS_ATTEMPTS):
            try:
                rule = api.get_namespaced_custom_object(*where)
                status = rules.status_of(rule).plus(counted)
                version = rule["metadata"]["resourceVersion"]  # the swap's condition
                body = {"metadata": {"resourceVersion": version}, "status": status.as_object()}
                api.patch_namespaced_custom_object(*where, body)
                return status
            except client.ApiException as exc:
                if exc.status == 409:  # another router wrote in between: read again
                    continue
                if exc.status == 404:  # the Rule is gone: nothing to count on
                    return counted
                log.warning("rule %s/%s: status not written: %s", namespace, name, exc.status)
                return None
            except OSError as exc:
                log.warning("rule %s/%s: status not written: %s", namespace, name, exc)
                return None
        log.warning("rule %s/%s: status not written: %d writes in a row lost a race",
                    namespace, name, _STATUS_ATTEMPTS)  # fmt: skip
        return None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        super().__init__(address, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        router = self.server.router
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(400, {}, b"bad Content-Length")
            return
        if length > router._settings.max_body:
            self.close_connection = True
            self._send(413, {}, f"body over {router._settings.max_body} bytes".encode())
            return
        body = self.rfile.read(length) if length else b""
        header: dict[str, list[str]] = {}
        for key, value in self.headers.items():
            header.setdefault(key, []).append(value)
        status, headers, out = router.handle_rest(self.command, self.path, header, body)
        self._send(status, headers, out)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("router http: " + format, *args)
