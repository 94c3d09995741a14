"""Pod status reports: KubeEdge's normalisation, telling a report that changes nothing,
and when a pod being deleted has stopped.

No I/O. `normalized` applies what cloud/pkg/edgecontroller/controller/upstream.go
(updatePodStatus) does before writing, as the kubelet's status manager does: the pod's
start time never changes once set, and the Ready and Initialized conditions keep their
last transition time while their status stays the same. An edge that reports the same
state again (hollow edges stamp every report with the current time) therefore writes
the same status: `merged` with the pod's status gives that status back, and the write
can be skipped.

Comparing with the cached pod is only sound once the cache holds this controller's own
last write for that pod: `LastWrites` remembers the resourceVersion of each write until
the pod watch has caught up with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from modules.edgecontroller.location import dicts

Obj = dict[str, Any]
KEPT_TRANSITIONS = ("Ready", "Initialized")  # conditions whose transition time is kept


def normalized(reported: Obj, current: Obj, now: str) -> Obj:
    """The status to write for `reported`, given the pod's `current` status."""
    status = dict(reported)
    if current.get("startTime"):
        status["startTime"] = current["startTime"]
    elif not status.get("startTime"):
        status["startTime"] = now
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        old = {c.get("type"): c for c in dicts(current.get("conditions"))}
        status["conditions"] = [_kept(c, old, now) for c in conditions]
    return status


def _kept(condition: Any, old: dict[Any, Obj], now: str) -> Any:
    if not isinstance(condition, dict) or condition.get("type") not in KEPT_TRANSITIONS:
        return condition
    before = old.get(condition["type"])
    if before is not None and before.get("status") == condition.get("status"):
        since = before.get("lastTransitionTime")
    else:
        since = now
    return {**condition, "lastTransitionTime": since}


def terminated(status: Obj) -> bool:
    """A terminal phase and no container running: a pod being deleted may now go."""
    if status.get("phase") not in ("Succeeded", "Failed"):
        return False
    return not any(
        isinstance(c.get("state"), dict) and "running" in c["state"]
        for key in ("initContainerStatuses", "containerStatuses")
        for c in dicts(status.get(key))
    )


def merged(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied as a JSON merge patch (RFC 7386); neither is changed."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


Lookup = Callable[[str, str], Obj | None]  # (namespace, name) -> the cached pod


class LastWrites:
    """Per pod UID, the resourceVersion of our last status write the cache has not shown yet.

    Thread-safe (upstream workers). An entry goes as soon as the cached pod is at least
    that new; entries of pods that are gone are swept when the table has doubled.
    """

    def __init__(self) -> None:
        self._written: dict[str, tuple[str, str, int | None]] = {}  # uid -> (ns, name, rv)
        self._lock = threading.Lock()
        self._sweep_at = 1024  # size that triggers the next sweep

    def wrote(
        self, uid: str, namespace: str, name: str, resource_version: str, lookup: Lookup
    ) -> None:
        """Remember a write (its RV as returned by the API); sweeps now and then."""
        with self._lock:
            self._written[uid] = (namespace, name, _number(resource_version))
            if len(self._written) < self._sweep_at:
                return
            for key, (ns, pod_name, rv) in list(self._written.items()):
                pod = lookup(ns, pod_name)
                if pod is None or pod["metadata"].get("uid") != key or _caught_up(pod, rv):
                    del self._written[key]
            self._sweep_at = max(1024, 2 * len(self._written))

    def caught_up(self, uid: str, pod: Obj) -> bool:
        """True when the cached `pod` includes our last write to it (or there was none)."""
        with self._lock:
            entry = self._written.get(uid)
            if entry is None:
                return True
            if _caught_up(pod, entry[2]):
                del self._written[uid]
                return True
            return False

    def __len__(self) -> int:
        with self._lock:
            return len(self._written)


def _caught_up(pod: Obj, written: int | None) -> bool:
    cached = _number(pod["metadata"].get("resourceVersion"))
    return written is not None and cached is not None and cached >= written


def _number(resource_version: Any) -> int | None:
    """A resourceVersion as a number; None when it is not one (then it is never compared)."""
    try:
        return int(resource_version)
    except (TypeError, ValueError):
        return None
