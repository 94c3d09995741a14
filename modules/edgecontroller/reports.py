"""The content of edges' reports, checked: what each kind of report must carry.

No I/O. Each function returns what the API call needs or raises `ReportError`,
whose text and code go back to the edge as a failure ``Status`` (`modules.replies`).
"""

from __future__ import annotations

import json
from typing import Any

Obj = dict[str, Any]


class ReportError(Exception):
    """A report refused: the text goes back to the edge in a failure ``Status`` with
    `code` (400: malformed, 403: not this node's to do, 404: no such object)."""

    def __init__(self, text: str, code: int = 400) -> None:
        super().__init__(text)
        self.code = code


def forbidden(text: str) -> ReportError:
    return ReportError(text, 403)


def not_found(text: str) -> ReportError:
    return ReportError(text, 404)


def bound_pod(node: str, namespace: str, name: str, pod: Obj | None) -> Obj:
    """`pod` (as the watch has it), which must exist and be bound to `node`.

    Raises:
        ReportError: 404 when it does not exist, 403 when it is bound elsewhere.
    """
    if pod is None:
        raise not_found(f'pods "{name}" not found')
    if (pod.get("spec") or {}).get("nodeName") != node:
        raise forbidden(f"node {node}: pod {namespace}/{name} is not bound to this node")
    return pod


def node_body(node: str, content: Any) -> Obj:
    if not isinstance(content, dict):
        raise ReportError(f"node {node}: registration needs a Node object")
    name = (content.get("metadata") or {}).get("name")
    if name != node:
        raise forbidden(f"node {node} may not register a node named {name!r}")
    return content


def own(node: str, name: str, what: str) -> None:
    if name and name != node:
        raise forbidden(f"node {node} may not {what} node {name}")


def patch(content: Any) -> Obj:
    """A patch sent as JSON text (as KubeEdge's edge does) or as an object."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError as exc:
            raise ReportError(f"patch is not JSON: {exc}") from None
    if not isinstance(content, dict):
        raise ReportError("patch must be a JSON object")
    return content


def node_metadata(node: str, content: Any) -> tuple[Obj, Obj]:
    """The labels and annotations of a Node an edge sends with ``update``."""
    meta = content.get("metadata") if isinstance(content, dict) else None
    if not isinstance(meta, dict) or meta.get("name") != node:
        raise ReportError(f"node {node}: update needs its own Node object")
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        raise ReportError(f"node {node}: labels and annotations must be objects")
    return labels, annotations


def grace_zero(uid: str) -> Obj:
    """DeleteOptions that end a pod now, and only the pod with `uid` (not one recreated
    under its name): what a kubelet sends once it has stopped the pod."""
    return {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}


def delete_options(content: Any) -> Obj:
    """DeleteOptions, or KubeEdge's legacy form: the pod's UID (then grace 0, that UID only)."""
    if isinstance(content, str) and content:
        return grace_zero(content)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ReportError("pod delete needs DeleteOptions or the pod's UID")
    return content
