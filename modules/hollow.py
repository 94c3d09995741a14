"""What a hollow edge node reports: its Node, its status, its pods' status.

There is no container runtime: the node reports itself Ready and a pod Running
once it is stored, as KubeEdge's edgemark hollow node does. Shapes follow
KubeEdge's edged: the Node it registers, ``NodeStatusRequest`` and
``PodStatusRequest`` (cloud/pkg/edgecontroller/types/types.go; no JSON tags, so
the keys are ``UID``, ``Status``, ``Name``, ``ExtendResources``), sent as edged sends
its requests: source ``edged``, group ``meta``.
"""

from __future__ import annotations

import collections
import datetime
import uuid

from beehive.message import JsonValue, Message, Operation
from modules import contract

SOURCE = "edged"  # the edge module that owns nodes and pods in KubeEdge
_CAPACITY: dict[str, JsonValue] = {"cpu": "2", "memory": "2Gi", "pods": "110"}


_BOOT_ID = str(uuid.uuid4())  # one per process, as a machine's boot id
# When the hollow nodes became Ready, as their conditions' lastTransitionTime: a real
# node keeps it until the condition changes (the heartbeat alone moves).
_READY_SINCE = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_status(node_id: str) -> dict[str, JsonValue]:
    """A Ready NodeStatus for a hollow node."""
    now = _now()
    return {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "EdgeReady",
             "message": "edge is posting ready status", "lastHeartbeatTime": now,
             "lastTransitionTime": _READY_SINCE},
        ],
        "addresses": [{"type": "Hostname", "address": node_id}],
        "capacity": dict(_CAPACITY),
        "allocatable": dict(_CAPACITY),
        "nodeInfo": {"kubeletVersion": "v1.30.0-kubeedge-hollow", "operatingSystem": "linux",
                     "architecture": "amd64", "containerRuntimeVersion": "none://hollow",
                     "kubeProxyVersion": "", "kernelVersion": "", "osImage": "hollow",
                     "machineID": node_id, "systemUUID": node_id, "bootID": _BOOT_ID},
    }  # fmt: skip


def node_object(node_id: str) -> dict[str, JsonValue]:
    """The Node an edge registers, labelled as an edge node."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_id,
            "labels": {contract.EDGE_NODE_LABEL: "", "kubernetes.io/hostname": node_id},
        },
        "spec": {},
        "status": node_status(node_id),
    }


def register_message(node_id: str) -> Message:
    """``insert`` on ``null/node/<node>`` with the Node: edgecontroller creates it."""
    return Message.new(
        source=SOURCE,
        group=contract.GROUP_META,
        operation=Operation.INSERT,
        resource=f"{contract.NULL_NAMESPACE}/{contract.NODE}/{node_id}",
        content=node_object(node_id),
    )


def node_status_message(node_id: str, uid: str = "") -> Message:
    """``update`` on ``null/nodestatus/<node>``: edgecontroller patches the Node's status."""
    content: JsonValue = {"UID": uid, "Status": node_status(node_id), "ExtendResources": None}
    return Message.new(
        source=SOURCE,
        group=contract.GROUP_META,
        operation=Operation.UPDATE,
        resource=f"{contract.NULL_NAMESPACE}/{contract.NODESTATUS}/{node_id}",
        content=content,
    )


def stopping(pod: JsonValue) -> bool:
    """The pod is being deleted: a kubelet would stop it and report it stopped."""
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    return isinstance(metadata, dict) and bool(metadata.get("deletionTimestamp"))


def pod_status_message(pod: JsonValue) -> Message | None:
    """``update`` on ``<ns>/podstatus/<name>``: the stored pod reported Running, or,
    once it is being deleted, stopped (every container terminated), which lets the
    cloud finish the deletion."""
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    if not isinstance(metadata, dict):
        return None
    name, namespace, uid = metadata.get("name"), metadata.get("namespace"), metadata.get("uid")
    if not (isinstance(name, str) and isinstance(namespace, str)):
        return None
    now = _now()
    status: JsonValue = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        "startTime": now,
    }
    if stopping(pod):
        status = {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": _stopped_containers(pod),
        }
    return Message.new(
        source=SOURCE,
        group=contract.GROUP_META,
        operation=Operation.UPDATE,
        resource=f"{namespace}/{contract.PODSTATUS}/{name}",
        content={"UID": uid if isinstance(uid, str) else "", "Name": name, "Status": status},
    )


def _stopped_containers(pod: JsonValue) -> list[JsonValue]:
    spec = pod.get("spec") if isinstance(pod, dict) else None
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        return []
    terminated: JsonValue = {"exitCode": 0, "reason": "Completed", "finishedAt": _now()}
    return [
        {
            "name": c["name"],
            "image": c.get("image") if isinstance(c.get("image"), str) else "",
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"terminated": terminated},
        }
        for c in containers
        if isinstance(c, dict) and isinstance(c.get("name"), str)
    ]


class PodReports:
    """The pod status reports a hollow node owes, each once: Running when a pod is first
    stored, stopped once it is being deleted (metamanager and the fleet alike)."""

    def __init__(self, remember: int = 65_536) -> None:
        self._sent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remember = remember  # reports remembered (the oldest forgotten first)

    def due(self, stored: Message) -> Message | None:
        """The report owed for a message just stored (None: not a pod, or already sent)."""
        if stored.route.operation == Operation.DELETE:
            return None
        if stored.route.resource.split("/")[1:2] != [contract.POD]:
            return None
        report = pod_status_message(stored.content)
        uid = report.content.get("UID") if report and isinstance(report.content, dict) else None
        if report is None or not isinstance(uid, str):
            return None
        key = f"{uid}/stopped" if stopping(stored.content) else uid
        if key in self._sent:
            return None
        self._sent[key] = None
        if len(self._sent) > self._remember:
            self._sent.popitem(last=False)
        return report
