"""Message builders for the cloudhub queue tests."""

from __future__ import annotations

from beehive.message import JsonValue, Message


def obj(
    uid: str = "u1",
    rv: str = "1",
    *,
    operation: str = "update",
    node: str = "n1",
    kind: str = "pod",
    name: str = "",
) -> Message:
    """An edgecontroller message carrying an object with `uid` at `rv`."""
    content: JsonValue = {"metadata": {"uid": uid, "name": name or uid, "resourceVersion": rv}}
    return Message.new(
        source="edgecontroller",
        group="resource",
        operation=operation,
        resource=f"node/{node}/default/{kind}/{name or uid}",
        resource_version=rv,
        content=content,
    )
