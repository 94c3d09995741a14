"""Helpers for edgecontroller tests: the recorded cloudhub side and object manifests."""

from __future__ import annotations

import json
from typing import Any

from beehive import Hive, Message
from modules import contract, replies
from tests.fakes import Probe, eventually
from tests.kube_fixtures import KubeTestCluster, delete_if_present, manifest, unique

WAIT = 10.0  # seconds any single expectation may take (generous: CI machines are small)


def body(message: Message) -> Any:
    """A message's content, typed Any for assertions."""
    return message.content


def failure(reply: Message) -> str:
    """The error a reply reports ("" for a success), after checking that it is routed as
    KubeEdge's cloudcore routes replies (or edgecore would drop it)."""
    route = reply.route
    assert (route.source, route.group, route.operation) == (
        contract.EDGECONTROLLER,
        contract.GROUP_RESOURCE,
        "response",
    ), route
    return replies.error_text(reply) or ""


def raw(method: Any, *args: Any) -> Any:
    """Call a read method of the typed client and return the plain JSON object."""
    return json.loads(method(*args, _preload_content=False).data)


def edge_node(name: str, *, edge: bool = True) -> Any:
    labels = {contract.EDGE_NODE_LABEL: ""} if edge else {"role": "cloud"}
    return manifest({"metadata": {"name": name, "labels": labels}})


def pod(name: str, node: str = "", **spec: Any) -> Any:
    body: dict[str, Any] = {
        "metadata": {"name": name, "labels": {"app": "t"}},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}], **spec},
    }
    if node:
        body["spec"]["nodeName"] = node
    return manifest(body)


def configmap(name: str, **data: str) -> Any:
    return manifest({"metadata": {"name": name}, "data": data})


def secret(name: str, **data: str) -> Any:
    return manifest({"metadata": {"name": name}, "stringData": data})


def env_from(configmaps: tuple[str, ...] = (), secrets: tuple[str, ...] = ()) -> Any:
    refs = [{"configMapRef": {"name": n}} for n in configmaps]
    refs += [{"secretRef": {"name": n}} for n in secrets]
    return [{"name": "main", "image": "registry.invalid/app:1", "envFrom": refs}]


class Cloud:
    """The hive under test, what reached the recording cloudhub, and cleanup of nodes."""

    def __init__(self, hive: Hive, probe: Probe, kube: KubeTestCluster) -> None:
        self.hive = hive
        self.probe = probe
        self.kube = kube
        self.nodes: list[str] = []  # cluster-scoped objects to delete afterwards

    # --- setup ------------------------------------------------------------------------

    def wait_synced(self) -> None:
        def synced() -> bool:
            command = self.hive.commands.get("watches")  # registered in on_start
            if command is None:
                return False
            watches = command()["watches"]
            return all(w["synced"] for w in watches)

        assert eventually(synced, WAIT), "watches not synced"

    def node(self, prefix: str = "edge", *, edge: bool = True) -> str:
        """Create a node (cluster-scoped, unique name, deleted at teardown)."""
        name = unique(prefix)
        self.nodes.append(name)
        self.kube.core.create_node(edge_node(name, edge=edge))
        return name

    def close(self) -> None:
        for name in self.nodes:
            delete_if_present(self.kube.core.delete_node, name)
            leases = self.kube.coordination
            delete_if_present(leases.delete_namespaced_lease, name, contract.LEASE_NAMESPACE)

    # --- what cloudhub got ------------------------------------------------------------

    def sent(self) -> list[Message]:
        return self.probe.messages(contract.CLOUDHUB)

    def ops(self, node: str, *, rtype: str = "") -> list[tuple[str, str]]:
        """(operation, resource) of what was sent for `node` (not replies), maybe of one type."""
        prefix = f"node/{node}/"
        found = []
        for m in self.sent():
            resource = m.route.resource
            if m.parent_msg_id:
                continue
            if resource.startswith(prefix) or resource == f"node/{node}":
                parsed = contract.parse_resource(resource)
                if not rtype or parsed.type == rtype:
                    found.append((m.route.operation, resource))
        return found

    def deployed(self, namespace: str, name: str, node: str) -> Any:
        """Create a pod bound to `node` and wait until its insert reached cloudhub."""
        created = self.kube.core.create_namespaced_pod(namespace, pod(name, node))
        self.wait_ops(node, [("insert", f"node/{node}/{namespace}/pod/{name}")], rtype="pod")
        return created

    def wait_ops(self, node: str, expected: list[tuple[str, str]], *, rtype: str = "") -> None:
        """Wait until `node`'s messages (of `rtype`) are exactly `expected`, in order."""
        ok = self.probe.wait_for(lambda: self.ops(node, rtype=rtype) == expected, WAIT)
        assert ok, f"expected {expected}, got {self.ops(node, rtype=rtype)}"

    def last(self, resource: str, operation: str = "") -> Message:
        msgs = [
            m
            for m in self.sent()
            if m.route.resource == resource and operation in ("", m.route.operation)
        ]
        assert msgs, f"nothing sent for {resource}"
        return msgs[-1]

    # --- as cloudhub: send to edgecontroller and wait for the reply --------------------

    def report(self, node: str, operation: str, tail: str, content: Any) -> Message:
        """Send what `node` reported (resource ``node/<node>/<tail>``); the reply."""
        request = Message.new(
            source="edged",
            group=contract.GROUP_META,
            operation=operation,
            resource=f"node/{node}/{tail}" if tail else f"node/{node}",
            content=content,
        )
        self.hive.send(contract.EDGECONTROLLER, request)
        ok = self.probe.wait_for(lambda: self._reply(request) is not None, WAIT)
        assert ok, f"no reply to {operation} {request.route.resource}"
        reply = self._reply(request)
        assert reply is not None
        return reply

    def send(self, node: str, operation: str, tail: str, content: Any) -> str:
        """Send what `node` reported without waiting (events and rule status get no
        reply); the message id."""
        request = Message.new(source="edged", group=contract.GROUP_META, operation=operation,
                              resource=f"node/{node}/{tail}", content=content)  # fmt: skip
        self.hive.send(contract.EDGECONTROLLER, request)
        return request.msg_id

    def notice(self, node: str, operation: str, **content: str) -> None:
        """A session notice or resync request from cloudhub (contract items 4 and 5)."""
        message = Message.new(
            source=contract.CLOUDHUB,
            group=contract.GROUP_RESOURCE,
            operation=operation,
            resource=contract.build_resource(node),
            content={"event_type": operation, "client_id": node, **content},
        )
        self.hive.send(contract.EDGECONTROLLER, message)

    def _reply(self, request: Message) -> Message | None:
        return next((m for m in self.sent() if m.parent_msg_id == request.msg_id), None)
