"""Patch application: JSON merge patch, strategic merge patch and JSON patch.

Input: the stored object and the decoded patch document; output: a new object (the
stored one is never mutated). Errors are `ApiError`s shaped as the API server's
(k8s.io/apiserver/pkg/endpoints/handlers/patch.go): a JSON patch that does not apply is
a 422, a malformed patch a 400.

Strategic merge patch follows k8s.io/apimachinery/pkg/util/strategicpatch for the lists
this project touches: lists whose field has a known merge key (containers by `name`,
conditions by `type`, ...) merge element-wise, `$patch: delete|replace` directives are
honoured, and other lists are replaced, as in a merge patch.
"""

from __future__ import annotations

import copy
from typing import Any

from modules.kubeapi import errors

JsonObj = dict[str, Any]

# patchMergeKey of the list fields in the core types that clients patch.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "addresses": "type",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "taints": "key",
}
# Lists of scalars merged as sets (patchStrategy "merge" without a key).
SET_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch over maps and the lists in `MERGE_KEYS`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_keyed_list(result.get(key), value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in SET_LISTS:
            old = result.get(key) or []
            result[key] = list(old) + [v for v in value if v not in old]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_keyed_list(target: Any, patch: list[Any], key: str) -> list[Any]:
    items = list(target) if isinstance(target, list) else []
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            raise errors.bad_request(f"map: {element!r} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, old in enumerate(items)
                if isinstance(old, dict) and old.get(key) == element[key]
            ),
            None,
        )
        if element.get("$patch") == "delete":
            if index is not None:
                del items[index]
        elif index is None:
            items.append(strategic_merge_patch({}, element))
        else:
            items[index] = strategic_merge_patch(items[index], element)
    return items


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch; a failing operation is a 422 as on the API server."""
    if not isinstance(operations, list):
        raise errors.bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise errors.unprocessable(
                "the server rejected our request due to an error in our request"
            )
        doc = _apply_op(doc, op)
    return doc


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.unprocessable(f"invalid JSON pointer: {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise errors.unprocessable(
                "the server rejected our request due to an error in our request"
            )
    return doc


def _apply_op(doc: Any, op: JsonObj) -> Any:
    kind, parts = op.get("op"), _pointer(op["path"])
    if kind == "test":
        if _resolve(doc, parts) != op.get("value"):
            raise errors.unprocessable(f"testing value {op['path']} failed: test failed")
        return doc
    if kind in ("move", "copy"):
        value = copy.deepcopy(_resolve(doc, _pointer(str(op.get("from", "")))))
        if kind == "move":
            doc = _remove(doc, _pointer(str(op.get("from", ""))))
        return _add(doc, parts, value)
    if kind == "remove":
        return _remove(doc, parts)
    if kind == "replace":
        _resolve(doc, parts)
        doc = _remove(doc, parts)
        return _add(doc, parts, copy.deepcopy(op.get("value")))
    if kind == "add":
        return _add(doc, parts, copy.deepcopy(op.get("value")))
    raise errors.unprocessable(f"Unexpected kind: {kind}")


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _resolve(doc, parts[:-1]), parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and last == "-":
        parent.append(value)
    elif isinstance(parent, list) and last.isdigit() and int(last) <= len(parent):
        parent.insert(int(last), value)
    else:
        raise errors.unprocessable(
            f"add operation does not apply: doc is missing path: {'/'.join(parts)}"
        )
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    _resolve(doc, parts)
    parent, last = _resolve(doc, parts[:-1]), parts[-1]
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return doc


def apply(content_type: str, target: JsonObj, patch: Any, *, custom: bool) -> Any:
    """Apply a patch of the given media type; custom resources refuse strategic merge."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json-patch+json":
        return json_patch(target, patch)
    if media == "application/merge-patch+json":
        return merge_patch(target, patch)
    if media == "application/strategic-merge-patch+json" and not custom:
        return strategic_merge_patch(target, patch)
    raise errors.ApiError(
        415,
        errors.UNSUPPORTED_MEDIA,
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json"
        + ("" if custom else ", application/strategic-merge-patch+json"),
    )
