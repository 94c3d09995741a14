"""Persistent volumes, their claims and volume attachments, through the official client.

The objects name a storage class and an attacher no cluster has, so that on a real
cluster no controller binds, provisions or attaches them while a test looks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.kube_fixtures import KubeTestCluster, delete_if_present, manifest, unique
from tests.modules.kubeapi.helpers import expect_failure

CLASS = "bh-test-no-such-class"
ATTACHER = "attacher.bh-test.invalid"


def _pv(name: str, **spec: Any) -> Any:
    body = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": "/tmp/bh-test"},
        "storageClassName": CLASS,
    }
    body.update(spec)
    return manifest(
        {"metadata": {"name": name}, "spec": {k: v for k, v in body.items() if v is not None}}
    )


def _pvc(name: str, **spec: Any) -> Any:
    body = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": CLASS,
    }
    body.update(spec)
    return manifest(
        {"metadata": {"name": name}, "spec": {k: v for k, v in body.items() if v is not None}}
    )


def _attachment(name: str, **spec: Any) -> Any:
    body = {"attacher": ATTACHER, "nodeName": "node-1", "source": {"persistentVolumeName": "pv-1"}}
    body.update(spec)
    return manifest(
        {"metadata": {"name": name}, "spec": {k: v for k, v in body.items() if v is not None}}
    )


@pytest.fixture
def storage(kube: KubeTestCluster) -> Any:
    return client.StorageV1Api(kube.api_client)


@pytest.fixture
def pv_name(kube: KubeTestCluster) -> Iterator[str]:
    """A unique persistent volume name; the volume is deleted afterwards if it exists."""
    name = unique("pv")
    yield name
    delete_if_present(kube.core.delete_persistent_volume, name)


@pytest.fixture
def va_name(kube: KubeTestCluster, storage: Any) -> Iterator[str]:
    name = unique("va")
    yield name
    delete_if_present(storage.delete_volume_attachment, name)


# -- persistent volumes ------------------------------------------------------------


def test_a_persistent_volume_starts_pending_with_the_v1_defaults(
    kube: KubeTestCluster, pv_name: str
) -> None:
    created = kube.core.create_persistent_volume(_pv(pv_name))
    assert created.metadata.namespace is None
    assert created.status.phase == "Pending" and created.status.last_phase_transition_time
    assert created.spec.persistent_volume_reclaim_policy == "Retain"
    assert created.spec.volume_mode == "Filesystem"
    listed = kube.core.list_persistent_volume(field_selector=f"metadata.name={pv_name}")
    assert [pv.metadata.name for pv in listed.items] == [pv_name]


def test_a_persistent_volume_status_changes_only_through_its_subresource(
    kube: KubeTestCluster, pv_name: str
) -> None:
    kube.core.create_persistent_volume(_pv(pv_name))
    stamp = "2020-01-01T00:00:00Z"
    status = {
        "status": {"phase": "Failed", "message": "disk gone", "lastPhaseTransitionTime": stamp}
    }
    patched = kube.core.patch_persistent_volume_status(pv_name, manifest(status))
    assert (patched.status.phase, patched.status.message) == ("Failed", "disk gone")
    assert patched.status.last_phase_transition_time.isoformat() == "2020-01-01T00:00:00+00:00"
    main = kube.core.patch_persistent_volume(
        pv_name, manifest({"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Bound"}})
    )
    assert main.metadata.labels == {"a": "b"} and main.status.phase != "Bound"


def test_a_phase_change_without_a_time_stamps_the_transition(
    kube: KubeTestCluster, pv_name: str
) -> None:
    kube.core.create_persistent_volume(_pv(pv_name))
    kube.core.patch_persistent_volume_status(
        pv_name,
        manifest(
            {"status": {"phase": "Failed", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}}
        ),
    )
    patched = kube.core.patch_persistent_volume_status(
        pv_name, manifest({"status": {"phase": "Released"}})
    )
    assert patched.status.last_phase_transition_time.year > 2020


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        pytest.param({"capacity": None}, "spec.capacity: Required value", id="no capacity"),
        pytest.param(
            {"accessModes": None}, "spec.accessModes: Required value", id="no access modes"
        ),
        pytest.param(
            {"accessModes": ["ReadWriteSometimes"]},
            'spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: '
            '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
            id="unknown access mode",
        ),
        pytest.param(
            {"hostPath": None}, "spec: Required value: must specify a volume type", id="no source"
        ),
        pytest.param(
            {"nfs": {"server": "nfs.example", "path": "/x"}},
            "may not specify more than 1 volume type",
            id="two sources",
        ),
        pytest.param(
            {"capacity": {"storage": "0"}},
            'spec.capacity[storage]: Invalid value: "0": must be greater than zero',
            id="no room",
        ),
    ],
)
def test_invalid_persistent_volumes_are_refused(
    kube: KubeTestCluster, pv_name: str, spec: dict[str, Any], text: str
) -> None:
    failure = expect_failure(
        lambda: kube.core.create_persistent_volume(_pv(pv_name, **spec)), 422, "Invalid", text
    )
    assert failure["message"].startswith(f'PersistentVolume "{pv_name}" is invalid: ')


def test_a_persistent_volume_source_cannot_change(kube: KubeTestCluster, pv_name: str) -> None:
    kube.core.create_persistent_volume(_pv(pv_name))
    moved = {"spec": {"hostPath": {"path": "/elsewhere"}}}
    expect_failure(
        lambda: kube.core.patch_persistent_volume(pv_name, manifest(moved)),
        422,
        "Invalid",
        "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation",
    )


# -- claims ------------------------------------------------------------------------


def test_a_claim_starts_pending_and_is_deleted_with_the_object_returned(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    created = kube.core.create_namespaced_persistent_volume_claim(kube_namespace, _pvc("data"))
    assert (created.status.phase, created.spec.volume_mode) == ("Pending", "Filesystem")
    claimed = kube.core.patch_namespaced_persistent_volume_claim_status(
        "data", kube_namespace, manifest({"status": {"phase": "Lost"}})
    )
    assert claimed.status.phase == "Lost"
    deleted = kube.core.delete_namespaced_persistent_volume_claim("data", kube_namespace)
    assert deleted.metadata.uid == created.metadata.uid


@pytest.mark.parametrize(
    ("spec", "code", "reason", "text"),
    [
        pytest.param(
            {"resources": {}},
            422,
            "Invalid",
            "spec.resources[storage]: Required value",
            id="no size",
        ),
        pytest.param(
            {"accessModes": None},
            422,
            "Invalid",
            "spec.accessModes: Required value: at least 1 access mode is required",
            id="no access modes",
        ),
        pytest.param(
            {"resources": {"requests": {"storage": "0Gi"}}},
            422,
            "Invalid",
            'spec.resources[storage]: Invalid value: "0": must be greater than zero',
            id="zero size",
        ),
        pytest.param(
            {"resources": {"requests": {"storage": "lots"}}},
            400,
            "BadRequest",
            "quantities must match the regular expression",
            id="size that is not a quantity",
        ),
    ],
)
def test_invalid_claims_are_refused(
    kube: KubeTestCluster,
    kube_namespace: str,
    spec: dict[str, Any],
    code: int,
    reason: str,
    text: str,
) -> None:
    expect_failure(
        lambda: kube.core.create_namespaced_persistent_volume_claim(
            kube_namespace, _pvc("bad", **spec)
        ),
        code,
        reason,
        text,
    )


def test_an_unbound_claim_cannot_change_its_spec(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_persistent_volume_claim(kube_namespace, _pvc("data"))
    bigger = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    expect_failure(
        lambda: kube.core.patch_namespaced_persistent_volume_claim(
            "data", kube_namespace, manifest(bigger)
        ),
        422,
        "Invalid",
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims",
    )
    labelled = kube.core.patch_namespaced_persistent_volume_claim(
        "data", kube_namespace, manifest({"metadata": {"labels": {"tier": "db"}}})
    )
    assert labelled.metadata.labels == {"tier": "db"}


# -- volume attachments ------------------------------------------------------------


def test_a_volume_attachment_starts_detached_and_reports_through_its_status(
    storage: Any, va_name: str
) -> None:
    created = storage.create_volume_attachment(_attachment(va_name))
    assert created.status.attached is False and created.metadata.namespace is None
    attached = storage.patch_volume_attachment_status(
        va_name,
        manifest({"status": {"attached": True, "attachmentMetadata": {"dev": "/dev/xvdb"}}}),
    )
    assert attached.status.attached is True
    assert attached.status.attachment_metadata == {"dev": "/dev/xvdb"}
    assert attached.spec.node_name == "node-1"


def test_a_volume_attachment_spec_cannot_change(storage: Any, va_name: str) -> None:
    storage.create_volume_attachment(_attachment(va_name))
    expect_failure(
        lambda: storage.patch_volume_attachment(
            va_name, manifest({"spec": {"nodeName": "node-2"}})
        ),
        422,
        "Invalid",
        "field is immutable",
    )


def test_an_empty_volume_attachment_lists_every_missing_field(storage: Any, va_name: str) -> None:
    body = manifest(
        {"metadata": {"name": va_name}, "spec": {"attacher": "", "nodeName": "", "source": {}}}
    )
    failure = expect_failure(
        lambda: storage.create_volume_attachment(body),
        422,
        "Invalid",
        f'VolumeAttachment.storage.k8s.io "{va_name}" is invalid: [spec.attacher: Required value, '
        "spec.source: Required value: must specify exactly one of inlineVolumeSpec and "
        'persistentVolumeName, spec.nodeName: Invalid value: "": a lowercase RFC 1123 subdomain',
    )
    assert [c["field"] for c in failure["details"]["causes"]] == [
        "spec.attacher",
        "spec.source",
        "spec.nodeName",
    ]
