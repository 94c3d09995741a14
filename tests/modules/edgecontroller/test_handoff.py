"""The hand-off to cloudhub never loses: when cloudhub's mailbox stays full past its
timeout, edgecontroller waits and hands over what it has, in order, rather than drop
it (it has already recorded those objects as sent to their nodes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from beehive import Hive
from beehive.spec import MailboxSpec
from modules import contract
from modules.edgecontroller import EdgeController
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube.connection import KubeConnection
from tests.fakes import Probe, RecordingModule, RecordingSettings, eventually
from tests.kube_fixtures import KubeTestCluster
from tests.modules.edgecontroller.helpers import WAIT, edge_node, pod

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_cloudhub(make_hive, kube: KubeTestCluster, probe: Probe) -> Iterator[Hive]:
    """edgecontroller, and a cloudhub that takes 2 messages at a time and lets senders
    wait 50 ms for room; the test holds it (probe.gate) until it lets it go."""
    hive = make_hive()
    services = {"kube": KubeConnection(kube.kubeconfig_path), "probe": probe}
    hive.add(contract.CLOUDHUB, RecordingModule, services=services,
             mailbox=MailboxSpec(size=2, timeout=0.05),
             settings=RecordingSettings(gated=True))  # fmt: skip
    hive.add(contract.EDGECONTROLLER, EdgeController, services=services,
             settings=EdgeControllerSettings())  # fmt: skip
    hive.start()
    yield hive
    probe.gate.set()


def test_a_full_cloudhub_mailbox_delays_deliveries_and_loses_none(
    slow_cloudhub: Hive, kube: KubeTestCluster, kube_namespace: str, probe: Probe
) -> None:
    ns, node = kube_namespace, "edge-slow"
    kube.core.create_node(edge_node(node))
    try:
        assert eventually(lambda: "watches" in slow_cloudhub.commands, WAIT)
        probe.gate.clear()  # cloudhub stops taking messages: its mailbox fills
        names = [f"p{i}" for i in range(8)]
        for name in names:
            kube.core.create_namespaced_pod(ns, pod(name, node))
        assert eventually(lambda: _full_and_waited(slow_cloudhub), WAIT)  # no probe event
        probe.gate.set()

        def inserted() -> list[str]:
            return [
                m.route.resource.rsplit("/", 1)[-1]
                for m in probe.messages(contract.CLOUDHUB)
                if m.route.operation == "insert" and f"/{ns}/pod/" in m.route.resource
            ]

        assert probe.wait_for(lambda: sorted(inserted()) == names, WAIT), inserted()
        assert len(slow_cloudhub.dead_letters) == 0
    finally:
        kube.core.delete_node(node)


def _full_and_waited(hive: Hive) -> bool:
    """cloudhub's mailbox is full, and a sender has waited past its timeout (once the
    old code dropped what it could not hand over there: a dead letter)."""
    mailbox = hive.module(contract.CLOUDHUB).mailbox
    return bool(mailbox.depth >= mailbox.capacity and mailbox.oldest_age > 0.2)
