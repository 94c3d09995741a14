"""objects.py on its own: what a downstream message says about the object it carries,
and the delete a resync builds from that."""

from __future__ import annotations

import pytest

from beehive.message import JsonValue, Message
from modules import contract
from modules.cloudhub import objects


def message(resource: str, content: JsonValue, operation: str = "update") -> Message:
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation=operation,
        resource=resource, content=content,
    )  # fmt: skip


def test_a_namespaced_object_is_named_by_its_metadata() -> None:
    content: JsonValue = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "team", "uid": "cm-1"},
    }  # fmt: skip
    ref = objects.ref_of(message("node/n1/team/configmap/settings", content))
    assert ref == objects.ObjectRef("cm-1", "team", "configmap", "settings", "v1", "ConfigMap")
    assert not ref.cluster_scoped
    assert ref.record_name("n1") == "n1.cm-1"
    assert ref.resource("n1") == "node/n1/team/configmap/settings"


def test_a_cluster_scoped_object_has_namespace_null() -> None:
    content: JsonValue = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "uid": "n"},
    }
    ref = objects.ref_of(message("node/n1/null/node/n1", content))
    assert ref is not None
    assert (ref.namespace, ref.cluster_scoped) == ("null", True)
    assert ref.resource("n1") == "node/n1/null/node/n1"


@pytest.mark.parametrize(
    ("rtype", "content", "expected"),
    [
        pytest.param("pod", {"metadata": {"uid": "u"}}, ("v1", "Pod"), id="a known type"),
        pytest.param("endpoints", {"metadata": {"uid": "u"}}, ("v1", "Endpoints"), id="endpoints"),
        pytest.param("rule", {"metadata": {"uid": "u"}}, ("v1", "rule"), id="an unknown type"),
        pytest.param(
            "rule",
            {"apiVersion": "rules.kubeedge.io/v1", "kind": "Rule", "metadata": {"uid": "u"}},
            ("rules.kubeedge.io/v1", "Rule"),
            id="the content's own",
        ),
        pytest.param(
            "pod",
            {"apiVersion": 1, "kind": "", "metadata": {"uid": "u"}},
            ("v1", "Pod"),
            id="unusable values",
        ),
    ],
)
def test_api_version_and_kind_come_from_the_content_else_from_the_type(
    rtype: str, content: JsonValue, expected: tuple[str, str]
) -> None:
    ref = objects.ref_of(message(f"node/n1/default/{rtype}/x", content))
    assert ref is not None
    assert (ref.api_version, ref.kind) == expected
    assert ref.name == "x"  # no name in the metadata: the resource's


@pytest.mark.parametrize(
    ("resource", "content"),
    [
        pytest.param("node/n1/default/pod/p", {"metadata": {"name": "p"}}, id="no uid"),
        pytest.param("node/n1/default/pod/p", "text", id="no object"),
        pytest.param("node/n1/default/pod", {"metadata": {"uid": "u"}}, id="no name"),
        pytest.param("node/n1", {"metadata": {"uid": "u", "name": "p"}}, id="no type"),
        pytest.param("default/pod/p", {"metadata": {"uid": "u", "name": "p"}}, id="no node"),
    ],
)
def test_a_message_without_uid_name_or_type_carries_no_object(
    resource: str, content: JsonValue
) -> None:
    assert objects.ref_of(message(resource, content)) is None


@pytest.mark.parametrize(
    ("namespace", "metadata"),
    [
        pytest.param("team", {"name": "p", "uid": "u", "namespace": "team"}, id="namespaced"),
        pytest.param("null", {"name": "p", "uid": "u"}, id="cluster scoped"),
    ],
)
def test_the_delete_a_resync_sends_carries_the_minimal_object(
    namespace: str, metadata: dict[str, JsonValue]
) -> None:
    ref = objects.ObjectRef("u", namespace, "pod", "p", "v1", "Pod")
    delete = ref.delete_message("n1")
    route = delete.route
    assert (route.source, route.group, route.operation) == ("cloudhub", "resource", "delete")
    assert route.resource == f"node/n1/{namespace}/pod/p"
    assert delete.content == {"apiVersion": "v1", "kind": "Pod", "metadata": metadata}
    assert objects.ref_of(delete) == ref  # what it deletes is the object it names


def test_the_type_of_a_kind_is_its_lower_case_name() -> None:
    assert objects.type_of_kind("ConfigMap") == contract.CONFIGMAP
    assert objects.type_of_kind("Pod") == contract.POD
