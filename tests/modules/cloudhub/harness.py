"""A cloud hive (cloudhub + a scripted edgecontroller) and edge hives, on loopback.

`World` is what the scripted edgecontroller believes each node should have; it
answers cloudhub's ``resync`` from it (contract item 5), replies to configmap
queries, and records everything it receives in the shared `Probe`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket

from beehive import BeehiveError, Hive, Message, Module
from modules import contract, replies
from modules.cloudhub import CloudHub, CloudHubSettings
from modules.edgehub import EdgeHub, EdgeHubSettings
from modules.kube.connection import KubeConnection
from modules.metamanager import MetaManager, MetaManagerSettings
from tests.fakes import Probe, eventually

_rv = itertools.count(100)


def pod(name: str, uid: str, namespace: str = "default", rv: int | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid,
                     "resourceVersion": str(rv if rv is not None else next(_rv))},
        "spec": {"nodeName": "", "containers": [{"name": "c", "image": "i"}]},
    }  # fmt: skip


def object_message(node: str, obj: dict[str, Any], operation: str = "update") -> Message:
    meta = obj["metadata"]
    rtype = obj["kind"].lower()
    return Message.new(
        source=contract.EDGECONTROLLER,
        group=contract.GROUP_RESOURCE,
        operation=operation,
        resource=contract.build_resource(node, meta.get("namespace", ""), rtype, meta["name"]),
        content=obj,
        resource_version=meta["resourceVersion"],
    )


class World:
    """What each node should hold now, as edgecontroller's caches would say."""

    def __init__(self) -> None:
        # held by the scripted controller from its resync snapshot to its ``resynced``:
        # a test's `put` then `send` cannot fall between them (edgecontroller sends
        # both from one thread, contract item 5)
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}  # node -> uid -> object
        self.configmaps: dict[str, dict[str, Any]] = {}  # name -> object, for queries

    def put(self, node: str, obj: dict[str, Any]) -> Message:
        with self.lock:
            self.objects.setdefault(node, {})[obj["metadata"]["uid"]] = obj
        return object_message(node, obj)

    def remove(self, node: str, uid: str) -> Message:
        with self.lock:
            obj = self.objects.get(node, {}).pop(uid)
        return object_message(node, obj, "delete")

    def wanted(self, node: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.objects.get(node, {}).values())


@dataclasses.dataclass(frozen=True)
class ControllerSettings:
    answer_resync: bool = True


class ScriptedController(Module):
    """Stands in for edgecontroller: records, answers resync and configmap queries."""

    settings_type = ControllerSettings

    def on_start(self) -> None:
        self.probe: Probe = self.context.services["probe"]
        self.world: World = self.context.services["world"]

    def on_message(self, message: Message) -> None:
        self.probe.record(self.module_name, message)
        with contextlib.suppress(BeehiveError):  # cloudhub stopped first at teardown
            self._answer(message)

    def _answer(self, message: Message) -> None:
        res = contract.parse_resource(message.route.resource)
        if message.route.operation == contract.RESYNC and self.settings.answer_resync:
            with self.world.lock:
                self._answer_resync(res.node)
        elif message.route.operation == "query" and res.type == contract.CONFIGMAP:
            self._answer_query(message, res.name)

    def _answer_resync(self, node: str) -> None:
        wanted = self.world.wanted(node)
        for obj in wanted:
            self.hive.send(contract.CLOUDHUB, object_message(node, obj))
        done = Message.new(source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE,
                           operation=contract.RESYNCED, resource=f"node/{node}",
                           content={"uids": [o["metadata"]["uid"] for o in wanted]})  # fmt: skip
        self.hive.send(contract.CLOUDHUB, done)

    def _answer_query(self, message: Message, name: str) -> None:
        found = self.world.configmaps.get(name)
        reply = (
            replies.response(message, found)
            if found
            else replies.failure(
                message, replies.status(404, "not found"), rtype=contract.CONFIGMAP
            )
        )
        self.hive.send(contract.CLOUDHUB, reply)


def start_cloud(
    make_hive: Callable[..., Hive],
    probe: Probe,
    world: World,
    *,
    kube: Any = None,
    controller: ControllerSettings | None = None,
    services: dict[str, Any] | None = None,
    **settings: Any,
) -> tuple[Hive, int]:
    """A started cloud hive and cloudhub's port (`services` added to the hive's)."""
    hive = make_hive()
    services = {"probe": probe, "world": world, **(services or {})}
    if kube is not None:
        services["kube"] = KubeConnection(kube.kubeconfig_path)
    hive.add(contract.EDGECONTROLLER, ScriptedController, services=services,
             settings=controller or ControllerSettings())  # fmt: skip
    settings.setdefault("port", 0)
    settings.setdefault("tick_interval", 0.05)
    hive.add(contract.CLOUDHUB, CloudHub, settings=CloudHubSettings(**settings), services=services)
    hive.start()
    assert eventually(lambda: "cloudhub.address" in hive.commands)
    return hive, hive.commands["cloudhub.address"]()["port"]


def start_edge(
    make_hive: Callable[..., Hive], port: int, node: str, db: Path, **settings: Any
) -> Hive:
    """A started edge hive (metamanager + edgehub) for one node."""
    hive = make_hive()
    hive.add(contract.METAMANAGER, MetaManager,
             settings=MetaManagerSettings(db_path=str(db), report_pod_status=False))  # fmt: skip
    defaults: dict[str, Any] = {"server": f"127.0.0.1:{port}", "node_name": node,
                                "reconnect_initial": 0.02, "reconnect_max": 0.1}  # fmt: skip
    hive.add(contract.EDGEHUB, EdgeHub, settings=EdgeHubSettings(**(defaults | settings)))
    hive.start()
    return hive


def stored(edge: Hive) -> dict[str, int]:
    """name -> resourceVersion of what the edge's store holds (empty until it is up)."""
    command = edge.commands.get("metamanager.store")
    return {o["name"]: o["resource_version"] for o in command()} if command else {}


def node_row(cloud: Hive, node: str) -> dict[str, Any]:
    rows = cloud.commands["cloudhub.nodes"](node=node)
    return rows[0] if rows else {}


def operations(probe: Probe, node: str) -> list[str]:
    """Operations edgecontroller received about a node, in order."""
    prefix = f"node/{node}"
    return [m.route.operation for m in probe.messages(contract.EDGECONTROLLER)
            if m.route.resource == prefix or m.route.resource.startswith(prefix + "/")]  # fmt: skip


def delivers_a_pod(cloud: Hive, world: World, edge: RawEdge, rv: int) -> None:
    """A new pod for `edge`'s node reaches it, and its ack is counted (cloudhub still
    serves that node, whatever else the test put it through)."""
    cloud.send("cloudhub", world.put(edge.node, pod("web", "uid-web", rv=rv)))
    frame = edge.recv()
    assert frame["route"]["resource"].endswith("pod/web")
    edge.ack(frame)
    assert eventually(lambda: node_row(cloud, edge.node)["acked"] == 1)


class RawEdge:
    """A bare websocket-client edge for protocol-level tests (no acks unless asked)."""

    def __init__(self, port: int, node: str, *, project: str = "p") -> None:
        self.node = node
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/{project}/{node}/events",
            header=[f"node_id: {node}", f"project_id: {project}"],
            timeout=3,
        )

    def send(self, operation: str, resource: str, content: Any = None, **header: Any) -> str:
        msg_id = header.pop("msg_id", None) or Message.new().msg_id
        frame = {"header": {"msg_id": msg_id, "timestamp": 1, **header},
                 "route": {"source": "edged", "group": "resource", "operation": operation,
                           "resource": resource}, "content": content}  # fmt: skip
        self.ws.send(json.dumps(frame))
        return str(msg_id)

    def recv(self) -> dict[str, Any]:
        return dict(json.loads(self.ws.recv()))

    def ack(self, frame: dict[str, Any]) -> None:
        self.send("response", frame["route"]["resource"], "OK",
                  parent_msg_id=frame["header"]["msg_id"])  # fmt: skip

    def close_status(self) -> tuple[int, str]:
        """Read until the server closes; its close code and reason."""
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big"), data[2:].decode()

    def close(self) -> None:
        try:
            self.ws.close(timeout=0.5)
        finally:
            self.ws.shutdown()  # close() skips it once the peer has closed
