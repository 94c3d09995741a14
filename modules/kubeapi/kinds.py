"""Rules for persistent volumes, their claims, volume attachments and core v1 events.

Pure functions over JSON dicts that `strategy.py` calls around a create or an update,
mirroring pkg/registry/core/{persistentvolume,persistentvolumeclaim,event}/strategy.go,
pkg/registry/storage/volumeattachment/strategy.go, the v1 defaults, and the checks of
pkg/apis/core/validation (ValidatePersistentVolume*, ValidatePersistentVolumeClaim*,
ValidateEvent) and pkg/apis/storage/validation (ValidateVolumeAttachment*) that clients
trip over. Each validator returns field causes; `strategy.py` raises them as one 422.
Decoding as the real server decodes: the timestamps of events and leases (`times.py`:
a MicroTime needs its six fractional digits) and a pod's status (`podstatus.py`) come
back as Go encodes them, and what Go would not decode is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from modules.kubeapi import errors, objects, podstatus, times
from modules.kubeapi import fielderrors as fe

JsonObj = dict[str, Any]
Validator = Callable[[JsonObj, JsonObj | None], list[fe.Cause]]

PV = "/persistentvolumes"
PVC = "/persistentvolumeclaims"
EVENTS = "/events"
PODS = "/pods"
VOLUME_ATTACHMENTS = "storage.k8s.io/volumeattachments"
LEASES = "coordination.k8s.io/leases"

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
VOLUME_MODES = ("Block", "Filesystem")
# The volume sources of a PersistentVolumeSpec (PersistentVolumeSource's fields).
PV_SOURCES = (
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
)
_REQUIRED_SOURCE_FIELDS = {
    "hostPath": ("path",),
    "nfs": ("server", "path"),
    "local": ("path",),
    "csi": ("driver", "volumeHandle"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_ZERO = re.compile(r"^[+-]?0*\.?0*([eEinumkKMGTP]*[-+]?[0-9]*)$")
# Timestamps decoded as metav1.Time (False) or MicroTime (True), by kind, as dotted paths.
_TIMES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    EVENTS: (
        ("Event", "firstTimestamp", False),
        ("Event", "lastTimestamp", False),
        ("Event", "eventTime", True),
        ("Event", "series.lastObservedTime", True),
    ),
    LEASES: (("Lease", "spec.acquireTime", True), ("Lease", "spec.renewTime", True)),
}
_JSON_TYPES = ((bool, "bool"), (int | float, "number"), (dict, "object"), (list, "array"))
# Event fields without omitempty: the real server always answers them.
_EVENT_FIELDS: tuple[tuple[str, Any], ...] = (
    ("involvedObject", {}),
    ("source", {}),
    ("firstTimestamp", None),
    ("lastTimestamp", None),
    ("eventTime", None),
    ("reportingComponent", ""),
    ("reportingInstance", ""),
)


def _dict(value: Any) -> JsonObj:
    return value if isinstance(value, dict) else {}


# -- defaults (applied to every body, as decoding with defaulting does) ------------


def default(key: str, obj: JsonObj) -> None:
    """The v1 defaults of these kinds, and their timestamps as the server writes them
    back; mutates `obj`, a private copy."""
    for kind, path, micro in _TIMES.get(key, ()):
        _decode_time(obj, kind, path, micro=micro)
    if key in (PV, PVC) and isinstance(obj.get("spec") or {}, dict):
        obj["spec"] = spec = dict(obj.get("spec") or {})
        spec.setdefault("volumeMode", "Filesystem")
        if key == PV:
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    elif key == EVENTS:
        for name, value in _EVENT_FIELDS:
            if name not in obj:
                obj[name] = dict(value) if isinstance(value, dict) else value
    elif key == VOLUME_ATTACHMENTS and isinstance(obj.get("status"), dict):
        obj["status"] = dict(obj["status"])
        obj["status"].setdefault("attached", False)
    elif key == PODS and isinstance(obj.get("status"), dict):
        try:
            obj["status"] = podstatus.encoded(obj["status"])
        except times.TimeError as exc:
            raise errors.bad_request(
                f'Pod in version "v1" cannot be handled as a Pod: {exc}'
            ) from None


def _decode_time(obj: JsonObj, kind: str, path: str, *, micro: bool) -> None:
    """Parse the timestamp at `path` and store it in its canonical form; what does not
    parse fails decoding: 400, with Go's words."""
    *parents, name = path.split(".")
    holder = obj
    for part in parents:
        if not isinstance(holder.get(part), dict):
            return
        holder[part] = holder = dict(holder[part])
    value = holder.get(name)
    if value is None:
        return
    try:
        if not isinstance(value, str):
            shown = next(word for types, word in _JSON_TYPES if isinstance(value, types))
            raise times.TimeError(
                f"json: cannot unmarshal {shown} into Go struct field {kind}.{path} of type string"
            )
        holder[name] = times.canonical(value, micro=micro)
    except times.TimeError as exc:
        raise errors.bad_request(
            f'{kind} in version "v1" cannot be handled as a {kind}: {exc}'
        ) from None


def prepare_create(key: str, obj: JsonObj) -> None:
    """Status a new object starts with (PrepareForCreate clears what the user sent)."""
    if key == PV:
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": objects.now()}
    elif key == PVC:
        obj["status"] = {"phase": "Pending"}
    elif key == VOLUME_ATTACHMENTS:
        obj["status"] = {"attached": False}


def prepare_update(key: str, new: JsonObj, old: JsonObj, *, subresource: str) -> None:
    """A persistent volume's phase change stamps lastPhaseTransitionTime, unless the
    client set a new one; otherwise the old one stays (the status strategy)."""
    if key != PV or subresource != "status":
        return
    before, after = _dict(old.get("status")), _dict(new.get("status"))
    stamp, old_stamp = after.get("lastPhaseTransitionTime"), before.get("lastPhaseTransitionTime")
    if after.get("phase") == before.get("phase"):
        if stamp is None and old_stamp is not None:
            new["status"] = dict(after, lastPhaseTransitionTime=old_stamp)
    elif stamp is None or stamp == old_stamp:
        new["status"] = dict(after, lastPhaseTransitionTime=objects.now())


# -- validation --------------------------------------------------------------------


def validate(key: str, kind: str, obj: JsonObj, old: JsonObj | None) -> list[fe.Cause]:
    """Causes for a new object (`old` None) or an update of `old`."""
    check = _VALIDATORS.get(key)
    if check is None:
        return []
    _check_quantities(key, kind, obj)
    return check(obj, old)


def _check_quantities(key: str, kind: str, obj: JsonObj) -> None:
    """Quantities that do not parse fail decoding: 400, as the real server."""
    spec = _dict(obj.get("spec"))
    found = _dict(spec.get("capacity")) if key == PV else {}
    if key == PVC:
        found = _dict(_dict(spec.get("resources")).get("requests"))
    for value in found.values():
        if not isinstance(value, int | float) and not _QUANTITY.match(str(value)):
            raise errors.bad_request(
                f'{kind} in version "v1" cannot be handled as a {kind}: quantities must match '
                "the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            )


def _positive(field: str, value: Any) -> list[fe.Cause]:
    text = str(value).strip()
    if text.startswith("-") or _ZERO.match(text):
        return [fe.invalid(field, "0" if _ZERO.match(text) else text, "must be greater than zero")]
    return []


def _access_modes(field: str, modes: Any, detail: str) -> list[fe.Cause]:
    if not modes:
        return [fe.required(field, detail)]
    causes = [fe.not_supported(field, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append(fe.forbidden(field, "may not use ReadWriteOncePod with other access modes"))
    return causes


def _pv(obj: JsonObj, old: JsonObj | None) -> list[fe.Cause]:
    spec = _dict(obj.get("spec"))
    causes = _access_modes("spec.accessModes", spec.get("accessModes"), "")
    capacity = spec.get("capacity")
    if not capacity:
        causes.append(fe.required("spec.capacity"))
    if not isinstance(capacity, dict) or "storage" not in capacity or len(capacity) > 1:
        shown = "core.ResourceList(nil)" if capacity is None else fe.go_value(capacity)
        causes.append(
            (
                "spec.capacity",
                "FieldValueNotSupported",
                f'Unsupported value: {shown}: supported values: "storage"',
            )
        )
    for resource, quantity in _dict(capacity).items():
        causes += _positive(f"spec.capacity[{resource}]", quantity)
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in RECLAIM_POLICIES:
        causes.append(
            fe.not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES)
        )
    if spec.get("volumeMode") not in VOLUME_MODES:
        causes.append(fe.not_supported("spec.volumeMode", spec.get("volumeMode"), VOLUME_MODES))
    causes += _pv_source(spec)
    if old is not None:
        causes += _pv_update(spec, _dict(old.get("spec")))
    return causes


def _pv_source(spec: JsonObj) -> list[fe.Cause]:
    sources = [s for s in PV_SOURCES if spec.get(s) is not None]
    if not sources:
        return [fe.required("spec", "must specify a volume type")]
    causes = [
        fe.forbidden(f"spec.{s}", "may not specify more than 1 volume type") for s in sources[1:]
    ]
    source = _dict(spec.get(sources[0]))
    for field in _REQUIRED_SOURCE_FIELDS.get(sources[0], ()):
        if not source.get(field):
            causes.append(fe.required(f"spec.{sources[0]}.{field}"))
    if sources[0] == "local" and not spec.get("nodeAffinity"):
        causes.append(fe.required("spec.nodeAffinity", "Local volume requires node affinity"))
    return causes


def _pv_update(spec: JsonObj, before: JsonObj) -> list[fe.Cause]:
    causes = []
    if any(spec.get(s) != before.get(s) for s in PV_SOURCES):
        causes.append(
            fe.forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            )
        )
    if spec.get("volumeMode") != before.get("volumeMode"):
        causes.append(fe.invalid("spec.volumeMode", spec.get("volumeMode"), "field is immutable"))
    return causes


def _pvc(obj: JsonObj, old: JsonObj | None) -> list[fe.Cause]:
    spec = _dict(obj.get("spec"))
    detail = "at least 1 access mode is required"
    causes = _access_modes("spec.accessModes", spec.get("accessModes"), detail)
    requests = _dict(_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        causes.append(fe.required("spec.resources[storage]"))
    else:
        causes += _positive("spec.resources[storage]", requests["storage"])
    if spec.get("volumeMode") not in VOLUME_MODES:
        causes.append(fe.not_supported("spec.volumeMode", spec.get("volumeMode"), VOLUME_MODES))
    if old is not None and _pvc_fixed(spec, old) != _pvc_fixed(_dict(old.get("spec")), old):
        causes.append(
            fe.forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims",
            )
        )
    return causes


def _pvc_fixed(spec: JsonObj, old: JsonObj) -> JsonObj:
    """The part of a claim's spec an update may not change (ValidatePersistentVolumeClaimUpdate):
    binding sets volumeName once; a bound claim may be resized and change its class."""
    fixed = dict(spec)
    if not _dict(old.get("spec")).get("volumeName"):
        fixed.pop("volumeName", None)
    if _dict(old.get("status")).get("phase") == "Bound":
        fixed.pop("volumeAttributesClassName", None)
        resources = dict(_dict(fixed.get("resources")))
        resources.pop("requests", None)
        fixed["resources"] = resources
    return fixed


def _volume_attachment(obj: JsonObj, old: JsonObj | None) -> list[fe.Cause]:
    spec = _dict(obj.get("spec"))
    causes = [] if spec.get("attacher") else [fe.required("spec.attacher")]
    source = _dict(spec.get("source"))
    pv_name, inline = source.get("persistentVolumeName"), source.get("inlineVolumeSpec")
    both = "must specify exactly one of inlineVolumeSpec and persistentVolumeName"
    if pv_name is None and inline is None:
        causes.append(fe.required("spec.source", both))
    elif pv_name is not None and inline is not None:
        causes.append(fe.forbidden("spec.source", both))
    elif pv_name is not None and not pv_name:
        detail = "must specify non empty persistentVolumeName"
        causes.append(fe.required("spec.source.persistentVolumeName", detail))
    node = spec.get("nodeName") or ""
    if not objects.is_subdomain(node):
        causes.append(fe.invalid("spec.nodeName", node, objects.SUBDOMAIN_MSG))
    if old is not None and spec != _dict(old.get("spec")):
        causes.append(fe.invalid("spec", spec, "field is immutable"))
    return causes


def _event(obj: JsonObj, old: JsonObj | None) -> list[fe.Cause]:
    """legacyValidateEvent, as for core v1 requests."""
    namespace = obj["metadata"].get("namespace", "")
    involved = _dict(obj.get("involvedObject")).get("namespace") or ""
    causes: list[fe.Cause] = []
    mismatch = fe.invalid("involvedObject.namespace", involved, "does not match event.namespace")
    if not obj.get("eventTime"):
        if (involved and involved != namespace) or (
            not involved and namespace not in ("", "default")
        ):
            causes.append(mismatch)
        return causes
    if not involved and namespace not in ("default", "kube-system"):
        causes.append(mismatch)
    component = obj.get("reportingComponent") or ""
    if not component:
        causes.append(fe.required("reportingComponent"))
    causes += [fe.invalid("reportingComponent", component, m) for m in _qualified_name(component)]
    for field, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        value = obj.get(field) or ""
        if not value:
            causes.append(fe.required(field))
        if len(value) > limit:
            causes.append(fe.invalid(field, "", f"can have at most {limit} characters"))
    if len(obj.get("message") or "") > 1024:
        causes.append(fe.invalid("message", "", "can have at most 1024 characters"))
    return causes  # no rule on type: core v1 takes any


_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def _qualified_name(value: str) -> list[str]:
    """IsQualifiedName: an optional DNS subdomain prefix and '/', then a name part."""
    parts = value.split("/")
    if len(parts) > 2:
        return [
            f"a valid label key {_QUALIFIED_MSG} with an optional DNS subdomain prefix and "
            "'/' (e.g. 'example.com/MyName')"
        ]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            problems.append("prefix part must be no more than 253 characters")
        elif not objects.is_subdomain(prefix):
            problems.append(f"prefix part {objects.SUBDOMAIN_MSG}")
    name = parts[-1]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _QUALIFIED.match(name):
        problems.append(f"name part {_QUALIFIED_MSG}")
    return problems


_VALIDATORS: dict[str, Validator] = {
    PV: _pv,
    PVC: _pvc,
    VOLUME_ATTACHMENTS: _volume_attachment,
    EVENTS: _event,
}
