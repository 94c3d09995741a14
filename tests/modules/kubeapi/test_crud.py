"""Create, read, update, patch and delete through the official client, over HTTP."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.kube_fixtures import KubeTestCluster, manifest, pod_manifest, unique
from tests.modules.kubeapi.helpers import raw_call


def test_fresh_cluster_has_the_standard_namespaces(kube: KubeTestCluster) -> None:
    names = {ns.metadata.name for ns in kube.core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_create_fills_in_server_fields_and_get_returns_the_object(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    pod = kube.core.create_namespaced_pod(kube_namespace, pod_manifest("web"))
    assert pod.metadata.uid and pod.metadata.creation_timestamp
    assert pod.metadata.namespace == kube_namespace
    assert pod.status.phase == "Pending"
    got = kube.core.read_namespaced_pod("web", kube_namespace)
    assert got.metadata.resource_version == pod.metadata.resource_version


def test_resource_versions_increase_across_kinds(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    cm = kube.core.create_namespaced_config_map(
        kube_namespace, manifest({"metadata": {"name": "a"}})
    )
    secret = kube.core.create_namespaced_secret(
        kube_namespace, manifest({"metadata": {"name": "b"}})
    )
    listed = kube.core.list_namespaced_config_map(kube_namespace)
    rvs = [int(cm.metadata.resource_version), int(secret.metadata.resource_version)]
    assert rvs[0] < rvs[1] <= int(listed.metadata.resource_version)


def test_update_with_stale_resource_version_is_a_conflict(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    cm = kube.core.create_namespaced_config_map(
        kube_namespace, manifest({"metadata": {"name": "cfg"}, "data": {"k": "1"}})
    )
    cm.data = {"k": "2"}
    kube.core.replace_namespaced_config_map("cfg", kube_namespace, cm)
    cm.data = {"k": "3"}
    with pytest.raises(client.ApiException) as info:
        kube.core.replace_namespaced_config_map("cfg", kube_namespace, cm)
    assert info.value.status == 409
    assert "the object has been modified" in str(info.value.body)
    assert kube.core.read_namespaced_config_map("cfg", kube_namespace).data == {"k": "2"}


def test_create_twice_is_already_exists(kube: KubeTestCluster, kube_namespace: str) -> None:
    kube.core.create_namespaced_config_map(kube_namespace, manifest({"metadata": {"name": "x"}}))
    with pytest.raises(client.ApiException) as info:
        kube.core.create_namespaced_config_map(
            kube_namespace, manifest({"metadata": {"name": "x"}})
        )
    assert info.value.status == 409
    assert '"reason":"AlreadyExists"' in str(info.value.body).replace(" ", "")


def test_generate_name_gives_a_unique_name(kube: KubeTestCluster, kube_namespace: str) -> None:
    body = manifest({"metadata": {"generateName": "gen-"}})
    a = kube.core.create_namespaced_config_map(kube_namespace, body)
    b = kube.core.create_namespaced_config_map(kube_namespace, body)
    assert a.metadata.name.startswith("gen-") and a.metadata.name != b.metadata.name


def test_pod_status_is_only_changed_through_the_status_subresource(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_pod(kube_namespace, pod_manifest("p"))
    patched = kube.core.patch_namespaced_pod_status(
        "p",
        kube_namespace,
        manifest({"status": {"phase": "Running"}, "spec": {"activeDeadlineSeconds": 5}}),
    )
    assert patched.status.phase == "Running"
    assert patched.spec.active_deadline_seconds is None  # the status keeps the spec
    main = kube.core.patch_namespaced_pod(
        "p",
        kube_namespace,
        manifest({"status": {"phase": "Failed"}, "metadata": {"labels": {"a": "b"}}}),
    )
    assert main.status.phase == "Running"
    assert main.metadata.labels["a"] == "b"


def test_a_pod_status_update_changes_metadata_but_not_what_identifies_the_pod(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    created = kube.core.create_namespaced_pod(kube_namespace, pod_manifest("p"))
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-1"}
    meta: dict[str, object] = {"labels": {"a": "b"}, "ownerReferences": [owner]}
    meta["creationTimestamp"] = "2020-01-01T00:00:00Z"
    patched = kube.core.patch_namespaced_pod_status(
        "p", kube_namespace, manifest({"status": {"phase": "Running"}, "metadata": meta})
    )
    assert patched.metadata.labels == {"a": "b"}  # pods' status strategy keeps only the spec
    assert patched.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert not patched.metadata.owner_references  # old kubelets corrupted them


def test_strategic_merge_patch_merges_conditions_by_type(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_pod(kube_namespace, pod_manifest("p"))
    ready = {"type": "Ready", "status": "False"}
    scheduled = {"type": "PodScheduled", "status": "True"}
    kube.core.patch_namespaced_pod_status(
        "p", kube_namespace, manifest({"status": {"conditions": [ready]}})
    )
    pod = kube.core.patch_namespaced_pod_status(
        "p",
        kube_namespace,
        manifest({"status": {"conditions": [scheduled, dict(ready, status="True")]}}),
    )
    by_type = {c.type: c.status for c in pod.status.conditions}
    assert by_type == {"Ready": "True", "PodScheduled": "True"}


def test_json_patch_and_merge_patch_apply(kube: KubeTestCluster, kube_namespace: str) -> None:
    kube.core.create_namespaced_config_map(
        kube_namespace, manifest({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}})
    )
    ops = [{"op": "replace", "path": "/data/a", "value": "9"}, {"op": "remove", "path": "/data/b"}]
    cm = kube.core.patch_namespaced_config_map("c", kube_namespace, manifest(ops))
    assert cm.data == {"a": "9"}
    cm = kube.core.patch_namespaced_config_map(
        "c",
        kube_namespace,
        manifest({"data": {"a": None, "c": "3"}}),
        _content_type="application/merge-patch+json",
    )
    assert cm.data == {"c": "3"}


def test_delete_with_a_wrong_uid_precondition_is_refused(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_config_map(kube_namespace, manifest({"metadata": {"name": "d"}}))
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
    with pytest.raises(client.ApiException) as info:
        kube.core.delete_namespaced_config_map("d", kube_namespace, body=options)
    assert info.value.status == 409
    assert "the UID in the precondition (not-the-uid) does not match the UID in record" in str(
        info.value.body
    )
    assert "The object might have been deleted and then recreated" in str(info.value.body)
    kube.core.delete_namespaced_config_map("d", kube_namespace)
    with pytest.raises(client.ApiException) as gone:
        kube.core.read_namespaced_config_map("d", kube_namespace)
    assert gone.value.status == 404


def test_a_bound_pod_stays_through_its_grace_period_until_deleted_with_grace_0(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_pod(kube_namespace, pod_manifest("p", nodeName=unique("node")))
    kube.core.delete_namespaced_pod("p", kube_namespace)  # the node must confirm it stopped
    status = {"status": {"phase": "Succeeded"}}
    patched = kube.core.patch_namespaced_pod_status("p", kube_namespace, status)
    assert patched.metadata.deletion_timestamp and patched.status.phase == "Succeeded"
    kube.core.delete_namespaced_pod("p", kube_namespace, grace_period_seconds=0)
    with pytest.raises(client.ApiException) as gone:
        kube.core.read_namespaced_pod("p", kube_namespace)
    assert gone.value.status == 404


def test_cluster_scoped_nodes_and_namespaced_leases(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    name = unique("edge")
    node = kube.core.create_node(manifest({"metadata": {"name": name, "labels": {"role": "edge"}}}))
    try:
        assert node.metadata.namespace is None
        lease = kube.coordination.create_namespaced_lease(
            kube_namespace, manifest({"metadata": {"name": name}, "spec": {"holderIdentity": name}})
        )
        lease.spec.lease_duration_seconds = 40
        renewed = kube.coordination.replace_namespaced_lease(name, kube_namespace, lease)
        assert renewed.spec.lease_duration_seconds == 40
        nodes = kube.core.list_node(field_selector=f"metadata.name={name}")
        assert [n.metadata.name for n in nodes.items] == [name]
    finally:
        kube.core.delete_node(name)


def test_a_lease_renew_time_is_a_micro_time(kube: KubeTestCluster, kube_namespace: str) -> None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{kube_namespace}/leases"
    spec = {"holderIdentity": "n", "renewTime": "2024-05-01T10:00:00.5Z"}
    status, refused = raw_call(
        kube.api_client, "POST", path, {"metadata": {"name": "l"}, "spec": spec}
    )
    assert (status, refused["reason"]) == (400, "BadRequest")
    assert 'cannot parse ".5Z" as ".000000"' in refused["message"]
    spec["renewTime"] = "2024-05-01T10:00:00.500000-01:00"
    status, created = raw_call(
        kube.api_client, "POST", path, {"metadata": {"name": "l"}, "spec": spec}
    )
    assert (status, created["spec"]["renewTime"]) == (201, "2024-05-01T11:00:00.500000Z")


def test_label_and_field_selectors_filter_lists(kube: KubeTestCluster, kube_namespace: str) -> None:
    for name, node, app in (("a", "n1", "x"), ("b", "n2", "x"), ("c", "n1", "y")):
        body = pod_manifest(name, nodeName=node)
        body["metadata"]["labels"] = {"app": app}
        kube.core.create_namespaced_pod(kube_namespace, body)
    on_n1 = kube.core.list_namespaced_pod(kube_namespace, field_selector="spec.nodeName=n1")
    assert sorted(p.metadata.name for p in on_n1.items) == ["a", "c"]
    both = kube.core.list_namespaced_pod(
        kube_namespace, field_selector="spec.nodeName=n1", label_selector="app in (x)"
    )
    assert [p.metadata.name for p in both.items] == ["a"]
    not_x = kube.core.list_namespaced_pod(kube_namespace, label_selector="app!=x")
    assert [p.metadata.name for p in not_x.items] == ["c"]


def test_limit_and_continue_page_through_a_list(kube: KubeTestCluster, kube_namespace: str) -> None:
    for i in range(5):
        kube.core.create_namespaced_config_map(
            kube_namespace, manifest({"metadata": {"name": f"m{i}"}})
        )
    names, token = [], None
    while True:
        page = kube.core.list_namespaced_config_map(kube_namespace, limit=2, _continue=token)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert sorted(names) == [f"m{i}" for i in range(5)]
