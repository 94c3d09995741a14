"""What a kubelet-based edge asks beyond status (tokens, volumes, mirror pods, CSRs,
Events, rule status), in the frames edged sends, against the API: each allowed for the
node's own pods and itself only, each answered in the shape edgecore parses."""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from beehive import Message
from modules.edgecontroller.events import EventGate, parse
from modules.kube import crds
from tests.fakes import eventually
from tests.kube_fixtures import manifest, unique
from tests.modules.edgecontroller.helpers import WAIT, Cloud, body, failure, pod, raw


def token_request(pod_name: str, uid: str, audiences: list[str] | None = None) -> Any:
    """A TokenRequest as edged's projected-volume code builds it."""
    return {
        "metadata": {"creationTimestamp": None},
        "spec": {
            "audiences": audiences,
            "expirationSeconds": 3607,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": uid},
        },
        "status": {"token": "", "expirationTimestamp": None},
    }


def account(cloud: Cloud, ns: str, name: str = "default") -> None:
    cloud.kube.core.create_namespaced_service_account(ns, manifest({"metadata": {"name": name}}))


def code(reply: Message) -> int:
    content: Any = reply.content
    err = content["Err"] if isinstance(content, dict) and "Err" in content else content
    return int(err["ErrStatus"]["code"])


def test_a_token_is_issued_for_a_pod_on_the_node_as_its_service_account(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns = kube_namespace
    node, other = cloud.node(), cloud.node()
    account(cloud, ns, "builder")  # and "default", which every test namespace has
    mine = cloud.deployed(ns, "web", node)
    theirs = cloud.deployed(ns, "far", other)

    reply = cloud.report(node, "query", f"{ns}/serviceaccounttoken/default",
                         token_request("web", mine.metadata.uid))  # fmt: skip
    assert failure(reply) == ""
    issued = body(reply)
    assert (issued["kind"], issued["apiVersion"]) == ("TokenRequest", "authentication.k8s.io/v1")
    assert issued["status"]["token"] and issued["status"]["expirationTimestamp"]
    assert issued["spec"]["boundObjectRef"]["uid"] == mine.metadata.uid
    assert issued["spec"]["audiences"] is None  # as asked: edgecore's cache key needs it so

    refusals = [
        ("default", token_request("far", theirs.metadata.uid), 403),  # another node's pod
        ("builder", token_request("web", mine.metadata.uid), 403),  # not the pod's account
        ("default", token_request("ghost", "u-ghost"), 404),
        ("default", {"spec": {"expirationSeconds": 3607}}, 400),  # bound to nothing
        ("default", "not a TokenRequest", 400),
    ]
    for sa, content, status in refusals:
        refused = cloud.report(node, "query", f"{ns}/serviceaccounttoken/{sa}", content)
        assert failure(refused) and code(refused) == status, (sa, content)
        assert set(body(refused)) == {"ErrStatus"}  # a query's failure, as edgecore parses it


def test_volume_queries_answer_only_what_the_nodes_pods_mount(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, core = kube_namespace, cloud.kube.core
    node, other = cloud.node(), cloud.node()
    pv_name, spare = unique("pv"), unique("pv")
    for name, claim in ((pv_name, "data"), (spare, "other")):
        core.create_persistent_volume(manifest({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": "/tmp/x"},
                     "claimRef": {"namespace": ns, "name": claim}},
        }))  # fmt: skip
    for claim in ("data", "other"):
        core.create_namespaced_persistent_volume_claim(ns, manifest({
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}},
        }))  # fmt: skip
    volumes = [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    core.create_namespaced_pod(ns, pod("app", node, volumes=volumes))
    cloud.wait_ops(node, [("insert", f"node/{node}/{ns}/pod/app")], rtype="pod")
    try:
        answer = cloud.report(node, "query", f"{ns}/persistentvolumeclaim/data", None)
        assert failure(answer) == "" and body(answer)["kind"] == "PersistentVolumeClaim"
        volume = cloud.report(node, "query", f"null/persistentvolume/{pv_name}", None)
        assert failure(volume) == "" and body(volume)["metadata"]["name"] == pv_name
        for asker, tail in (
            (node, f"{ns}/persistentvolumeclaim/other"),
            (node, f"null/persistentvolume/{spare}"),
            (other, f"{ns}/persistentvolumeclaim/data"),
            (other, f"null/persistentvolume/{pv_name}"),
        ):
            refused = cloud.report(asker, "query", tail, None)
            assert code(refused) == 403, tail
    finally:
        for name in (pv_name, spare):
            core.delete_persistent_volume(name)


def test_a_volume_attachment_is_read_only_by_its_node(cloud: Cloud) -> None:
    node, other = cloud.node(), cloud.node()
    name = unique("va")
    storage: Any = client.StorageV1Api(cloud.kube.api_client)
    storage.create_volume_attachment(manifest({
        "metadata": {"name": name},
        "spec": {"attacher": "csi.example.com", "nodeName": node,
                 "source": {"persistentVolumeName": "pv-x"}},
    }))  # fmt: skip
    try:
        read = cloud.report(node, "query", f"default/volumeattachment/{name}", None)
        assert failure(read) == "" and body(read)["kind"] == "VolumeAttachment"
        assert code(cloud.report(other, "query", f"default/volumeattachment/{name}", None)) == 403
        assert code(cloud.report(node, "query", "default/volumeattachment/none", None)) == 404
    finally:
        storage.delete_volume_attachment(name)


def test_a_node_creates_mirror_pods_bound_to_itself_only(cloud: Cloud, kube_namespace: str) -> None:
    ns = kube_namespace
    node, other = cloud.node(), cloud.node()

    def mirror(name: str, bound: str, annotated: bool = True) -> Any:
        annotations = {"kubernetes.io/config.mirror": "hash"} if annotated else {}
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations},
                "spec": {"nodeName": bound,
                         "containers": [{"name": "c", "image": "registry.invalid/a:1"}]}}  # fmt: skip

    created = cloud.report(node, "insert", f"{ns}/pod/static-a", mirror("static-a", node))
    assert failure(created) == ""
    assert body(created)["Object"]["metadata"]["uid"]  # ObjectResp, as edgecore parses it
    assert raw(cloud.kube.core.read_namespaced_pod, "static-a", ns)["spec"]["nodeName"] == node
    again = cloud.report(node, "insert", f"{ns}/pod/static-a", mirror("static-a", node))
    assert code(again) == 409  # the API's AlreadyExists, which the kubelet handles
    for content in (mirror("static-b", other), mirror("static-b", node, annotated=False)):
        refused = cloud.report(node, "insert", f"{ns}/pod/static-b", content)
        assert code(refused) == 403 and body(refused)["Object"] is None


def node_csr(node: str) -> Any:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
    ])  # fmt: skip
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    pem = request.public_bytes(serialization.Encoding.PEM)
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": unique("csr")},
        "spec": {"request": base64.b64encode(pem).decode(), "usages": ["server auth"],
                 "signerName": "kubernetes.io/kubelet-serving"},
    }  # fmt: skip


def test_a_node_requests_and_reads_serving_certificates_for_itself_only(cloud: Cloud) -> None:
    node, other = cloud.node(), cloud.node()
    csr = node_csr(node)
    name = csr["metadata"]["name"]
    api: Any = client.CertificatesV1Api(cloud.kube.api_client)
    try:
        created = cloud.report(node, "insert", f"default/certificatesigningrequest/{name}", csr)
        assert failure(created) == "" and body(created)["Object"]["metadata"]["name"] == name
        read = cloud.report(node, "query", f"default/certificatesigningrequest/{name}", None)
        assert failure(read) == "" and body(read)["kind"] == "CertificateSigningRequest"
        assert code(cloud.report(other, "query", f"default/certificatesigningrequest/{name}",
                                 None)) == 403  # fmt: skip
        theirs = node_csr(other)
        refused = cloud.report(node, "insert", "default/certificatesigningrequest/x", theirs)
        assert code(refused) == 403 and body(refused)["Object"] is None
        client_signer = {**csr, "spec": {**csr["spec"], "signerName": "example.com/any"}}
        assert code(cloud.report(node, "insert", "default/certificatesigningrequest/y",
                                 client_signer)) == 403  # fmt: skip
    finally:
        api.delete_certificate_signing_request(name)


def event(ns: str, name: str, kind: str, about: str, count: int = 1) -> Any:
    return {
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": kind, "name": about, "namespace": ns if kind == "Pod" else ""},
        "reason": "Started", "message": "Started container main", "type": "Normal",
        "source": {"component": "kubelet", "host": "edge"}, "count": count,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
    }  # fmt: skip


def test_events_about_the_nodes_pods_are_written_and_get_no_reply(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns = kube_namespace
    node, other = cloud.node(), cloud.node()
    cloud.deployed(ns, "web", node)
    cloud.deployed(ns, "far", other)
    name = unique("web.ev")

    def written() -> Any:
        return _event(cloud, ns, name)

    cloud.send(node, "insert", f"{ns}/event/{name}", event(ns, name, "Pod", "web"))
    assert eventually(lambda: written() is not None, WAIT)
    patch = {"event": event(ns, name, "Pod", "web", count=2),
             "patchData": '{"count": 2, "message": "again"}'}  # fmt: skip
    cloud.send(node, "patch", f"{ns}/event/{name}", patch)
    assert eventually(lambda: (written() or {}).get("count") == 2, WAIT)
    assert written()["message"] == "again"

    refused_before = cloud.hive.commands["watches"]()["upstream_refused"]
    ids = [
        cloud.send(node, "insert", f"{ns}/event/x1", event(ns, "x1", "Pod", "far")),
        cloud.send(node, "insert", f"{ns}/event/x2", event(ns, "x2", "Node", other)),
    ]
    assert eventually(
        lambda: cloud.hive.commands["watches"]()["upstream_refused"] == refused_before + 2, WAIT
    )
    replied = {m.parent_msg_id for m in cloud.sent()}
    assert not replied & set(ids)  # events are answered never, refused or not
    for gone in ("x1", "x2"):
        assert _event(cloud, ns, gone) is None, f"event {gone} was written"

    # Stopping a pod is reported after its delete: its node may still report on it.
    cloud.kube.core.delete_namespaced_pod("web", ns, grace_period_seconds=0)
    deleted = ("delete", f"node/{node}/{ns}/pod/web")
    assert eventually(lambda: deleted in cloud.ops(node, rtype="pod"), WAIT)
    late = unique("web.stop")
    cloud.send(other, "insert", f"{ns}/event/{late}", event(ns, late, "Pod", "web"))
    cloud.send(node, "insert", f"{ns}/event/{late}", event(ns, late, "Pod", "web"))
    assert eventually(lambda: _event(cloud, ns, late) is not None, WAIT)
    assert eventually(
        lambda: cloud.hive.commands["watches"]()["upstream_refused"] == refused_before + 3, WAIT
    )  # the other node's report on it is refused


def _event(cloud: Cloud, ns: str, name: str) -> Any:
    """The Event as the API has it, or None when there is none (404)."""
    try:
        return raw(cloud.kube.core.read_namespaced_event, name, ns)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        return None


def test_rule_status_counts_deliveries_for_a_rule_of_the_node(
    cloud: Cloud, kube_namespace: str
) -> None:
    ns, node, other = kube_namespace, cloud.node(), cloud.node()
    crds.install(cloud.kube.api_client)
    cloud.kube.wait_for_crd("rules.rules.kubeedge.io")
    custom = cloud.kube.custom
    rule = {"apiVersion": "rules.kubeedge.io/v1", "kind": "Rule", "metadata": {"name": "r1"},
            "spec": {"source": "rest", "sourceResource": {"path": "/a"}, "target": "bus",
                     "targetResource": {"topic": "t", "node_name": node}}}  # fmt: skip
    custom.create_namespaced_custom_object("rules.kubeedge.io", "v1", ns, "rules", rule)

    def status() -> Any:
        got = custom.get_namespaced_custom_object("rules.kubeedge.io", "v1", ns, "rules", "r1")
        return got.get("status") or {}

    cloud.send(node, "update", f"{ns}/rulestatus/r1", {"RuleID": "r1", "Status": "SUCCESS"})
    failed = {"RuleID": "r1", "Status": "FAIL", "Error": {"Detail": "timeout"}}
    cloud.send(node, "update", f"{ns}/rulestatus/r1", failed)
    assert eventually(lambda: status().get("failMessages") == 1, WAIT)
    assert status()["successMessages"] == 1 and status()["errors"] == ["timeout"]
    refused_before = cloud.hive.commands["watches"]()["upstream_refused"]
    cloud.send(other, "update", f"{ns}/rulestatus/r1", {"RuleID": "r1", "Status": "SUCCESS"})
    assert eventually(
        lambda: cloud.hive.commands["watches"]()["upstream_refused"] == refused_before + 1, WAIT
    )
    assert status()["successMessages"] == 1


def test_the_event_gate_drops_repeats_and_floods() -> None:
    gate = EventGate(rate=1.0, burst=2)
    first = parse("insert", "ns", event("ns", "e1", "Node", "n"))
    assert gate.admit("n", first, 0.0) == ""
    gate.written(first)
    assert gate.admit("n", first, 0.0) == "duplicate"  # a resend of what was written
    assert gate.admit("n", parse("update", "ns", event("ns", "e1", "Node", "n", 2)), 0.0) == ""
    assert gate.admit("n", parse("insert", "ns", event("ns", "e2", "Node", "n")), 0.0) == "rate"
    assert gate.admit("m", parse("insert", "ns", event("ns", "e3", "Node", "m")), 0.0) == ""
    assert gate.admit("n", parse("insert", "ns", event("ns", "e2", "Node", "n")), 1.0) == ""
    assert (gate.duplicates, gate.dropped) == (1, 1)


def test_any_node_may_read_the_api_servers_ca(cloud: Cloud) -> None:
    node = cloud.node()
    reply = cloud.report(node, "query", "k8s/ca.crt", None)
    if cloud.kube.api_client.configuration.ssl_ca_cert:
        assert failure(reply) == "" and "BEGIN CERTIFICATE" in str(body(reply))
    else:  # the embedded API over plain HTTP has no CA to give
        assert code(reply) == 404
