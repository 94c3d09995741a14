"""When an edge's node status report need not be written: no I/O.

An edge reports its node's status every few seconds (edgecore: nodeStatusUpdateFrequency,
10 s), and cloudcore patches the Node with the report, its conditions' heartbeat
stamped now. Most reports change nothing but that stamp. A kubelet posts such an
unchanged status only every nodeStatusReportFrequency (5 min), its node Lease being
the heartbeat the node lifecycle controller reads; cloudcore renews each connected
node's Lease as well (on its keepalives). So a report that would change nothing but
the heartbeat, while the Node's heartbeat is younger than the interval, is answered
without a write: at KubeEdge's 10 s, a sixth of the writes with the 60 s default.

Input: the Node's status as the watch holds it, the report's status, the time, the
interval. Output: whether the write can be skipped.
"""

from __future__ import annotations

import datetime
from typing import Any, TypeGuard

from modules.edgecontroller.podstatus import merged

HEARTBEAT = "lastHeartbeatTime"  # stamped by cloudcore on every write


def unchanged(held: Any, reported: dict[str, Any], now: datetime.datetime, every: float) -> bool:
    """Whether writing `reported` (a JSON merge patch of the status) would change nothing
    in `held` (the Node's status) but its conditions' heartbeats, and the oldest of
    those is younger than `every` seconds (0: every report is written)."""
    if every <= 0 or not isinstance(held, dict):
        return False
    patch, beats = dict(reported), []
    if "conditions" in reported:  # a list: the patch replaces it whole
        theirs, mine = reported["conditions"], held.get("conditions")
        if not _objects(theirs) or not _objects(mine):
            return False
        patch["conditions"] = [_without_heartbeat(c) for c in theirs]
        held = {**held, "conditions": [_without_heartbeat(c) for c in mine]}
        beats = [c.get(HEARTBEAT) for c in mine]
    if not _equal(merged(held, patch), held):
        return False
    times = [_time(beat) for beat in beats]
    if None in times:  # a condition without a heartbeat we can read: write it
        return False
    oldest = min((t for t in times if t is not None), default=now)
    return (now - oldest).total_seconds() < every


def _objects(value: Any) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality where an object's missing key and its null are the same (the API
    writes Go's zero values: ``"lastTransitionTime": null`` for one never set)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_equal(a.get(key), b.get(key)) for key in a.keys() | b.keys())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def _without_heartbeat(condition: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in condition.items() if k != HEARTBEAT}


def _time(stamp: Any) -> datetime.datetime | None:
    """An RFC 3339 time as the API writes it; None when it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
