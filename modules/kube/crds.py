"""KubeEdge's CustomResourceDefinitions and ours, as manifests, and an idempotent installer.

Rules and RuleEndpoints (rules.kubeedge.io/v1, build/crds/router/) and ObjectSync /
ClusterObjectSync (reliablesyncs.kubeedge.io/v1alpha1, build/crds/reliablesyncs/, with
the status subresource; read once, to migrate from KubeEdge's cloudcore); this
project's ObjectSyncShard (reliablesyncs.beehive-edge.io/v1alpha1), where cloudhub
keeps what edge nodes acked. Schemas are permissive (`x-kubernetes-preserve-unknown-fields`),
so nothing in these objects is pruned or refused by them; KubeEdge's own are structural
(a cluster that has them refuses a Rule without sourceResource and targetResource).
Rules have no status subresource, as in KubeEdge. Works against any API server.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

JsonObj = dict[str, Any]

_OPEN_SCHEMA = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def crd(
    group: str, version: str, kind: str, plural: str, *, namespaced: bool, status: bool
) -> JsonObj:
    """A v1 CRD manifest with one served, stored version and an open schema."""
    ver: JsonObj = {"name": version, "served": True, "storage": True, "schema": _OPEN_SCHEMA}
    if status:
        ver["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "listKind": f"{kind}List",
            },
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [ver],
        },
    }


KUBEEDGE_CRDS: tuple[JsonObj, ...] = (
    crd("rules.kubeedge.io", "v1", "Rule", "rules", namespaced=True, status=False),
    crd("rules.kubeedge.io", "v1", "RuleEndpoint", "ruleendpoints", namespaced=True, status=False),
    crd(
        "reliablesyncs.kubeedge.io",
        "v1alpha1",
        "ObjectSync",
        "objectsyncs",
        namespaced=True,
        status=True,
    ),
    crd(
        "reliablesyncs.kubeedge.io",
        "v1alpha1",
        "ClusterObjectSync",
        "clusterobjectsyncs",
        namespaced=False,
        status=True,
    ),
)


# This project's own: what each edge node acked, many nodes to a record
# (modules/cloudhub/syncrecord.py); cluster-scoped, no status subresource.
BEEHIVE_CRDS: tuple[JsonObj, ...] = (
    crd(
        "reliablesyncs.beehive-edge.io",
        "v1alpha1",
        "ObjectSyncShard",
        "objectsyncshards",
        namespaced=False,
        status=False,
    ),
)


def install(
    api_client: client.ApiClient, manifests: tuple[JsonObj, ...] = KUBEEDGE_CRDS + BEEHIVE_CRDS
) -> None:
    """Create the CRDs that do not exist yet (409 AlreadyExists is fine)."""
    api = client.ApiextensionsV1Api(api_client)
    for manifest in manifests:
        body: Any = manifest  # the client accepts plain dicts for its models
        try:
            api.create_custom_resource_definition(body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
