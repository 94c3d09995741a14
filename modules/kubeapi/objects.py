"""Per-object rules: validation and the defaults the API server fills in.

Pure functions over JSON dicts, called by `store.py` before a create or an update is
stored. They mirror the registry strategies of kube-apiserver (PrepareForCreate,
PrepareForUpdate, Validate in pkg/registry/*/strategy.go) for the fields clients depend
on; anything they refuse raises an `ApiError` and nothing is stored.
"""

from __future__ import annotations

import calendar
import copy
import os
import re
import secrets
import time
from typing import Any

from modules.kubeapi import errors
from modules.kubeapi.resources import ResourceType

JsonObj = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = _SUBDOMAIN_MSG
LABEL_MSG = _LABEL_MSG
MAX_DATA_BYTES = 1024 * 1024  # ConfigMap and Secret payload limit (corevalidation)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as utilrand.String


_clock: list[tuple[int, str]] = [(0, "")]  # the last second formatted, and its text


def now() -> str:
    """The current UTC time to the second, as metadata timestamps are written."""
    second = int(time.time())
    last = _clock[0]
    if last[0] != second:
        last = _clock[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return last[1]


def shifted(stamp: str, seconds: int) -> str:
    """A timestamp `seconds` after (or before) `stamp`, as `now` writes them."""
    at = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at + seconds))


def new_uid() -> str:
    """A random (version 4) UUID in its text form, as uuid.uuid4 without the object."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_subdomain(name: str) -> bool:
    """A lowercase RFC 1123 subdomain (IsDNS1123Subdomain)."""
    return bool(_SUBDOMAIN.match(name)) and len(name) <= 253


def is_label(name: str) -> bool:
    """A lowercase RFC 1123 label (IsDNS1123Label)."""
    return bool(_LABEL.match(name)) and len(name) <= 63


def _invalid(rtype: ResourceType, name: str, field: str, ctype: str, msg: str) -> errors.ApiError:
    return errors.invalid(rtype.kind, rtype.group, name, [(field, ctype, msg)])


def check_name(rtype: ResourceType, name: str, obj: JsonObj) -> None:
    """Raise 422 Invalid for a name the type does not accept."""
    if rtype.name_rule == "path":  # any name that fits in a URL path segment
        why = _path_segment_problem(name)
        if why:
            bad = f'Invalid value: "{name}": {why}'
            raise _invalid(rtype, name, "metadata.name", "FieldValueInvalid", bad)
        return
    if rtype.name_rule == "label":
        ok, msg, limit = bool(_LABEL.match(name)), _LABEL_MSG, 63
    else:
        ok, msg, limit = bool(_SUBDOMAIN.match(name)), _SUBDOMAIN_MSG, 253
    if not ok or len(name) > limit:
        why = msg if ok is False else f"must be no more than {limit} characters"
        bad = f'Invalid value: "{name}": {why}'
        raise _invalid(rtype, name, "metadata.name", "FieldValueInvalid", bad)
    if rtype.name_rule == "crd":
        spec = obj.get("spec") or {}
        expected = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        if name != expected:
            bad = f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'
            raise _invalid(rtype, name, "metadata.name", "FieldValueInvalid", bad)


def _path_segment_problem(name: str) -> str:
    """path.IsValidPathSegmentName's first complaint, or ""."""
    if name in (".", ".."):
        return f"may not be '{name}'"
    for char in "/%":
        if char in name:
            return f"may not contain '{char}'"
    return ""


def pick_name(rtype: ResourceType, meta: JsonObj) -> str:
    """The object's name, generating one from `generateName`; 422 when neither is set."""
    name = meta.get("name")
    if not name and meta.get("generateName"):
        suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
        name = f"{meta['generateName']}{suffix}"
    if not name:
        msg = "Required value: name or generateName is required"
        raise _invalid(rtype, "", "metadata.name", "FieldValueRequired", msg)
    if not isinstance(name, str):
        raise errors.bad_request("metadata.name must be a string")
    return name


def check_shape(rtype: ResourceType, body: Any) -> JsonObj:
    """The body as an object of this type; 400 when it is not one."""
    if not isinstance(body, dict):
        raise errors.bad_request("Object 'Kind' is missing in request body")
    if body.get("apiVersion", rtype.api_version) != rtype.api_version:
        raise errors.bad_request(
            f"the API version in the data ({body['apiVersion']}) does not match the expected "
            f"API version ({rtype.api_version})"
        )
    if body.get("kind", rtype.kind) != rtype.kind:
        raise errors.bad_request(
            f"the kind in the data ({body['kind']}) does not match the expected kind ({rtype.kind})"
        )
    meta = body.get("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    return body


def validate(rtype: ResourceType, name: str, obj: JsonObj) -> None:
    """Type-specific validation that a real server performs and clients trip over."""
    if rtype.key in ("/configmaps", "/secrets"):
        size = sum(
            len(k) + len(str(v))
            for part in ("data", "binaryData", "stringData")
            for k, v in (obj.get(part) or {}).items()
        )
        if size > MAX_DATA_BYTES:
            msg = f"Too long: must have at most {MAX_DATA_BYTES} bytes"
            raise _invalid(rtype, name, "[]", "FieldValueTooLong", msg)
    elif rtype.key == "/pods":
        containers = (obj.get("spec") or {}).get("containers")
        if not containers:
            raise _invalid(rtype, name, "spec.containers", "FieldValueRequired", "Required value")
        for i, container in enumerate(containers):
            for key in ("name", "image"):
                if not isinstance(container, dict) or not container.get(key):
                    field = f"spec.containers[{i}].{key}"
                    raise _invalid(rtype, name, field, "FieldValueRequired", "Required value")


def _qos(obj: JsonObj) -> str:
    containers = (obj.get("spec") or {}).get("containers") or []
    has_resources = any((c.get("resources") or {}) for c in containers if isinstance(c, dict))
    return "Burstable" if has_resources else "BestEffort"


def prepare_create(rtype: ResourceType, obj: JsonObj) -> None:
    """Defaults set at creation (PrepareForCreate); mutates `obj`, a private copy."""
    meta = obj["metadata"]
    if rtype.custom and rtype.has_status:
        obj.pop("status", None)
    if rtype.key == "/pods":
        obj["status"] = {"phase": "Pending", "qosClass": _qos(obj)}
    elif rtype.key == "/namespaces":
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif rtype.key == "apiextensions.k8s.io/customresourcedefinitions":
        obj["status"] = _crd_status(obj)
    if rtype.custom or rtype.key in ("/pods", "apiextensions.k8s.io/customresourcedefinitions"):
        meta["generation"] = 1


def _crd_status(obj: JsonObj) -> JsonObj:
    stamp = now()
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    spec = obj.get("spec") or {}
    versions = [v.get("name") for v in spec.get("versions", []) if v.get("storage")]
    return {
        "conditions": conditions,
        "acceptedNames": spec.get("names", {}),
        "storedVersions": versions,
    }


def _spec_part(rtype: ResourceType, obj: JsonObj) -> JsonObj:
    skip = {"metadata", "status"} if rtype.has_status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


# Kinds whose status strategy resets the metadata to the stored one
# (metav1.ResetObjectMetaForStatus); the others (pods, nodes, namespaces, volumes and
# claims, certificate signing requests, CRDs) take labels, annotations, finalizers and
# the like from a status update too, as from any update.
_STATUS_KEEPS_METADATA = frozenset({"storage.k8s.io/volumeattachments"})
# Metadata an update never changes (rest.BeforeUpdate), and for pods' status the owner
# references too (old kubelets corrupted them).
_SYSTEM_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def prepare_update(rtype: ResourceType, new: JsonObj, old: JsonObj, *, subresource: str) -> JsonObj:
    """The object to store for an update, from the body and the stored object; `subresource`
    is "" for the object itself, "status" for the status (any other: the caller's)."""
    if subresource == "status":
        merged = copy.copy(old)
        if rtype.custom or rtype.key in _STATUS_KEEPS_METADATA:
            merged["metadata"] = dict(old["metadata"])
        else:
            merged["metadata"] = new["metadata"]
        if "status" in new:
            merged["status"] = new["status"]
        else:
            merged.pop("status", None)
        new = merged
    elif rtype.has_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    meta, old_meta = new["metadata"], old["metadata"]
    kept: tuple[str, ...] = _SYSTEM_METADATA
    if rtype.key == "/pods" and subresource == "status":
        kept += ("ownerReferences",)
        status = new.get("status")
        if isinstance(status, dict) and not status.get("qosClass"):
            qos = (old.get("status") or {}).get("qosClass")
            new["status"] = dict(status, qosClass=qos) if qos else status
    for key in kept:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    if "generation" in old_meta:
        changed = _spec_part(rtype, new) != _spec_part(rtype, old)
        meta["generation"] = old_meta["generation"] + (1 if changed else 0)
    return new


def same_content(new: JsonObj, old: JsonObj) -> bool:
    """True when an update would change nothing but the resourceVersion (a no-op)."""
    if new.keys() != old.keys():
        return False
    for key, value in new.items():
        if key == "metadata":
            a = {k: v for k, v in value.items() if k not in ("resourceVersion", "managedFields")}
            b = {k: v for k, v in old[key].items() if k not in ("resourceVersion", "managedFields")}
            if a != b:
                return False
        elif value != old[key]:
            return False
    return True
