"""Ack/no-ack classification and the facts the queue keys messages by."""

from __future__ import annotations

import pytest

from beehive.message import JsonValue, Message
from modules.cloudhub.classify import object_uid, parse_rv, requires_ack, resource_version
from tests.modules.cloudhub.helpers import obj


def ec(
    operation: str,
    resource: str,
    content: JsonValue = None,
    *,
    source: str = "edgecontroller",
    group: str = "resource",
) -> Message:
    return Message.new(
        source=source, group=group, operation=operation, resource=resource, content=content
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(obj(), True, id="pod update needs an ack"),
        pytest.param(obj(operation="delete"), True, id="pod delete needs an ack"),
        pytest.param(obj(kind="configmap"), True, id="configmap needs an ack"),
        pytest.param(ec("update", "node/n1/null/node/n1"), True, id="node update needs an ack"),
        pytest.param(ec("delete", "node/n1/null/node/n1"), False, id="node delete does not"),
        pytest.param(ec("response", "node/n1/default/lease/n1"), False, id="lease reply"),
        pytest.param(ec("response", "node/n1/default/pod/p", {}), False, id="pod reply"),
        pytest.param(ec("response", "node/n1/default/configmap/c", "OK"), False, id="OK reply"),
        pytest.param(
            ec("response", "node/n1/default/configmap/c", {"ErrStatus": {}}),
            False,
            id="error value reply",
        ),
        pytest.param(
            ec("response", "node/n1/default/configmap/c", {"kind": "ConfigMap"}),
            True,
            id="configmap query reply needs an ack",
        ),
        pytest.param(ec("update", "node/n1/default/podlist"), False, id="podlist"),
        pytest.param(ec("query", "node/n1/k8s/ca.crt"), False, id="ca cert"),
        pytest.param(ec("update", "node/n1/x", group="user"), False, id="group user"),
        pytest.param(ec("update", "node/n1/x", source="taskmanager"), False, id="taskmanager"),
        pytest.param(ec("createvolume", "node/n1/x"), False, id="csi volume op"),
    ],
)
def test_ack_classification_follows_kubeedge(message: Message, expected: bool) -> None:
    assert requires_ack(message) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("4711", 4711, id="digits"),
        pytest.param("007", 7, id="leading zeros"),
        pytest.param("", None, id="empty"),
        pytest.param("12a", None, id="not a number"),
        pytest.param("-1", None, id="negative"),
        pytest.param("١٢", None, id="non-ascii digits"),
    ],
)
def test_resource_versions_are_unsigned_integers(text: str, expected: int | None) -> None:
    assert parse_rv(text) == expected


def test_uid_and_version_come_from_the_object() -> None:
    message = ec(
        "update", "node/n1/default/pod/p", {"metadata": {"uid": "u", "resourceVersion": "9"}}
    )
    assert object_uid(message) == "u"
    assert resource_version(message) == "9"
    assert object_uid(ec("update", "x", "text")) == ""
    assert object_uid(ec("update", "x", {"metadata": {"uid": 5}})) == ""
