"""cloudcore killed with SIGKILL mid-sync and started again: the edge converges, and no
version whose ack cloudcore had recorded is sent again.

cloudcore runs as a real `beehive run` process against an API server in this process;
the edge (edgehub + metamanager) runs here too, counting every version it is sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from beehive import Hive, Message
from modules import contract
from modules.cloudhub import objectsync
from modules.edgehub import EdgeHub, EdgeHubSettings
from modules.kubeapi import EmbeddedKubeAPI
from modules.metamanager.module import MetaManager, MetaManagerSettings
from tests.fakes import beehive_command, eventually, free_port
from tests.kube_fixtures import pod_manifest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0

CLOUDCORE = """
hive:
  admin: {{address: "unix://{sock}"}}
kube: {{mode: kubeconfig, kubeconfig: "{kubeconfig}"}}
modules:
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}, tls: false, tick_interval: 0.05}}
"""


class CountingMetaManager(MetaManager):
    """A metamanager that counts every (resource, resourceVersion) it is sent."""

    def on_message(self, message: Message) -> None:
        if message.route.operation in ("insert", "update") and not message.parent_msg_id:
            seen: Counter[tuple[str, str]] = self.context.services["seen"]
            with self.context.services["lock"]:
                seen[(message.route.resource, message.header.resource_version)] += 1
        super().on_message(message)


class World:
    """The API server, a client for it, the cloudcore process and the edge."""

    def __init__(self, tmp: Path, make_hive: Callable[..., Hive]) -> None:
        self.api = EmbeddedKubeAPI().start()
        self.kubeconfig = self.api.write_kubeconfig(tmp / "kubeconfig")
        self.client = config.new_client_from_config(str(self.kubeconfig))
        self.core: Any = client.CoreV1Api(self.client)
        self.port = free_port()
        self.config = tmp / "cloudcore.yaml"
        text = CLOUDCORE.format(sock=tmp / "cc.sock", kubeconfig=self.kubeconfig, port=self.port)
        self.config.write_text(text)
        self.cloudcore: subprocess.Popen[str] | None = None
        self.seen: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.edge = make_hive()
        services = {"seen": self.seen, "lock": self.lock}
        db = str(tmp / "edge.db")
        self.edge.add(contract.METAMANAGER, CountingMetaManager, services=services,
                      settings=MetaManagerSettings(db_path=db, report_pod_status=False))  # fmt: skip
        settings = EdgeHubSettings(server=f"127.0.0.1:{self.port}", node_name="edge-k",
                                   reconnect_initial=0.05, reconnect_max=0.2, tls=False)  # fmt: skip
        self.edge.add(contract.EDGEHUB, EdgeHub, settings=settings)

    def start_cloudcore(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [*beehive_command(), "run", str(self.config), "--log-level", "warning"]
        self.cloudcore = subprocess.Popen(
            command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )

    def kill_cloudcore(self) -> None:
        assert self.cloudcore is not None
        self.cloudcore.send_signal(signal.SIGKILL)
        self.cloudcore.communicate(timeout=30)

    def stored(self) -> dict[str, str]:
        command = self.edge.commands.get("metamanager.store")
        rows = command(type="pod") if command else []
        return {r["name"]: str(r["resource_version"]) for r in rows}

    def pods(self, namespace: str) -> dict[str, str]:
        items = self.core.list_namespaced_pod(namespace).items
        return {p.metadata.name: p.metadata.resource_version for p in items}

    def acked(self, uid: str) -> str:
        try:
            held = objectsync.read_acked(self.client, "edge-k").get(uid)
        except client.ApiException:  # before cloudcore installed the CRD
            return ""
        return str(held.rv) if held is not None and held.rv is not None else ""

    def close(self) -> None:
        if self.cloudcore is not None and self.cloudcore.poll() is None:
            self.cloudcore.terminate()
            self.cloudcore.communicate(timeout=30)
        self.client.close()
        self.api.stop()


@pytest.fixture
def world(tmp_path: Path, make_hive: Callable[..., Hive]) -> Iterator[World]:
    w = World(tmp_path, make_hive)
    try:
        yield w
    finally:
        w.edge.stop(timeout=5)
        w.close()


def test_sigkill_mid_sync_converges_and_resends_nothing_already_recorded(world: World) -> None:
    ns = "default"
    world.start_cloudcore()
    world.edge.start()
    assert eventually(lambda: bool(world.core.list_node().items), timeout=WAIT)  # edge registered
    node = "edge-k"
    first = [
        world.core.create_namespaced_pod(ns, pod_manifest(f"a{i}", nodeName=node))
        for i in range(10)
    ]
    settled = {p.metadata.name: p.metadata.resource_version for p in first}
    assert eventually(lambda: world.stored() == settled, timeout=WAIT)
    uids = {p.metadata.name: p.metadata.uid for p in first}
    assert eventually(
        lambda: all(world.acked(uids[n]) == rv for n, rv in settled.items()), timeout=WAIT
    )
    before = Counter(world.seen)

    # A second wave, and cloudcore killed while it is being delivered.
    for i in range(30):
        world.core.create_namespaced_pod(ns, pod_manifest(f"b{i}", nodeName=node))
        if i == 10:
            world.kill_cloudcore()
    world.core.delete_namespaced_pod("a0", ns, grace_period_seconds=0)  # while cloudcore is down
    world.core.patch_namespaced_pod("a1", ns, {"metadata": {"labels": {"v": "2"}}})
    world.start_cloudcore()

    assert eventually(lambda: world.stored() == world.pods(ns), timeout=WAIT), (
        world.stored(),
        world.pods(ns),
    )
    resent = [key for key, count in before.items() if world.seen[key] > count]
    assert resent == [], f"versions already acked and recorded were sent again: {resent}"


def test_sigkill_while_deletes_are_acked_and_recorded_loses_no_delete(world: World) -> None:
    ns, node = "default", "edge-k"
    world.start_cloudcore()
    world.edge.start()
    assert eventually(lambda: bool(world.core.list_node().items), timeout=WAIT)  # edge registered
    made = [
        world.core.create_namespaced_pod(ns, pod_manifest(f"d{i}", nodeName=node))
        for i in range(20)
    ]
    uids = [p.metadata.uid for p in made]
    assert eventually(lambda: all(world.acked(uid) for uid in uids), timeout=WAIT)

    # Deletes acked (their entries leaving the records) when cloudcore is killed, and more
    # while it is down: whatever the records said at the kill, the edge ends up empty.
    for i in range(20):
        world.core.delete_namespaced_pod(f"d{i}", ns, grace_period_seconds=0)
        if i == 9:
            assert eventually(lambda: "d0" not in world.stored(), timeout=WAIT)
            world.kill_cloudcore()
    world.start_cloudcore()

    assert eventually(lambda: world.stored() == world.pods(ns) == {}, timeout=WAIT), (
        world.stored(),
        world.pods(ns),
    )
    assert eventually(lambda: not any(world.acked(uid) for uid in uids), timeout=WAIT)
