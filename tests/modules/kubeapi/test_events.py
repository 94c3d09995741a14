"""Core v1 events: created, patched as the edge patches them, and selected by field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kube_fixtures import KubeTestCluster, manifest
from tests.modules.kubeapi.helpers import expect_failure, raw_call


def _event(namespace: str, name: str, **fields: Any) -> Any:
    involved = {"kind": "Pod", "name": "web", "namespace": namespace, "apiVersion": "v1"}
    involved.update(fields.pop("involvedObject", {}))
    body = {
        "metadata": {"name": name},
        "involvedObject": involved,
        "reason": "Started",
        "type": "Normal",
        "message": "Started container main",
        "source": {"component": "kubelet", "host": "edge-1"},
        "count": 1,
        "firstTimestamp": "2024-05-01T10:00:00Z",
        "lastTimestamp": "2024-05-01T10:00:00Z",
    }
    body.update(fields)
    return manifest(body)


def test_an_event_is_stored_with_the_fields_the_server_always_answers(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    path = f"/api/v1/namespaces/{kube_namespace}/events"
    involved = {"kind": "Pod", "name": "web", "namespace": kube_namespace}
    body = {"metadata": {"name": "bare"}, "involvedObject": involved}
    status, created = raw_call(kube.api_client, "POST", path, body)
    assert (status, created["kind"], created["apiVersion"]) == (201, "Event", "v1")
    assert created["metadata"]["uid"] and created["metadata"]["namespace"] == kube_namespace
    for field, value in (
        ("firstTimestamp", None),
        ("lastTimestamp", None),
        ("eventTime", None),
        ("reportingComponent", ""),
        ("reportingInstance", ""),
        ("source", {}),
    ):
        assert created[field] == value, field
    assert "status" not in created


def test_the_edge_strategic_merge_patch_counts_an_event_again(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    created = kube.core.create_namespaced_event(kube_namespace, _event(kube_namespace, "web.1"))
    patch = {"count": 3, "lastTimestamp": "2024-05-01T10:05:00Z", "message": "again"}
    patched = kube.core.patch_namespaced_event(
        "web.1",
        kube_namespace,
        manifest(patch),
        _content_type="application/strategic-merge-patch+json",
    )
    assert (patched.count, patched.message, patched.reason) == (3, "again", "Started")
    assert patched.last_timestamp.isoformat() == "2024-05-01T10:05:00+00:00"
    assert patched.first_timestamp == created.first_timestamp
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)


def test_put_of_a_missing_event_creates_it(kube: KubeTestCluster, kube_namespace: str) -> None:
    path = f"/api/v1/namespaces/{kube_namespace}/events/late"
    status, created = raw_call(kube.api_client, "PUT", path, _event(kube_namespace, "late"))
    assert (status, created["metadata"]["name"]) == (201, "late")
    status, replaced = raw_call(
        kube.api_client, "PUT", path, dict(_event(kube_namespace, "late"), count=2)
    )
    assert (status, replaced["count"]) == (200, 2)


def test_deleting_an_event_answers_a_success_status(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_event(kube_namespace, _event(kube_namespace, "gone"))
    status, body = raw_call(
        kube.api_client, "DELETE", f"/api/v1/namespaces/{kube_namespace}/events/gone"
    )
    assert (status, body["kind"], body["status"]) == (200, "Status", "Success")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("involvedObject.kind=Node", ["node-ready"], id="involved kind"),
        pytest.param("involvedObject.name=web", ["web.1", "web.2"], id="involved name"),
        pytest.param("involvedObject.uid=u-2", ["web.2"], id="involved uid"),
        pytest.param("involvedObject.apiVersion=v1,reason=BackOff", ["web.2"], id="and reason"),
        pytest.param("involvedObject.fieldPath=spec.containers{main}", ["web.2"], id="field path"),
        pytest.param("type=Warning", ["web.2"], id="type"),
        pytest.param("type!=Warning", ["node-ready", "web.1"], id="type negated"),
        pytest.param("source=kubelet", ["node-ready", "web.1", "web.2"], id="source component"),
        pytest.param("reason=Started,type=Normal", ["web.1"], id="reason and type"),
    ],
)
def test_field_selectors_pick_events(
    kube: KubeTestCluster, kube_namespace: str, selector: str, expected: list[str]
) -> None:
    ns = kube_namespace
    kube.core.create_namespaced_event(ns, _event(ns, "web.1"))
    kube.core.create_namespaced_event(
        ns,
        _event(
            ns,
            "web.2",
            involvedObject={"uid": "u-2", "fieldPath": "spec.containers{main}"},
            reason="BackOff",
            type="Warning",
        ),
    )
    kube.core.create_namespaced_event(
        ns,
        _event(ns, "node-ready", involvedObject={"kind": "Node", "name": "n1"}, reason="Ready"),
    )
    found = kube.core.list_namespaced_event(ns, field_selector=selector)
    assert sorted(e.metadata.name for e in found.items) == expected


def test_an_unsupported_event_field_selector_is_a_bad_request(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    expect_failure(
        lambda: kube.core.list_namespaced_event(kube_namespace, field_selector="message=x"),
        400,
        "BadRequest",
        "field label not supported: message",
    )


def test_an_event_about_an_object_of_another_namespace_is_invalid(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    body = _event(kube_namespace, "elsewhere", involvedObject={"namespace": "kube-system"})
    expect_failure(
        lambda: kube.core.create_namespaced_event(kube_namespace, body),
        422,
        "Invalid",
        'Event "elsewhere" is invalid: involvedObject.namespace: Invalid value: "kube-system": '
        "does not match event.namespace",
    )


def test_a_new_style_event_must_say_who_reported_it(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    # Sent as JSON: the typed client would turn the time into a datetime and write it back
    # without the six fractional digits a MicroTime must have.
    body = _event(kube_namespace, "new", eventTime="2024-05-01T10:00:00.000000Z")
    path = f"/api/v1/namespaces/{kube_namespace}/events"
    status, failure = raw_call(kube.api_client, "POST", path, body)
    assert (status, failure["reason"]) == (422, "Invalid"), failure
    assert "reportingComponent: Required value" in failure["message"]
    fields = {cause["field"] for cause in failure["details"]["causes"]}
    assert {"reportingComponent", "reportingInstance", "action"} <= fields


def test_an_event_time_is_a_micro_time_and_is_answered_in_utc(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    path = f"/api/v1/namespaces/{kube_namespace}/events"
    who = {"reportingComponent": "kubelet", "reportingInstance": "edge-1", "action": "Started"}
    body = _event(kube_namespace, "utc", eventTime="2024-05-01T12:00:00.000000+02:00", **who)
    status, created = raw_call(kube.api_client, "POST", path, body)
    assert (status, created["eventTime"]) == (201, "2024-05-01T10:00:00.000000Z")
    body = _event(kube_namespace, "no-micros", eventTime="2024-05-01T10:00:00+00:00", **who)
    status, refused = raw_call(kube.api_client, "POST", path, body)
    assert (status, refused["reason"]) == (400, "BadRequest")
    assert refused["message"] == (
        'Event in version "v1" cannot be handled as a Event: parsing time '
        '"2024-05-01T10:00:00+00:00" as "2006-01-02T15:04:05.000000Z07:00": cannot parse '
        '"+00:00" as ".000000"'
    )
