"""CustomResourceDefinitions and the resources they define, KubeEdge's among them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from modules.kube import crds
from tests.kube_fixtures import WAIT_SECONDS, KubeTestCluster, manifest, unique
from tests.modules.kubeapi.helpers import expect_failure

SYNC_GROUP, SYNC_VERSION = "reliablesyncs.kubeedge.io", "v1alpha1"


@pytest.fixture
def kubeedge_crds(kube: KubeTestCluster) -> None:
    crds.install(kube.api_client)
    for definition in crds.KUBEEDGE_CRDS:
        kube.wait_for_crd(definition["metadata"]["name"])


def _object_sync(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{SYNC_GROUP}/{SYNC_VERSION}",
        "kind": "ObjectSync",
        "metadata": {"name": name},
        "spec": {"objectAPIVersion": "v1", "objectKind": "Pod", "objectName": "web"},
        "status": {"objectResourceVersion": "ignored-on-create"},
    }


@pytest.mark.usefixtures("kubeedge_crds")
def test_object_sync_status_is_written_through_the_subresource(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    name = f"edge-1.{unique('uid')}"
    created: Any = kube.custom.create_namespaced_custom_object(
        SYNC_GROUP, SYNC_VERSION, kube_namespace, "objectsyncs", manifest(_object_sync(name))
    )
    assert "status" not in created
    patched: Any = kube.custom.patch_namespaced_custom_object_status(
        SYNC_GROUP,
        SYNC_VERSION,
        kube_namespace,
        "objectsyncs",
        name,
        manifest({"status": {"objectResourceVersion": "42"}, "spec": {"objectName": "other"}}),
    )
    assert patched["status"] == {"objectResourceVersion": "42"}
    assert patched["spec"]["objectName"] == "web"
    assert patched["metadata"]["generation"] == 1


@pytest.mark.usefixtures("kubeedge_crds")
def test_cluster_object_sync_is_cluster_scoped(kube: KubeTestCluster) -> None:
    name = f"edge-1.{unique('uid')}"
    body = dict(_object_sync(name), kind="ClusterObjectSync")
    kube.custom.create_cluster_custom_object(
        SYNC_GROUP, SYNC_VERSION, "clusterobjectsyncs", manifest(body)
    )
    try:
        got: Any = kube.custom.get_cluster_custom_object(
            SYNC_GROUP, SYNC_VERSION, "clusterobjectsyncs", name
        )
        assert "namespace" not in got["metadata"]
    finally:
        kube.custom.delete_cluster_custom_object(
            SYNC_GROUP, SYNC_VERSION, "clusterobjectsyncs", name
        )


WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer"},
                "colour": {"type": "string", "enum": ["red", "blue"]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "properties": {"seen": {"type": "integer"}}},
    },
}


@pytest.fixture
def widgets(kube: KubeTestCluster) -> Iterator[str]:
    """A namespaced Widget CRD of a unique group, with a structural schema and the status
    subresource; its group is yielded, the CRD deleted afterwards."""
    group = f"{unique('g')}.test.beehive.io"
    definition = crds.crd(group, "v1", "Widget", "widgets", namespaced=True, status=True)
    definition["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": WIDGET_SCHEMA}
    kube.extensions.create_custom_resource_definition(manifest(definition))
    kube.wait_for_crd(f"widgets.{group}")
    yield group
    kube.extensions.delete_custom_resource_definition(f"widgets.{group}")


def _widget(group: str, name: str, **spec: Any) -> Any:
    return manifest(
        {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
    )


def test_spec_change_bumps_generation_and_status_is_kept(
    kube: KubeTestCluster, kube_namespace: str, widgets: str
) -> None:
    args = (widgets, "v1", kube_namespace, "widgets")
    kube.custom.create_namespaced_custom_object(*args, _widget(widgets, "w", size=1))
    kube.custom.patch_namespaced_custom_object_status(*args, "w", manifest({"status": {"seen": 1}}))
    widget: Any = kube.custom.patch_namespaced_custom_object(
        *args, "w", manifest({"spec": {"size": 2}, "status": {"seen": 99}})
    )
    assert widget["metadata"]["generation"] == 2
    assert widget["status"] == {"seen": 1}


def test_a_custom_resource_is_pruned_to_its_schema_and_checked_against_it(
    kube: KubeTestCluster, kube_namespace: str, widgets: str
) -> None:
    args = (widgets, "v1", kube_namespace, "widgets")
    body = _widget(widgets, "w", size=1, unknown=1, free={"any": {"thing": 1}}, colour=None)
    body["extra"] = "dropped"
    created: Any = kube.custom.create_namespaced_custom_object(*args, body)
    assert created["spec"] == {"size": 1, "free": {"any": {"thing": 1}}}
    assert "extra" not in created
    refused = expect_failure(
        lambda: kube.custom.create_namespaced_custom_object(
            *args, _widget(widgets, "bad", size="1", colour="green", labels={"a": 1})
        ),
        422,
        "Invalid",
        f'Widget.{widgets} "bad" is invalid: ',
    )
    messages = {c["field"]: c["message"] for c in refused["details"]["causes"]}
    assert messages == {
        "spec.size": 'Invalid value: "string": spec.size in body must be of type integer: "string"',
        "spec.colour": 'Unsupported value: "green": supported values: "red", "blue"',
        "spec.labels.a": 'Invalid value: "integer": spec.labels.a in body must be of type '
        'string: "integer"',
    }
    expect_failure(
        lambda: kube.custom.create_namespaced_custom_object(*args, _widget(widgets, "empty")),
        422,
        "Invalid",
        "spec.size: Required value",
    )


def test_deleting_a_crd_stops_serving_its_resources(kube: KubeTestCluster) -> None:
    group = f"{unique('g')}.test.beehive.io"
    name = f"widgets.{group}"
    definition = crds.crd(group, "v1", "Widget", "widgets", namespaced=False, status=False)
    api = kube.extensions
    api.create_custom_resource_definition(manifest(definition))
    kube.wait_for_crd(name)
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
    kube.custom.create_cluster_custom_object(group, "v1", "widgets", manifest(body))
    groups = {g.name for g in client.ApisApi(kube.api_client).get_api_versions().groups}
    assert group in groups
    # A real server removes the resources, then the CRD, in the background: wait for the
    # CRD's deletion (bounded), watched from before the delete so that it cannot be missed.
    selector = f"metadata.name={name}"
    since = api.list_custom_resource_definition(field_selector=selector).metadata.resource_version
    api.delete_custom_resource_definition(name)
    events = watch.Watch().stream(
        api.list_custom_resource_definition,
        field_selector=selector,
        resource_version=since,
        timeout_seconds=WAIT_SECONDS,
    )
    try:
        deleted = any(event["type"] == "DELETED" for event in events)
    finally:
        events.close()  # its connection goes back to the pool now, not when collected
    assert deleted, f"{name} still there"
    with pytest.raises(client.ApiException) as info:
        kube.custom.get_cluster_custom_object(group, "v1", "widgets", "w")
    assert info.value.status == 404


def test_crd_name_must_be_plural_dot_group(kube: KubeTestCluster) -> None:
    definition = crds.crd(
        "x.test.beehive.io", "v1", "Thing", "things", namespaced=True, status=False
    )
    definition["metadata"]["name"] = "wrong.test.beehive.io"
    with pytest.raises(client.ApiException) as info:
        kube.extensions.create_custom_resource_definition(manifest(definition))
    assert info.value.status == 422
