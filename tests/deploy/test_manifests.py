"""deploy/cloudcore/: the manifests agree with the code (CRDs, config, ports, RBAC) and
an API server accepts them (server-side dry run on a real cluster when
BEEHIVE_TEST_KUBECONFIG is set; create and delete in a scratch namespace on the
embedded API, for the kinds it serves)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from modules import cli
from modules.kube import crds, raw
from modules.replicas.settings import ReplicaSettings
from tests.kube_fixtures import ENV, KubeTestCluster, unique

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cloudcore"
FILES = ("namespace", "crds", "rbac", "configmap", "deployment", "service", "pdb")

# kind -> (API path prefix, plural, namespaced)
PATHS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "CustomResourceDefinition": (
        "/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False,
    ),
}  # fmt: skip
EMBEDDED_KINDS = {"Namespace", "ServiceAccount", "ConfigMap", "CustomResourceDefinition"}

# (API group, resource, verb) that cloudcore's code calls (grep modules/ for the client
# calls and raw paths); the ClusterRole must allow each.
CALLED = [
    ("", "nodes", "watch"), ("", "nodes", "create"), ("", "nodes", "patch"),
    ("", "nodes/status", "patch"), ("", "pods", "watch"), ("", "pods", "delete"),
    ("", "pods", "create"), ("", "pods/status", "patch"), ("", "configmaps", "watch"),
    ("", "configmaps", "create"), ("", "secrets", "watch"), ("", "secrets", "create"),
    ("", "secrets", "update"), ("", "namespaces", "create"), ("", "events", "create"),
    ("", "events", "patch"), ("", "persistentvolumes", "get"),
    ("", "persistentvolumeclaims", "get"), ("", "serviceaccounts/token", "create"),
    ("storage.k8s.io", "volumeattachments", "get"),
    ("certificates.k8s.io", "certificatesigningrequests", "create"),
    ("coordination.k8s.io", "leases", "get"), ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"), ("coordination.k8s.io", "leases", "patch"),
    ("coordination.k8s.io", "leases", "list"), ("coordination.k8s.io", "leases", "watch"),
    ("coordination.k8s.io", "leases", "delete"), ("rules.kubeedge.io", "rules", "watch"),
    ("rules.kubeedge.io", "rules", "patch"), ("rules.kubeedge.io", "ruleendpoints", "watch"),
    ("reliablesyncs.beehive-edge.io", "objectsyncshards", "create"),
    ("reliablesyncs.beehive-edge.io", "objectsyncshards", "update"),
    ("reliablesyncs.kubeedge.io", "objectsyncs", "list"),
]  # fmt: skip


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / f"{name}.yaml").read_text()) if d]


def everything() -> list[dict[str, Any]]:
    return [doc for name in FILES for doc in documents(name)]


def one(kind: str) -> dict[str, Any]:
    (found,) = [d for d in everything() if d["kind"] == kind]
    return found


def test_the_crd_file_is_what_crds_py_generates() -> None:
    assert (DEPLOY / "crds.yaml").read_text() == crds.manifests_yaml()


def test_the_kustomization_lists_every_file() -> None:
    (kustomization,) = documents("kustomization")
    assert kustomization["resources"] == [f"{name}.yaml" for name in FILES]


def test_the_config_in_the_configmap_loads_as_a_replica_config(tmp_path: Path) -> None:
    path = tmp_path / "cloudcore.yaml"
    path.write_text(one("ConfigMap")["data"]["cloudcore.yaml"])
    config = cli.APP.load(str(path))
    assert config.sections["kube"].mode == "incluster"
    replica: ReplicaSettings = config.sections["replica"]
    replica.check()
    assert {"replica", "kube"} <= config.given
    by_name = {m.name: m.settings for m in config.enabled}
    assert by_name["metrics"].address == "0.0.0.0"
    container = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "cloudhub": by_name["cloudhub"].port,
        "certserver": by_name["certserver"].port,
        "metrics": by_name["metrics"].port,
    }
    assert by_name["certserver"].namespace == replica.namespace == "kubeedge"


def test_the_deployment_runs_three_replicas_probed_on_the_metrics_port() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert one("Service")["spec"]["selector"].items() <= labels.items()
    pdb = one("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < spec["replicas"]  # a drain can always evict one


def test_the_cluster_role_allows_what_the_code_calls_and_no_wildcards() -> None:
    rules = one("ClusterRole")["rules"]
    allowed = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert not any("*" in part for entry in allowed for part in entry)
    missing = [entry for entry in CALLED if entry not in allowed]
    assert not missing
    binding = one("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one("ClusterRole")["metadata"]["name"]
    account = one("ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def _path(doc: dict[str, Any], namespace: str) -> str:
    prefix, plural, namespaced = PATHS[doc["kind"]]
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get(ENV), reason=f"{ENV} names no real cluster")
def test_a_real_api_server_accepts_every_manifest_in_a_dry_run(kube: KubeTestCluster) -> None:
    scratch = kube.namespace("deploy")  # a dry run of the Namespace creates nothing
    for doc in everything():
        if PATHS[doc["kind"]][2]:
            doc["metadata"]["namespace"] = scratch
        for subject in doc.get("subjects", []):
            subject["namespace"] = scratch
        # Server-side apply, as `kubectl apply --server-side --dry-run=server`: checked
        # whether or not the object exists already (the Namespace and the CRDs may).
        path = f"{_path(doc, doc['metadata'].get('namespace', ''))}/{doc['metadata']['name']}"
        raw.request(
            kube.api_client, "PATCH", path, body=doc,
            content_type="application/apply-patch+yaml",
            query=[("dryRun", "All"), ("fieldValidation", "Strict"),
                   ("fieldManager", "beehive-tests"), ("force", "true")],
        )  # fmt: skip


@pytest.mark.integration
def test_the_embedded_api_accepts_the_kinds_it_serves(kube: KubeTestCluster) -> None:
    if not kube.embedded:
        pytest.skip("the real cluster is checked by the dry run")
    scratch = kube.namespace("deploy")
    created: list[str] = []
    try:
        for doc in everything():
            if doc["kind"] not in EMBEDDED_KINDS or doc["kind"] == "Namespace":
                continue
            body = yaml.safe_load(yaml.safe_dump(doc))
            if doc["kind"] == "CustomResourceDefinition":
                answer = raw.request(kube.api_client, "POST", _path(body, ""), body=body)
                created.append(f"{_path(body, '')}/{answer['metadata']['name']}")
                continue
            body["metadata"]["namespace"] = scratch
            answer = raw.request(kube.api_client, "POST", _path(body, scratch), body=body)
            assert answer["metadata"]["namespace"] == scratch
        namespace = one("Namespace")
        namespace["metadata"]["name"] = unique("deploy-ns")
        answer = raw.request(kube.api_client, "POST", _path(namespace, ""), body=namespace)
        created.append(f"/api/v1/namespaces/{answer['metadata']['name']}")
    finally:
        for path in created:
            try:
                raw.request(kube.api_client, "DELETE", path)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


def test_the_image_runs_what_the_deployment_asks_for() -> None:
    dockerfile = (DEPLOY.parent.parent / "Dockerfile").read_text()
    [container] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert json.loads(cmd.removeprefix("CMD ")) == container["command"]
    exposed = {int(p) for line in dockerfile.splitlines() if line.startswith("EXPOSE ")
               for p in line.split()[1:]}  # fmt: skip
    assert exposed == {port["containerPort"] for port in container["ports"]}
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (DEPLOY.parent.parent / source).exists(), source
