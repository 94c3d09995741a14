"""CustomResourceDefinitions and the resources they define, KubeEdge's among them."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from modules.kubeapi import crds
from tests.kube_fixtures import KubeTestCluster, manifest, unique

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


@pytest.mark.usefixtures("kubeedge_crds")
def test_spec_change_bumps_generation_and_status_is_kept(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    name = "rule-a"
    body = {
        "apiVersion": "rules.kubeedge.io/v1",
        "kind": "Rule",
        "metadata": {"name": name},
        "spec": {"source": "s", "target": "t"},
    }
    kube.custom.create_namespaced_custom_object(
        "rules.kubeedge.io", "v1", kube_namespace, "rules", manifest(body)
    )
    kube.custom.patch_namespaced_custom_object_status(
        "rules.kubeedge.io",
        "v1",
        kube_namespace,
        "rules",
        name,
        manifest({"status": {"successMessages": 1}}),
    )
    rule: Any = kube.custom.patch_namespaced_custom_object(
        "rules.kubeedge.io",
        "v1",
        kube_namespace,
        "rules",
        name,
        manifest({"spec": {"target": "u"}, "status": {"successMessages": 99}}),
    )
    assert rule["metadata"]["generation"] == 2
    assert rule["status"] == {"successMessages": 1}


def test_deleting_a_crd_stops_serving_its_resources(kube: KubeTestCluster) -> None:
    group = f"{unique('g')}.test.beehive.io"
    definition = crds.crd(group, "v1", "Widget", "widgets", namespaced=False, status=False)
    api = kube.extensions
    api.create_custom_resource_definition(manifest(definition))
    kube.wait_for_crd(f"widgets.{group}")
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
    kube.custom.create_cluster_custom_object(group, "v1", "widgets", manifest(body))
    groups = {g.name for g in client.ApisApi(kube.api_client).get_api_versions().groups}
    assert group in groups
    api.delete_custom_resource_definition(f"widgets.{group}")
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
