"""NodeEchoes: a node's Node changed only in status since it acked is not sent again."""

from __future__ import annotations

from typing import Any

from beehive.message import Message
from modules import contract
from modules.cloudhub import classify
from modules.cloudhub.echo import NodeEchoes
from tests.modules.cloudhub.helpers import obj


def node_update(rv: int, *, labels: dict[str, str] | None = None, ready: str = "True",
                uid: str = "node-uid", operation: str = "update") -> Message:  # fmt: skip
    content: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "uid": uid, "resourceVersion": str(rv),
                     "labels": labels or {"role": "edge"}},
        "spec": {"podCIDR": "10.0.0.0/24"},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }  # fmt: skip
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation=operation,
        resource=contract.build_resource("n1", "", contract.NODE, "n1"), content=content,
        resource_version=str(rv),
    )  # fmt: skip


def acked_at(echoes: NodeEchoes, message: Message) -> None:
    echoes.queued("n1", message)
    rv = int(message.header.resource_version)
    echoes.acked("n1", classify.object_uid(message), rv)


def test_a_node_update_that_changes_only_status_since_the_ack_is_an_echo() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    assert echoes.is_echo("n1", node_update(12, ready="Unknown"))
    assert echoes.skipped == 1


def test_a_changed_label_is_not_an_echo() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    assert not echoes.is_echo("n1", node_update(12, labels={"role": "edge", "zone": "b"}))


def test_nothing_is_an_echo_before_the_node_acked_a_version() -> None:
    echoes = NodeEchoes()
    assert not echoes.is_echo("n1", node_update(10))
    echoes.queued("n1", node_update(10))
    assert not echoes.is_echo("n1", node_update(11, ready="Unknown"))


def test_while_a_newer_version_is_on_its_way_nothing_is_an_echo() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    echoes.queued("n1", node_update(12, labels={"role": "gateway"}))  # in flight, not acked
    # Back to the acked labels: must be sent, or the edge would keep "gateway".
    assert not echoes.is_echo("n1", node_update(13))


def test_the_shape_follows_the_newest_acked_version() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    acked_at(echoes, node_update(12, labels={"role": "gateway"}))
    assert not echoes.is_echo("n1", node_update(13))
    assert echoes.is_echo("n1", node_update(14, labels={"role": "gateway"}, ready="False"))


def test_other_kinds_deletes_and_another_uid_are_never_echoes() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    assert not echoes.is_echo("n1", obj("node-uid", "12", node="n1"))  # a pod
    assert not echoes.is_echo("n1", node_update(12, operation="delete"))
    assert not echoes.is_echo("n1", node_update(12, uid="recreated"))


def test_a_deleted_node_is_forgotten() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    echoes.forget("n1")
    assert not echoes.is_echo("n1", node_update(12, ready="Unknown"))


def test_an_ack_of_an_older_version_than_the_one_on_its_way_changes_nothing() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    echoes.queued("n1", node_update(12, labels={"role": "gateway"}))
    echoes.acked("n1", "node-uid", 11)  # not the version queued
    assert not echoes.is_echo("n1", node_update(13, labels={"role": "gateway"}))
    echoes.acked("n1", "node-uid", 12)
    assert echoes.is_echo("n1", node_update(13, labels={"role": "gateway"}, ready="False"))


def test_a_node_update_without_a_numeric_version_leaves_nothing_to_compare_with() -> None:
    echoes = NodeEchoes()
    acked_at(echoes, node_update(10))
    unversioned = node_update(11)._replace(content={"kind": "Node", "metadata": {"name": "n1"}})
    echoes.queued("n1", unversioned.with_header(resource_version=""))
    assert not echoes.is_echo("n1", node_update(12, ready="Unknown"))
