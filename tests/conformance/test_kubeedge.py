"""Conformance with real KubeEdge on a real API server (opt-in; see conftest.py).

A real edgecore joins this project's cloudcore and converges through creates, updates
and deletes, a SIGKILL of cloudcore and an edgecore restart; this project's edge joins
KubeEdge's cloudcore; and, with containerd, a real edgecore with edged runs pods
against this project's cloudcore: its Node registered and Ready, a pod with a configmap
volume and one with a projected service-account token Running with their status in
the API, a graceful delete confirmed, the Lease renewed, Events written, and nothing
waiting on the cloud for an ack that never comes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modules.metamanager.store import MetaStore
from tests.conformance import kubeedge as ke
from tests.conformance.kubeedge import wait_for
from tests.kube_fixtures import KubeTestCluster, delete_if_present, manifest, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE = os.environ.get("BEEHIVE_TEST_IMAGE", "docker.io/library/busybox:local")
PAUSE = os.environ.get("BEEHIVE_TEST_PAUSE_IMAGE", "registry.local/pause:3.9")


def bound_pod(name: str, node: str, configmap: str = "", **spec: Any) -> Any:
    container: dict[str, Any] = {"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                 "command": ["sleep", "3600"]}  # fmt: skip
    body: dict[str, Any] = {"metadata": {"name": name, "labels": {"app": "conf"}},
                            "spec": {"nodeName": node, "containers": [container], **spec}}  # fmt: skip
    if configmap:
        container["volumeMounts"] = [{"name": "cfg", "mountPath": "/cfg"}]
        body["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": configmap}}]
    return manifest(body)


def configmap(name: str, value: str) -> Any:
    return manifest({"metadata": {"name": name}, "data": {"k": value}})


def rv(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion", ""))


@contextlib.contextmanager
def cleanup_node(kube: KubeTestCluster, node: str) -> Iterator[None]:
    try:
        yield
    finally:
        delete_if_present(kube.core.delete_node, node)
        delete_if_present(kube.coordination.delete_namespaced_lease, node, "kube-node-lease")


def test_a_real_edgecore_joins_our_cloudcore_and_converges(
    real_kube: KubeTestCluster, kubeedge: Path, tmp_path: Path
) -> None:
    kube, ns, node = real_kube, real_kube.namespace(), unique("ke-edge")
    core = kube.core
    ke.edge_node(core, node)  # edged is off: nothing else registers the Node
    cloud = ke.OurCloudCore(tmp_path / "cloud", kube.kubeconfig_path)
    with cleanup_node(kube, node), ke.running(cloud):
        wait_for(cloud.ready, what="our cloudcore listening")
        token = wait_for(lambda: _token(core), what="the join token")
        edge = ke.EdgeCore(kubeedge / "edgecore", tmp_path / "edge", node=node, token=token,
                           hub_port=cloud.hub_port, cert_port=cloud.cert_port)  # fmt: skip
        with ke.running(edge):
            core.create_namespaced_config_map(ns, configmap("cfg", "one"))
            for name in ("p1", "p2"):
                core.create_namespaced_pod(ns, bound_pod(name, node, configmap="cfg"))
            wait_for(lambda: {f"{ns}/p1", f"{ns}/p2"} <= set(edge.stored("pod")), what="pods")
            # configmaps have their own watch: this one may come after the pods
            wait_for(lambda: f"{ns}/cfg" in edge.stored("configmap"), what="the configmap")
            assert edge.stored("configmap")[f"{ns}/cfg"]["data"] == {"k": "one"}

            core.patch_namespaced_config_map("cfg", ns, {"data": {"k": "two"}})
            core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"v": "2"}}})
            core.delete_namespaced_pod("p2", ns, grace_period_seconds=0)
            wait_for(lambda: _labels(edge, f"{ns}/p1").get("v") == "2", what="p1 relabelled")
            wait_for(lambda: f"{ns}/p2" not in edge.stored("pod"), what="p2 deleted")
            wait_for(lambda: edge.stored("configmap")[f"{ns}/cfg"]["data"]["k"] == "two")

            cloud.kill()  # changes while cloudcore is down reach the edge after its restart
            core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"v": "3"}}})
            core.create_namespaced_pod(ns, bound_pod("p3", node))
            core.patch_namespaced_config_map("cfg", ns, {"data": {"k": "three"}})
            cloud.start()
            wait_for(lambda: _labels(edge, f"{ns}/p1").get("v") == "3", what="p1 after kill")
            wait_for(lambda: f"{ns}/p3" in edge.stored("pod"), what="p3 after kill")
            wait_for(lambda: edge.stored("configmap")[f"{ns}/cfg"]["data"]["k"] == "three")

            edge.stop()  # and changes while edgecore is down reach it after its restart
            core.delete_namespaced_pod("p3", ns, grace_period_seconds=0)
            edge.start()
            wait_for(lambda: f"{ns}/p3" not in edge.stored("pod"), what="p3 deleted")
            wait_for(lambda: _settled(cloud, node), what="nothing unacked at cloudhub")
        assert "no handler found" not in edge.output()


def test_our_edge_joins_kubeedge_cloudcore_and_converges(
    real_kube: KubeTestCluster, kubeedge: Path, tmp_path: Path
) -> None:
    kube, ns, node = real_kube, real_kube.namespace(), unique("our-edge")
    core = kube.core
    cloud = ke.KubeEdgeCloudCore(kubeedge / "cloudcore", tmp_path / "cloud", kube.kubeconfig_path)
    with cleanup_node(kube, node), ke.running(cloud):
        wait_for(cloud.ready, what="KubeEdge's cloudcore listening")
        token = wait_for(lambda: _token(core), what="the join token")
        edge = _our_edge(tmp_path / "edge", node, token, cloud.hub_port, cloud.cert_port)
        with ke.running(edge):
            wait_for(lambda: _node(core, node), what="our edge registered its Node")
            core.create_namespaced_config_map(ns, configmap("cfg", "one"))
            core.create_namespaced_pod(ns, bound_pod("p1", node, configmap="cfg"))
            db = tmp_path / "edge" / "edge.db"
            wait_for(lambda: "p1" in _our_stored(db), what="the pod")
            # KubeEdge sends a new pod's configmaps when edged asks; a change goes to every
            # node whose pods use it (a hollow edge asks nothing).
            core.patch_namespaced_config_map("cfg", ns, {"data": {"k": "two"}})
            wait_for(lambda: "cfg" in _our_stored(db), what="the changed configmap")
            core.delete_namespaced_pod("p1", ns, grace_period_seconds=0)
            wait_for(lambda: "p1" not in _our_stored(db), what="p1 deleted")
            assert "Traceback" not in edge.output()


def test_a_real_edgecore_with_edged_runs_pods_against_our_cloudcore(
    real_kube: KubeTestCluster, kubeedge: Path, containerd: str, tmp_path: Path
) -> None:
    kube, ns, node = real_kube, real_kube.namespace(), unique("edged")
    core = kube.core
    _root_ca(kube, ns)  # what kube-controller-manager would publish in every namespace
    cloud = ke.OurCloudCore(tmp_path / "cloud", kube.kubeconfig_path)
    with cleanup_node(kube, node), _sysctls_kept(), ke.running(cloud):
        wait_for(cloud.ready, what="our cloudcore listening")
        token = wait_for(lambda: _token(core), what="the join token")
        edge = ke.EdgeCore(kubeedge / "edgecore", tmp_path / "edge", node=node, token=token,
                           hub_port=cloud.hub_port, cert_port=cloud.cert_port,
                           runtime=containerd, pause_image=PAUSE)  # fmt: skip
        try:
            with ke.running(edge):
                try:
                    _pods_run_on_edged(kube, ns, node, cloud)
                finally:  # edged stops the containers and unmounts their volumes
                    for pod in core.list_namespaced_pod(ns).items:
                        delete_if_present(core.delete_namespaced_pod, pod.metadata.name, ns,
                                          grace_period_seconds=0)  # fmt: skip
                    with contextlib.suppress(AssertionError):
                        wait_for(lambda: not edge.mounts(), what="pod volumes unmounted")
        finally:
            edge.unmount_leftovers()
        assert "no handler found" not in edge.output()


def _pods_run_on_edged(kube: KubeTestCluster, ns: str, node: str, cloud: ke.OurCloudCore) -> None:
    core = kube.core
    wait_for(lambda: _ready(core, node), what="edged registered its Node, Ready")
    core.create_namespaced_config_map(ns, configmap("cfg", "one"))
    core.create_namespaced_pod(ns, bound_pod("with-cfg", node, configmap="cfg"))
    token_volume = {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {
        "path": "token", "expirationSeconds": 3607}}]}}  # fmt: skip
    with_token = bound_pod("with-token", node, volumes=[token_volume])
    with_token["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "tok", "mountPath": "/var/run/tok"}
    ]
    core.create_namespaced_pod(ns, with_token)
    for name in ("with-cfg", "with-token"):
        wait_for(_running(core, ns, name), what=f"{name} Running")
    leases = kube.coordination
    renewed = leases.read_namespaced_lease(node, "kube-node-lease").spec.renew_time
    wait_for(
        lambda: leases.read_namespaced_lease(node, "kube-node-lease").spec.renew_time != renewed,
        what="the Lease renewed",
    )
    core.delete_namespaced_pod("with-cfg", ns, grace_period_seconds=5)  # graceful
    wait_for(lambda: not _exists(core, ns, "with-cfg"), what="graceful delete confirmed")
    events = core.list_namespaced_event(ns).items
    assert any(e.involved_object.name == "with-token" for e in events)
    wait_for(lambda: _settled(cloud, node), what="nothing unacked at cloudhub")


# --- helpers -------------------------------------------------------------------------


def _token(core: Any) -> str:
    try:
        return ke.join_token(core)
    except Exception:
        return ""


def _labels(edge: ke.EdgeCore, key: str) -> dict[str, str]:
    pod = edge.stored("pod").get(key) or {}
    return dict((pod.get("metadata") or {}).get("labels") or {})


def _settled(cloud: ke.OurCloudCore, node: str) -> bool:
    row = cloud.node_row(node)
    return bool(row) and row["connected"] and row["in_flight"] == 0 and row["queued"] == 0


def _node(core: Any, name: str) -> Any:
    try:
        return core.read_node(name)
    except Exception:
        return None


def _ready(core: Any, name: str) -> bool:
    node = _node(core, name)
    conditions = (node.status.conditions or []) if node and node.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _running(core: Any, ns: str, name: str) -> Callable[[], bool]:
    return lambda: str(core.read_namespaced_pod_status(name, ns).status.phase) == "Running"


def _exists(core: Any, ns: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, ns)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise
    return True


def _root_ca(kube: KubeTestCluster, ns: str) -> None:
    """The ConfigMaps every pod's service-account volume projects, which controllers
    publish in each namespace: kube-root-ca.crt, and openshift-service-ca.crt where the
    API server is OpenShift's fork of Kubernetes (as the one built from microshift)."""
    ca = kube.api_client.configuration.ssl_ca_cert
    data = Path(ca).read_text() if ca else ""
    for name, key in (
        ("kube-root-ca.crt", "ca.crt"),
        ("openshift-service-ca.crt", "service-ca.crt"),
    ):
        body = manifest({"metadata": {"name": name}, "data": {key: data}})
        with contextlib.suppress(Exception):
            kube.core.create_namespaced_config_map(ns, body)


@contextlib.contextmanager
def _sysctls_kept() -> Iterator[None]:
    """edged sets vm.overcommit_memory and kernel.panic(_on_oops): put them back."""
    names = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
    saved = {n: Path("/proc/sys", n).read_text() for n in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", name).write_text(value)


def _our_edge(workdir: Path, node: str, token: str, hub: int, certs: int) -> ke.Process:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "edge.token").write_text(token)
    config = {
        "hive": {"admin": {"address": f"unix://{workdir}/admin.sock"}},
        "modules": {
            "metamanager": {"settings": {"db_path": str(workdir / "edge.db"), "node_name": node}},
            "edgehub": {"settings": {
                "server": f"127.0.0.1:{hub}", "tls": True, "node_name": node,
                "cert_server": f"https://127.0.0.1:{certs}",
                "token_file": str(workdir / "edge.token"), "cert_dir": str(workdir / "certs"),
                "heartbeat": 5, "reconnect_initial": 0.5, "reconnect_max": 5,
            }},
        },
    }  # fmt: skip
    path = workdir / "edgecore.yaml"
    path.write_text(yaml.safe_dump(config))
    beehive = shutil.which("beehive", path=str(Path(sys.executable).parent)) or "beehive"
    return ke.Process([beehive, "run", str(path)], workdir, "our-edge", dict(os.environ))


def _our_stored(db: Path) -> set[str]:
    if not db.exists():
        return set()
    store = MetaStore(str(db))
    try:
        return {o.key.rsplit("/", 1)[-1] for o in store.list_objects(None)}
    finally:
        store.close()
