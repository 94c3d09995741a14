"""What a downstream message is, for the delivery queue: ack or not, key, version.

Input: messages cloud modules address to ``node/<id>/...`` (before trimming).
Output: facts `modules.cloudhub.queue` keys, orders and tracks them by.
The ack/no-ack split copies noAckRequired in
cloud/pkg/cloudhub/dispatcher/message_dispatcher.go (notes 4.4).
"""

from __future__ import annotations

from beehive.message import OK, JsonValue, Message, Operation
from modules import contract

# Resource fragments whose messages are sent once, never acked.
_NO_ACK_RESOURCES = (
    "podlist",
    "membership",
    "twin/cloud_updated",
    "serviceaccounttoken",
    "k8s/ca.crt",
)
_NO_ACK_OPERATIONS = frozenset(
    {
        "createvolume",
        "deletevolume",
        "controllerpublishvolume",
        "controllerunpublishvolume",
        "applicationResponse",
    }
)
_NO_ACK_SOURCES = frozenset({"taskmanager", "nodeupgradejobcontroller"})
_NO_ACK_TYPES = frozenset(
    {"lease", "nodepatch", "podpatch", "podstatus", "certificatesigningrequest"}
)


def resource_type(resource: str) -> str:
    """The type token of ``node/<id>/<namespace>/<type>/<name>``, or ""."""
    tokens = resource.split("/")
    return tokens[3] if len(tokens) > 3 else ""


def requires_ack(message: Message, kind: str | None = None) -> bool:
    """Whether the edge must ack this message before it counts as delivered (`kind`:
    its resource type, when the caller has parsed it already).

    A reply to an edge's request (it has a parent) is sent once: edgecore hands it to
    the caller waiting for it and acks it only when metamanager asked (a configmap
    query, not a pod patch), and a resend finds no caller and is dropped unacked, so
    waiting for its ack would resend it forever (KubeEdge acks configmap, secret and
    volume query answers; a lost ack makes its cloudhub resend them until the edge
    disconnects).
    """
    if message.header.parent_msg_id:
        return False
    route = message.route
    resource = route.resource
    for part in _NO_ACK_RESOURCES:  # a loop, not any(): this runs once per message
        if part in resource:
            return False
    if route.operation in _NO_ACK_OPERATIONS or route.group == "user":
        return False
    if route.source in _NO_ACK_SOURCES:
        return False
    if route.operation == Operation.RESPONSE and _is_ok_or_error(message.content):
        return False
    return not (route.source == "edgecontroller" and _is_edgecontroller_no_ack(message, kind))


def _is_ok_or_error(content: JsonValue) -> bool:
    # A Go error value marshals as {} or {"ErrStatus": ...}.
    return content == OK or content == {} or (isinstance(content, dict) and "ErrStatus" in content)


def _is_edgecontroller_no_ack(message: Message, kind: str | None) -> bool:
    if kind is None:
        kind = resource_type(message.route.resource)
    operation = message.route.operation
    if kind == "node":
        return operation != Operation.UPDATE
    return kind in _NO_ACK_TYPES or (kind == "pod" and operation == Operation.RESPONSE)


# One home for these (modules/contract.py); the queue and echo filter read them here.
object_uid = contract.object_uid
resource_version = contract.message_resource_version
parse_rv = contract.resource_version  # KubeEdge compares them as unsigned integers


def is_delete(message: Message) -> bool:
    return message.route.operation == Operation.DELETE
