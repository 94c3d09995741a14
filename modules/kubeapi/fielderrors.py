"""Field errors as k8s.io/apimachinery/pkg/util/validation/field renders them.

The per-kind rules (`kinds.py`, `certificates.py`, `tokens.py`) collect `Cause`s with these
helpers and raise them together as one 422 Invalid (`raise_if_any`), whose message and
`details.causes` read like the real server's: `spec.x: Required value`, `spec.y: Invalid
value: "v": why`, `spec.z: Unsupported value: "v": supported values: "a", "b"`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from modules.kubeapi import errors

Cause = tuple[str, str, str]  # (field path, cause type, message), as errors.invalid takes


def go_value(value: Any) -> str:
    """A value as field.Error prints it: %v for numbers and booleans, %q for strings;
    anything else as JSON (byte strings as their base64 string, nil as null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return json.dumps(base64.b64encode(value).decode())
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def required(field: str, detail: str = "") -> Cause:
    return (field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def invalid(field: str, value: Any, detail: str) -> Cause:
    return (field, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {detail}")


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    allowed = ", ".join(json.dumps(s) for s in supported)
    message = f"Unsupported value: {go_value(value)}: supported values: {allowed}"
    return (field, "FieldValueNotSupported", message)


def forbidden(field: str, detail: str) -> Cause:
    return (field, "FieldValueForbidden", f"Forbidden: {detail}")


def duplicate(field: str, value: Any) -> Cause:
    return (field, "FieldValueDuplicate", f"Duplicate value: {go_value(value)}")


def raise_if_any(kind: str, group: str, name: str, causes: list[Cause]) -> None:
    """Raise a 422 Invalid for `kind`/`name` when there are causes."""
    if causes:
        raise errors.invalid(kind, group, name, causes)
