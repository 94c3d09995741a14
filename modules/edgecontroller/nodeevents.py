"""The edge nodes' Events, from cloudhub's session notices (no I/O).

Input: a notice of contract item 4 (``connected``, ``disconnected``, ``refused``,
``behind`` on ``node/<node>``, with its reason and details), from edgecontroller's
module thread, and the Node as the node watch has it (or None); output: the
`Occurrence` the module's `EventRecorder` (`modules.kube.recorder`) writes, or None.
What an operator reads with ``kubectl describe node``:

- ``EdgeConnected`` (Normal): a session opened on this replica;
- ``EdgeDisconnected``: Normal when the edge closed it or a newer connection of the
  node replaced it; Warning on a keepalive timeout, a full write buffer (the edge did
  not read what it was sent) or a connection that broke; none when the Node was
  deleted or cloudhub is stopping (every node at once, the process going away);
- ``EdgeRefused`` (Warning): over the node limit, a certificate of another node
  (403), a bad request (400); only for a Node that exists (a refused request names any
  node it likes);
- ``EdgeFallingBehind`` (Warning): more than behind_threshold objects wait for it,
  or max_objects overflowed and it is resynced.

The Node's uid when the watch has it, else its name, as the kubelet writes its own
node's Events (``kubectl describe node`` looks for both).
"""

from __future__ import annotations

from typing import Any

from modules import contract
from modules.kube.correlator import NORMAL, WARNING, Occurrence

CONNECTED = "EdgeConnected"
DISCONNECTED = "EdgeDisconnected"
REFUSED = "EdgeRefused"
BEHIND = "EdgeFallingBehind"

NOTICES = frozenset({"connected", "disconnected", contract.REFUSED, contract.BEHIND})

# Why a session ended -> the Event's type and what it says (None: no Event).
_ENDED: dict[str, tuple[str, str] | None] = {
    contract.ENDED_CLOSED: (NORMAL, "closed by the edge"),
    contract.ENDED_REPLACED: (NORMAL, "replaced by a newer connection of the node"),
    contract.ENDED_KEEPALIVE: (WARNING, "keepalive timeout"),
    contract.ENDED_WRITE_BUFFER: (
        WARNING,
        "write buffer full, the edge did not read what it was sent",
    ),
    contract.ENDED_LOST: (WARNING, "the connection broke"),
    contract.ENDED_DELETED: None,
    contract.ENDED_STOPPING: None,
    contract.ENDED_TAKEN_OVER: None,  # the new owner's "connected" says where it went
    contract.ENDED_CLAIM_FAILED: (WARNING, "its ownership could not be recorded"),
}
_REFUSED = {
    contract.REFUSED_NODE_LIMIT: "over the node limit",
    contract.REFUSED_FORBIDDEN: "HTTP 403",  # the details: whose certificate it is
    contract.REFUSED_BAD_REQUEST: "HTTP 400",  # the details: what was wrong
}
_BEHIND = {
    contract.BEHIND_QUEUE: "queue over behind_threshold",
    contract.BEHIND_RESYNC: "resynced, its queue overflowed",
}


def occurrence(
    node: str, operation: str, content: Any, *, found: dict[str, Any] | None, instance: str
) -> Occurrence | None:
    """The Event for a notice about `node` (`found`: its Node, or None; `instance`: this
    replica), or None when it gets none."""
    reason, details = _reason_and_details(content)
    if operation == "connected":
        return _event(node, found, NORMAL, CONNECTED, f"Connected to cloudcore {instance}")
    if operation == "disconnected":
        kind = _ENDED.get(reason, (WARNING, reason or "the session ended"))
        if kind is None:
            return None
        etype, said = kind
        return _event(node, found, etype, DISCONNECTED, _sentence("Disconnected", said, details))
    if operation == contract.REFUSED:
        if found is None:
            return None
        said = _REFUSED.get(reason, reason or "refused")
        return _event(node, found, WARNING, REFUSED, _sentence("Connection refused", said, details))
    if operation == contract.BEHIND:
        said = _BEHIND.get(reason, reason or "behind")
        return _event(node, found, WARNING, BEHIND, _sentence("Falling behind", said, details))
    return None


def _reason_and_details(content: Any) -> tuple[str, str]:
    if not isinstance(content, dict):
        return "", ""
    reason, details = content.get("reason"), content.get("message")
    return (reason if isinstance(reason, str) else "", details if isinstance(details, str) else "")


def _sentence(what: str, why: str, details: str) -> str:
    return f"{what}: {why} ({details})" if details else f"{what}: {why}"


def _event(
    node: str, found: dict[str, Any] | None, etype: str, reason: str, message: str
) -> Occurrence:
    uid = contract.metadata(found).get("uid") if found is not None else None
    return Occurrence(kind="Node", name=node, uid=uid if isinstance(uid, str) and uid else node,
                      type=etype, reason=reason, message=message)  # fmt: skip
