"""Custom resources against their CRD's structural schema (openAPIV3Schema).

As apiextensions-apiserver does on every write: `prune` drops the fields the schema does
not know (unless `x-kubernetes-preserve-unknown-fields`) and the nulls of fields that are
not `nullable`; `validate` then checks `required`, `type` and `enum` and answers field
causes in kube-openapi's words (`spec.size: Required value`, `spec.size: Invalid value:
"string": spec.size in body must be of type integer: "string"`). On an update, a value
unchanged from the stored object is not checked again (validation ratcheting).
apiVersion, kind and metadata are the server's own and never touched here.
"""

from __future__ import annotations

from typing import Any

from modules.kubeapi import fielderrors as fe

JsonObj = dict[str, Any]

_SERVER_FIELDS = ("apiVersion", "kind", "metadata")
_MISSING = object()  # no stored value at this path (a create, or a new field)


def prune(obj: JsonObj, schema: JsonObj) -> JsonObj:
    """`obj` with what `schema` does not allow dropped; a new object, `obj` is not changed."""
    kept = {k: obj[k] for k in _SERVER_FIELDS if k in obj}
    rest = _prune({k: v for k, v in obj.items() if k not in _SERVER_FIELDS}, schema)
    return {**kept, **rest} if isinstance(rest, dict) else kept


def _prune(value: Any, schema: JsonObj) -> Any:
    if isinstance(value, list):
        items = schema.get("items")
        return [_prune(v, items) for v in value] if isinstance(items, dict) else value
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
    out = {}
    for key, sub in value.items():
        sub_schema = properties.get(key, extra if isinstance(extra, dict) else None)
        if sub_schema is None:
            if keep_unknown:
                out[key] = sub
        elif sub is not None:
            out[key] = _prune(sub, sub_schema)
        elif sub_schema.get("nullable"):
            out[key] = None
    return out


def validate(obj: JsonObj, schema: JsonObj, old: JsonObj | None) -> list[fe.Cause]:
    """Causes for a pruned object; `old` is the stored one on an update."""
    body = {k: v for k, v in obj.items() if k not in _SERVER_FIELDS}
    before: Any = _MISSING
    if old is not None:
        before = {k: v for k, v in old.items() if k not in _SERVER_FIELDS}
    causes: list[fe.Cause] = []
    _check(body, schema, "", before, causes)
    return causes


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _has_type(value: Any, schema: JsonObj) -> bool:
    wanted, found = schema.get("type"), _type_of(value)
    if schema.get("x-kubernetes-int-or-string") and found in ("integer", "string"):
        return True
    return not wanted or wanted == found or (wanted == "number" and found == "integer")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(value: Any, schema: JsonObj, path: str, before: Any, causes: list[fe.Cause]) -> None:
    if value == before or value is None:  # ratcheting; a null here is nullable
        return
    if not _has_type(value, schema):
        found, wanted = _type_of(value), schema.get("type")
        detail = f'{path} in body must be of type {wanted}: "{found}"'
        causes.append((path, "FieldValueTypeInvalid", f'Invalid value: "{found}": {detail}'))
        if wanted == "integer" and found == "number":
            detail = f"Checked value must be of type integer (default format) in {path}"
            causes.append(("<nil>", "FieldValueInvalid", f'Invalid value: "": {detail}'))
        return
    if "enum" in schema and value not in schema["enum"]:
        causes.append(fe.not_supported(path, value, schema["enum"]))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        earlier = before if isinstance(before, list) else []
        for i, item in enumerate(value):
            was = earlier[i] if i < len(earlier) else _MISSING
            _check(item, schema["items"], f"{path}[{i}]", was, causes)
    elif isinstance(value, dict):
        causes += [
            fe.required(_child(path, r)) for r in schema.get("required") or () if r not in value
        ]
        old = before if isinstance(before, dict) else {}
        properties, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub_schema is not None:
                _check(sub, sub_schema, _child(path, key), old.get(key, _MISSING), causes)
