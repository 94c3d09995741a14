"""The leader's cleanup with several replicas: owner Leases of deleted nodes go, a node
claimed again keeps its own, and a replica that does not lead does nothing."""

from __future__ import annotations

from typing import Any

import pytest

from modules.cloudhub.collect import Collector
from modules.replicas.leases import LeaseAPI
from modules.replicas.owners import OwnerLeases

pytestmark = pytest.mark.integration


def collector(owners: OwnerLeases, nodes: set[str], *, leader: bool) -> Collector:
    return Collector(owners, is_leader=lambda: leader, node_names=lambda: set(nodes),
                     records=None, interval=3600)  # fmt: skip


def test_the_leader_deletes_the_owner_leases_of_deleted_nodes(kube: Any, kube_namespace: str):
    owners = OwnerLeases(LeaseAPI(kube.new_client(), kube_namespace, timeout=10), "r1")
    for node in ("edge-kept", "edge-gone"):
        owners.claim(node)
    follower = collector(owners, {"edge-kept"}, leader=False)
    assert not follower.run_once()
    assert {o.node for o in owners.owners()} == {"edge-kept", "edge-gone"}
    leader = collector(owners, {"edge-kept"}, leader=True)
    assert leader.run_once()
    assert [o.node for o in owners.owners()] == ["edge-kept"]
    assert leader.leases_deleted == 1


def test_a_failed_node_list_deletes_nothing(kube: Any, kube_namespace: str):
    owners = OwnerLeases(LeaseAPI(kube.new_client(), kube_namespace, timeout=10), "r1")
    owners.claim("edge-x")
    blind = Collector(owners, is_leader=lambda: True, node_names=lambda: None, records=None,
                      interval=3600)  # fmt: skip
    assert not blind.run_once()
    assert [o.node for o in owners.owners()] == ["edge-x"]
