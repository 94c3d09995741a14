"""Replies to what edges ask of the cloud, in the shapes KubeEdge's cloudcore sends.

Every reply has the route KubeEdge's edgecontroller gives it (controller/upstream.go):
source ``edgecontroller``, group ``resource``, operation ``response``, the request's
resource and ``parent_msg_id`` = the request's id. edgecore's edgehub hands a cloud
message to its modules only in groups ``resource`` and ``func``: a reply that keeps the
request's route (``edged``, ``meta``) is dropped there, and the edge waits a minute.

The content depends on what was asked, as edgecore's metaclient parses it:

- ``ObjectResp`` (node insert, ``nodepatch``, ``podpatch``, pod insert, Lease, CSR
  insert): ``{"Object": <object or null>, "Err": null | {"ErrStatus": <Status>}}``;
- queries (configmap, secret, PV, PVC, VolumeAttachment, service-account token, node,
  CSR): the object with ``kind`` and ``apiVersion``, or ``{"ErrStatus": <Status>}``;
- reports (node and pod status, node update, pod delete): ``"OK"``, or
  ``{"ErrStatus": <Status>}``.

A failure is a Kubernetes ``Status`` (``status: Failure``, ``reason``, ``code``), as a Go
StatusError marshals, so edged can tell NotFound or AlreadyExists from other errors.
"""

from __future__ import annotations

from typing import Any

from beehive.message import Header, JsonValue, Message, Operation, new_id, now_ms
from modules import contract

# Resource types whose replies are ObjectResp (with `OBJECT_RESP_INSERTS` only on insert).
OBJECT_RESP_TYPES = frozenset({contract.NODEPATCH, contract.PODPATCH, contract.LEASE})
OBJECT_RESP_INSERTS = frozenset({contract.NODE, contract.POD, contract.CSR})

# What edges send without waiting for an answer: never answered (as in KubeEdge).
UNANSWERED_TYPES = frozenset({contract.EVENT, contract.RULESTATUS})
_ANSWERS = frozenset({Operation.RESPONSE, Operation.ERROR})  # never answered themselves


def answered(operation: str, rtype: str) -> bool:
    """Whether an edge's message of this operation and resource type gets a reply (a
    refusal included): not an answer itself, and not what edges send without waiting."""
    return operation not in _ANSWERS and rtype not in UNANSWERED_TYPES


REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status(code: int, message: str, reason: str = "") -> dict[str, JsonValue]:
    """A failure ``Status`` as kube-apiserver writes it (and a StatusError carries)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }


def response(
    request: Message, content: JsonValue, *, source: str = contract.EDGECONTROLLER
) -> Message:
    """The reply to `request` carrying `content`, routed as KubeEdge's cloudcore routes it.

    The header's resourceVersion is the object's, when the content holds one.
    """
    header = Header(new_id(), request.msg_id, now_ms(), _resource_version(content))
    route = request.route._replace(
        source=source, destination="", group=contract.GROUP_RESOURCE,
        operation=Operation.RESPONSE.value,
    )  # fmt: skip
    return Message(header, route, content)


def object_resp(obj: JsonValue) -> dict[str, JsonValue]:
    """``ObjectResp`` for a success."""
    return {"Object": obj, "Err": None}


def is_object_resp(rtype: str, operation: str) -> bool:
    """Whether edgecore parses the reply to this request as an ``ObjectResp``."""
    return rtype in OBJECT_RESP_TYPES or (
        rtype in OBJECT_RESP_INSERTS and operation == Operation.INSERT
    )


def failure(
    request: Message,
    failed: dict[str, JsonValue],
    *,
    rtype: str,
    source: str = contract.EDGECONTROLLER,
) -> Message:
    """The reply telling the edge that `request` (of resource type `rtype`) failed with
    the ``Status`` `failed`, in the shape the edge parses for that request."""
    err: dict[str, JsonValue] = {"ErrStatus": failed}
    if is_object_resp(rtype, request.route.operation):
        return response(request, {"Object": None, "Err": err}, source=source)
    return response(request, err, source=source)


def error_text(reply: Message) -> str | None:
    """What went wrong, when `reply` reports a failure (any shape above, or KubeEdge's
    older ``error`` operation with a text); None for a success."""
    content: Any = reply.content
    if reply.route.operation == Operation.ERROR:
        return _text(content)
    if not isinstance(content, dict):
        return None
    if "Object" in content and "Err" in content:
        content = content["Err"]
        if content is None:
            return None
        if not isinstance(content, dict):
            return _text(content)
    err = content.get("ErrStatus")
    if not isinstance(err, dict):
        return None
    message = err.get("message")
    return message if isinstance(message, str) and message else str(err.get("reason", "failed"))


def _text(content: Any) -> str:
    """`content` as text, bounded; a cloud may send content too deeply nested to show."""
    if isinstance(content, str):
        return content[:1024]
    try:
        return str(content)[:1024]
    except RecursionError:
        return f"({type(content).__name__} nested too deeply to show)"


def object_of(reply: Message) -> Any:
    """The object a successful reply carries (``ObjectResp.Object`` or the content)."""
    content = reply.content
    if isinstance(content, dict) and "Object" in content and "Err" in content:
        return content["Object"]
    return content


def _resource_version(content: JsonValue) -> str:
    if not isinstance(content, dict):
        return ""
    obj = content.get("Object", content) if "Err" in content else content
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return rv if isinstance(rv, str) else ""
