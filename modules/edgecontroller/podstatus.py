"""Pod status reports: KubeEdge's normalisation, telling a report that changes nothing,
and when a pod being deleted has stopped.

No I/O. `normalized` applies what cloud/pkg/edgecontroller/controller/upstream.go
(updatePodStatus) does before writing, as the kubelet's status manager does: the pod's
start time never changes once set, and the Ready and Initialized conditions keep their
last transition time while their status stays the same. An edge that reports the same
state again (hollow edges stamp every report with the current time) therefore writes
the same status: `merged` with the pod's status gives that status back, and the write
can be skipped.

That holds against a real API server too, which answers a status as Go structs encode
it, not as the edge sent it: a condition gains `lastProbeTime: null`, a container status
`lastState: {}` and `restartCount: 0`, an empty `message` is left out, and times are in
UTC to the second. So `normalized` writes a reported field that means the same as the
pod's current one (`same`) as the current one, and an empty one the pod lacks as a
deletion (null), which is what the server would store for it anyway.

Comparing with the cached pod is only sound once the cache holds this controller's own
last write for that pod: `LastWrites` remembers the resourceVersion of each write until
the pod watch has caught up with it.
"""

from __future__ import annotations

import datetime
import re
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
    for key, value in status.items():
        if key in current and same(value, current[key]):
            status[key] = current[key]
        elif key not in current and value is not None and _zero(value):
            status[key] = None  # stored as absent: a merge patch says so with null
    return status


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def same(a: Any, b: Any) -> bool:
    """True when `a` and `b` are the same once the API server has stored them: a field
    missing, null or of its zero value ("", 0, false, {}, []) reads back alike, and
    times are kept to the second."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(same(a.get(k), b.get(k)) for k in a.keys() | b.keys())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if _zero(a) and _zero(b):
        return True
    if isinstance(a, str) and isinstance(b, str) and _TIME.match(a) and _TIME.match(b):
        return _instant(a) == _instant(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _zero(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0
    return not value  # None, "", False, {}, []


def _instant(stamp: str) -> datetime.datetime | str:
    """An RFC 3339 time to the second, as metav1.Time keeps it (one that is no valid
    date stays the text it is)."""
    try:
        return datetime.datetime.fromisoformat(stamp).replace(microsecond=0)
    except ValueError:
        return stamp


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
    """Per pod UID, our last status write the cache has not shown yet (its resourceVersion
    and the status it left), so that a report that comes meanwhile is judged against it:
    against the lagging cache, a start time kept from the first report would be lost.

    Thread-safe (upstream workers). An entry goes as soon as the cached pod is at least
    that new; entries of pods that are gone are swept when the table has doubled.
    """

    def __init__(self) -> None:
        self._written: dict[
            str, tuple[str, str, int | None, Obj]
        ] = {}  # uid -> ns, name, rv, status
        self._lock = threading.Lock()
        self._sweep_at = 1024  # size that triggers the next sweep

    def wrote(self, uid: str, namespace: str, name: str, written: Obj, lookup: Lookup) -> None:
        """Remember a write (the pod as the API returned it); sweeps now and then."""
        version = _number(str((written.get("metadata") or {}).get("resourceVersion", "")))
        status = written.get("status") if isinstance(written.get("status"), dict) else {}
        with self._lock:
            self._written[uid] = (namespace, name, version, status or {})
            if len(self._written) < self._sweep_at:
                return
            for key, (ns, pod_name, rv, _) in list(self._written.items()):
                pod = lookup(ns, pod_name)
                if pod is None or pod["metadata"].get("uid") != key or _caught_up(pod, rv):
                    del self._written[key]
            self._sweep_at = max(1024, 2 * len(self._written))

    def latest(self, uid: str, pod: Obj) -> tuple[Obj, bool]:
        """The pod's newest status we know (the cached one, or our last write while the
        cache lags behind it), and whether the cache has caught up."""
        with self._lock:
            entry = self._written.get(uid)
            if entry is not None and not _caught_up(pod, entry[2]):
                return entry[3], False
            self._written.pop(uid, None)
        return pod.get("status") or {}, True

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
