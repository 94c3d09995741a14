"""Hide Secret values wherever a message is shown to a person.

Input: a message as JSON (``beehive.codec.to_json``); output: a copy in which every
Secret object in the content, at any depth (a Secret, a list of them, a reply
wrapping one), has its ``data``/``stringData`` values replaced by ``<redacted>``;
keys stay visible. The application hands `redacted` to the hive as its message
redactor (modules/cli.py), so ``beehive debug peek``, ``deadletters`` and
``peek-node`` all show messages through it.
"""

from __future__ import annotations

from typing import Any

REDACTED = "<redacted>"
_SECRET_FIELDS = ("data", "stringData")


def redacted(message: dict[str, Any]) -> dict[str, Any]:
    """`message` with its Secret values hidden (the input is not changed)."""
    if "content" not in message:
        return message
    return {**message, "content": redacted_content(message["content"])}


def redacted_content(value: Any) -> Any:
    """A copy of a JSON value with every Secret object's values hidden."""
    if isinstance(value, list):
        return [redacted_content(item) for item in value]
    if not isinstance(value, dict):
        return value
    shown = {key: redacted_content(item) for key, item in value.items()}
    if value.get("kind") == "Secret":
        for field in _SECRET_FIELDS:
            values = value.get(field)
            if isinstance(values, dict):
                shown[field] = {key: REDACTED for key in values}
            elif values is not None:
                shown[field] = REDACTED
    return shown
