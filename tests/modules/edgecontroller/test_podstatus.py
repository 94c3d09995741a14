"""Pod status reports: KubeEdge's normalisation and the no-change check, without I/O."""

from __future__ import annotations

from typing import Any

from modules.edgecontroller.podstatus import (
    LastWrites,
    merged,
    normalized,
    same,
    terminated,
)

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"


def ready(status: str, since: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "lastTransitionTime": since}


def test_start_time_and_unchanged_ready_transition_are_kept() -> None:
    current = {"phase": "Running", "startTime": T0, "conditions": [ready("True", T0)]}
    reported = {"phase": "Running", "startTime": T1, "conditions": [ready("True", T1)]}
    assert normalized(reported, current, T2) == current


def test_a_ready_condition_that_flips_gets_the_cloud_time_of_the_report() -> None:
    current = {"startTime": T0, "conditions": [ready("True", T0)]}
    reported = {"conditions": [ready("False", T1), {"type": "PodScheduled", "status": "True"}]}
    status = normalized(reported, current, T2)
    assert status["conditions"] == [ready("False", T2), {"type": "PodScheduled", "status": "True"}]
    assert status["startTime"] == T0


def test_a_first_report_without_start_time_gets_one() -> None:
    assert normalized({"phase": "Pending"}, {}, T2) == {"phase": "Pending", "startTime": T2}
    assert normalized({"startTime": T1}, {}, T2)["startTime"] == T1


def test_normalized_leaves_the_report_itself_untouched() -> None:
    reported = {"startTime": T1, "conditions": [ready("True", T1)]}
    normalized(reported, {"startTime": T0, "conditions": [ready("True", T0)]}, T2)
    assert reported == {"startTime": T1, "conditions": [ready("True", T1)]}


def test_a_report_of_what_a_real_api_server_stored_changes_nothing() -> None:
    # What the API server answers for a status the edge wrote: Go structs encoded, with
    # zero values filled in, empty fields left out and times in UTC to the second.
    stored_ready = {**ready("True", T0), "lastProbeTime": None}
    running = {"state": {"running": {"startedAt": T0}}, "lastState": {}, "ready": True}
    container = {"name": "app", **running, "restartCount": 0, "image": "i", "imageID": ""}
    current = {
        "phase": "Running",
        "startTime": T0,
        "conditions": [stored_ready],
        "containerStatuses": [container],
        "qosClass": "BestEffort",
    }
    sent = {"name": "app", "state": {"running": {"startedAt": "2026-01-01T01:00:00.5+01:00"}}}
    reported = {
        "phase": "Running",
        "message": "",
        "startTime": T1,
        "conditions": [ready("True", T1)],
        "containerStatuses": [{**sent, "ready": True, "image": "i", "containerID": ""}],
    }
    status = normalized(reported, current, T2)
    assert merged(current, status) == current
    assert status["message"] is None  # left out by the server: a deletion in the patch


def test_a_report_that_changes_a_field_is_written() -> None:
    current = {"phase": "Running", "message": "ok", "conditions": [ready("True", T0)]}
    for reported in (
        {"phase": "Failed"},
        {"message": ""},
        {"conditions": [ready("False", T1)]},
        {"conditions": [ready("True", T0), {"type": "PodScheduled", "status": "True"}]},
    ):
        assert merged(current, normalized(reported, current, T2)) != current, reported


def test_same_is_equality_as_the_api_server_stores_it() -> None:
    assert same({"a": None, "b": "", "c": 0, "d": False, "e": {}, "f": []}, {})
    assert same({"lastState": {}}, {"lastState": {"waiting": None}})
    assert same("2026-01-01T01:00:00.9+01:00", T0)
    assert not same("2026-01-01T00:00:01Z", T0)
    assert not same({"ready": True}, {})
    assert not same({"restartCount": 1}, {"restartCount": True})
    assert not same([ready("True", T0)], [ready("True", T0), ready("True", T0)])
    assert not same("2026-13-01T00:00:00Z", "2026-13-01T00:00:00+00:00")


def test_a_merge_patch_that_changes_nothing_gives_the_target_back() -> None:
    target = {"phase": "Running", "conditions": [ready("True", T0)], "extra": {"a": 1, "b": 2}}
    assert merged(target, {"phase": "Running", "extra": {"a": 1}}) == target
    assert merged(target, {"gone": None}) == target  # deleting an absent key
    assert merged(target, {"extra": None}) != target  # deleting a present one
    assert merged(target, {"phase": "Failed"}) != target
    assert merged(target, {"conditions": []}) != target  # lists are replaced whole
    assert merged(target, {"new": {}}) != target  # creates an empty object
    assert merged(target, {"phase": {"x": 1}}) != target


def written(rv: str, status: Any = None) -> Any:
    """The pod as the API answers a status write."""
    return {"metadata": {"resourceVersion": rv}, "status": status or {}}


def test_last_writes_hold_until_the_cache_shows_them() -> None:
    writes = LastWrites()
    pods: dict[tuple[str, str], Any] = {}
    ours = {"phase": "Running", "startTime": "2026-01-01T00:00:00Z"}
    writes.wrote("u1", "ns", "p", written("10", ours), lambda ns, name: pods.get((ns, name)))
    cached = {"metadata": {"uid": "u1", "resourceVersion": "9"}, "status": {"phase": "Pending"}}
    assert writes.latest("u1", cached) == (ours, False)  # our write, not the lagging cache
    cached["metadata"]["resourceVersion"] = "10"
    assert writes.latest("u1", cached) == ({"phase": "Pending"}, True)
    assert len(writes) == 0 and writes.latest("u2", cached)[1]


def test_last_writes_of_pods_that_are_gone_are_swept() -> None:
    writes = LastWrites()
    live = {("ns", "p0"): {"metadata": {"uid": "u0", "resourceVersion": "1"}}}
    for i in range(1024):  # the 1,024th write sweeps: only u0 is still behind its cache
        writes.wrote(f"u{i}", "ns", f"p{i}", written("5"), lambda ns, name: live.get((ns, name)))
    assert len(writes) == 1


def test_a_resource_version_that_is_not_a_number_never_counts_as_caught_up() -> None:
    writes = LastWrites()
    writes.wrote("u1", "ns", "p", written("abc"), lambda ns, name: None)
    assert not writes.latest("u1", {"metadata": {"uid": "u1", "resourceVersion": "abc"}})[1]


def test_merged_applies_a_merge_patch_without_touching_either_side() -> None:
    target = {"phase": "Running", "extra": {"a": 1, "b": 2}, "gone": 1}
    patch = {"phase": "Succeeded", "extra": {"b": None, "c": 3}, "gone": None}
    assert merged(target, patch) == {"phase": "Succeeded", "extra": {"a": 1, "c": 3}}
    assert target == {"phase": "Running", "extra": {"a": 1, "b": 2}, "gone": 1}


def test_terminated_needs_a_terminal_phase_and_no_running_container() -> None:
    running = {"name": "app", "state": {"running": {"startedAt": T0}}}
    stopped = {"name": "app", "state": {"terminated": {"exitCode": 0}}}
    assert terminated({"phase": "Succeeded"})
    assert terminated({"phase": "Failed", "containerStatuses": [stopped]})
    assert not terminated({"phase": "Succeeded", "containerStatuses": [running]})
    assert not terminated({"phase": "Running", "containerStatuses": [stopped]})
