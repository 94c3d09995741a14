"""Hide secret values in messages shown by `beehive debug peek-node`.

Input: a message as JSON (``beehive.admin.message_json``); output: a copy whose
Secret ``data``/``stringData`` values read ``<redacted>`` (keys stay visible).
"""

from __future__ import annotations

import copy
from typing import Any

REDACTED = "<redacted>"


def redacted(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if not (isinstance(content, dict) and content.get("kind") == "Secret"):
        return message
    shown = copy.deepcopy(message)
    for field in ("data", "stringData"):
        values = shown["content"].get(field)
        if isinstance(values, dict):
            shown["content"][field] = {key: REDACTED for key in values}
    return shown
