"""Watches through `kubernetes.watch.Watch`: replay from a resourceVersion, selectors, bookmarks."""

from __future__ import annotations

import json
import threading
from typing import Any

from kubernetes import client, watch

from tests.kube_fixtures import WAIT_SECONDS, KubeTestCluster, manifest, pod_manifest


def _events(kube: KubeTestCluster, ns: str, count: int, **kwargs: Any) -> list[tuple[str, str]]:
    """The first `count` (type, name) events of a config map watch, within the time bound."""
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        kube.core.list_namespaced_config_map, ns, timeout_seconds=WAIT_SECONDS, **kwargs
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == count:
            w.stop()
    return seen


def test_watch_from_a_resource_version_replays_later_changes(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    start = kube.core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    cm = kube.core.create_namespaced_config_map(
        kube_namespace, manifest({"metadata": {"name": "a"}})
    )
    cm.data = {"k": "v"}
    kube.core.replace_namespaced_config_map("a", kube_namespace, cm)
    kube.core.delete_namespaced_config_map("a", kube_namespace)
    events = _events(kube, kube_namespace, 3, resource_version=start)
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_resource_version_starts_with_what_exists(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_config_map(kube_namespace, manifest({"metadata": {"name": "old"}}))
    assert _events(kube, kube_namespace, 1) == [("ADDED", "old")]


def test_watch_sees_writes_made_while_it_is_open(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    start = kube.core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    opened = threading.Event()
    seen: list[tuple[str, str]] = []

    def watcher() -> None:
        w = watch.Watch()
        api = client.CoreV1Api(kube.new_client())
        stream = w.stream(
            api.list_namespaced_config_map,
            kube_namespace,
            resource_version=start,
            timeout_seconds=WAIT_SECONDS,
        )
        opened.set()
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    thread = threading.Thread(target=watcher)
    thread.start()
    assert opened.wait(WAIT_SECONDS)
    for name in ("x", "y"):
        kube.core.create_namespaced_config_map(
            kube_namespace, manifest({"metadata": {"name": name}})
        )
    thread.join(WAIT_SECONDS + 1)
    assert seen == [("ADDED", "x"), ("ADDED", "y")]


def test_label_selector_turns_leaving_objects_into_deleted_events(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    start = kube.core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    body = manifest({"metadata": {"name": "s", "labels": {"sync": "yes"}}})
    kube.core.create_namespaced_config_map(kube_namespace, body)
    kube.core.patch_namespaced_config_map(
        "s", kube_namespace, manifest({"metadata": {"labels": {"sync": "no"}}})
    )
    kube.core.patch_namespaced_config_map(
        "s", kube_namespace, manifest({"metadata": {"labels": {"sync": "yes"}}})
    )
    events = _events(kube, kube_namespace, 3, resource_version=start, label_selector="sync=yes")
    assert events == [("ADDED", "s"), ("DELETED", "s"), ("ADDED", "s")]


def test_pod_watch_by_node_name_only_sees_that_node(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    start = kube.core.list_namespaced_pod(kube_namespace).metadata.resource_version
    kube.core.create_namespaced_pod(kube_namespace, pod_manifest("other", nodeName="n2"))
    kube.core.create_namespaced_pod(kube_namespace, pod_manifest("mine", nodeName="n1"))
    w = watch.Watch()
    stream = w.stream(
        kube.core.list_namespaced_pod,
        kube_namespace,
        resource_version=start,
        field_selector="spec.nodeName=n1",
        timeout_seconds=WAIT_SECONDS,
    )
    first = next(iter(stream))
    w.stop()
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "mine")


def test_initial_events_end_with_an_annotated_bookmark(
    kube: KubeTestCluster, kube_namespace: str
) -> None:
    kube.core.create_namespaced_config_map(kube_namespace, manifest({"metadata": {"name": "a"}}))
    response = kube.core.list_namespaced_config_map(
        kube_namespace,
        watch=True,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=WAIT_SECONDS,
        _preload_content=False,
    )
    try:
        lines = (json.loads(line) for line in response if line.strip())
        added = next(lines)
        bookmark = next(lines)
    finally:
        response.close()
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "a")
    assert bookmark["type"] == "BOOKMARK"
    meta = bookmark["object"]["metadata"]
    assert meta["annotations"]["k8s.io/initial-events-end"] == "true"
    assert int(meta["resourceVersion"]) >= int(added["object"]["metadata"]["resourceVersion"])
