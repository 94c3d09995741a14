"""A pod's status as the API server stores and answers it.

The real server decodes the status into Go structs and encodes it again, so what it
answers is not what the client sent: a field tagged omitempty goes when it is empty
(`message: ""`, `containerID: ""`, `initContainerStatuses: []`), one that is not comes
back as its zero value though never sent (`ready: false`, `restartCount: 0`,
`lastState: {}`), a metav1.Time without a value is `null` (a condition's
`lastProbeTime`) and one with a value is written in UTC to the second. `encoded`
does the same for the fields of k8s.io/api/core/v1 PodStatus; fields it does not model
pass unchanged. Clients that compare what they wrote with what they read (the
edgecontroller's no-change check) then see here what they see on a real server.
"""

from __future__ import annotations

from typing import Any

from modules.kubeapi import times

JsonObj = dict[str, Any]
Rule = tuple[str, Any]  # (how the field is encoded, its zero value or nested fields)

OMIT: Rule = ("omit", None)  # omitempty: dropped when empty
TIME: Rule = ("time", None)  # metav1.Time: null when unset
TIME_PTR: Rule = ("time?", None)  # *metav1.Time, omitempty: dropped when unset


def _zero(value: Any) -> Rule:
    return ("zero", value)  # no omitempty: its zero value when unset


_WAITING: dict[str, Rule] = {"reason": OMIT, "message": OMIT}
_RUNNING: dict[str, Rule] = {"startedAt": TIME}
_TERMINATED: dict[str, Rule] = {
    "exitCode": _zero(0),
    "signal": OMIT,
    "reason": OMIT,
    "message": OMIT,
    "startedAt": TIME,
    "finishedAt": TIME,
    "containerID": OMIT,
}
_STATE: dict[str, Rule] = {
    "waiting": ("ptr", _WAITING),
    "running": ("ptr", _RUNNING),
    "terminated": ("ptr", _TERMINATED),
}
_CONTAINER: dict[str, Rule] = {
    "name": _zero(""),
    "state": ("struct", _STATE),
    "lastState": ("struct", _STATE),
    "ready": _zero(False),
    "restartCount": _zero(0),
    "image": _zero(""),
    "imageID": _zero(""),
    "containerID": OMIT,
    "allocatedResources": OMIT,
    "volumeMounts": OMIT,
    "allocatedResourcesStatus": OMIT,
}
_CONDITION: dict[str, Rule] = {
    "type": _zero(""),
    "status": _zero(""),
    "observedGeneration": OMIT,
    "lastProbeTime": TIME,
    "lastTransitionTime": TIME,
    "reason": OMIT,
    "message": OMIT,
}
_STATUS: dict[str, Rule] = {
    "observedGeneration": OMIT,
    "phase": OMIT,
    "conditions": ("list", _CONDITION),
    "message": OMIT,
    "reason": OMIT,
    "nominatedNodeName": OMIT,
    "hostIP": OMIT,
    "hostIPs": OMIT,
    "podIP": OMIT,
    "podIPs": OMIT,
    "startTime": TIME_PTR,
    "initContainerStatuses": ("list", _CONTAINER),
    "containerStatuses": ("list", _CONTAINER),
    "qosClass": OMIT,
    "ephemeralContainerStatuses": ("list", _CONTAINER),
    "resize": OMIT,
    "resourceClaimStatuses": OMIT,
}


def encoded(status: JsonObj) -> JsonObj:
    """`status` (a PodStatus object) as the server answers it; `times.TimeError` for a
    timestamp Go would not decode, its message naming the field."""
    return _struct(status, _STATUS, "status")


def _struct(value: JsonObj, fields: dict[str, Rule], path: str) -> JsonObj:
    out = dict(value)
    for name, (how, arg) in fields.items():
        where, item = f"{path}.{name}", value.get(name)
        if how == "zero":
            out[name] = arg if item is None else item
        elif how == "time":
            out[name] = None if item is None else _time(item, where)
        elif how == "struct":
            out[name] = _struct(item if isinstance(item, dict) else {}, arg, where)
        elif item is None or (how == "omit" and _empty(item)):
            out.pop(name, None)
        elif how == "time?":
            out[name] = _time(item, where)
        elif how == "ptr" and isinstance(item, dict):
            out[name] = _struct(item, arg, where)
        elif how == "list" and isinstance(item, list):
            if not item:
                out.pop(name, None)
            else:
                out[name] = [
                    _struct(e, arg, f"{where}[{i}]") if isinstance(e, dict) else e
                    for i, e in enumerate(item)
                ]
    return out


def _empty(value: Any) -> bool:
    """What omitempty leaves out: false, 0, "", an empty list or map."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0
    return not value


def _time(value: Any, path: str) -> Any:
    if not isinstance(value, str):
        raise times.TimeError(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field Pod.{path} "
            "of type string"
        )
    return times.canonical(value, micro=False)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "array" if isinstance(value, list) else "object"
