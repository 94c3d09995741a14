"""What the hollow edge reports for its pods."""

from __future__ import annotations

from typing import Any

from modules import hollow


def pod(**meta: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "app", "image": "x"}, {"name": "side", "image": "y"}]}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta}, "spec": spec}


def test_a_stored_pod_is_reported_running() -> None:
    report = hollow.pod_status_message(pod())
    assert report is not None and report.route.resource == "ns/podstatus/p"
    content: Any = report.content
    assert content["UID"] == "u1" and content["Status"]["phase"] == "Running"


def test_a_pod_being_deleted_is_reported_stopped_with_every_container_terminated() -> None:
    doomed = pod(deletionTimestamp="2026-01-01T00:00:00Z")
    assert hollow.stopping(doomed) and not hollow.stopping(pod())
    report = hollow.pod_status_message(doomed)
    assert report is not None and isinstance(report.content, dict)
    status: Any = report.content["Status"]
    assert status["phase"] == "Succeeded"
    statuses = status["containerStatuses"]
    assert [(c["name"], c["image"], "terminated" in c["state"]) for c in statuses] == [
        ("app", "x", True),
        ("side", "y", True),
    ]
    assert all(c["imageID"] == "" and c["ready"] is False for c in statuses)  # required fields


def test_a_pod_without_a_name_is_not_reported() -> None:
    assert hollow.pod_status_message({"metadata": {"namespace": "ns"}}) is None
