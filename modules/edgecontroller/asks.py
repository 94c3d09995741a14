"""What a kubelet-based edge asks of the cloud beyond status: tokens, volumes, mirror
pods, certificates, Events and rule status; each checked as Kubernetes' Node
authorizer and NodeRestriction would check a kubelet.

Input: one request from an upstream worker (`Asks.handle`); output: the reply content
(`modules.replies` shapes) or `NO_REPLY`, after the API calls it needs. Shapes as
KubeEdge's edgecontroller answers them (cloud/pkg/edgecontroller/controller/upstream.go).
A node may:

- get a service-account token only bound to a pod of its own, for the service account
  that pod runs as (``<ns>/serviceaccounttoken/<sa>``, content a TokenRequest);
- read a PersistentVolumeClaim one of its pods mounts, the PersistentVolume bound to
  such a claim, and a VolumeAttachment for itself;
- create a mirror pod (annotation ``kubernetes.io/config.mirror``) bound to itself;
- create and read a CertificateSigningRequest for its own name (``system:node:<node>``);
- report Events about itself and its pods (`events`), and status for a Rule that
  names it, or names no node at all;
- read the API server's CA (``k8s/ca.crt``), which is no secret.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client

from modules import contract, replies
from modules.edgecontroller import events, reports
from modules.edgecontroller.location import LocationCache, dicts
from modules.edgecontroller.reports import ReportError, forbidden, not_found
from modules.edgecontroller.settings import EdgeControllerSettings
from modules.kube import raw

log = logging.getLogger("modules.edgecontroller.upstream")

Obj = dict[str, Any]
Lookup = Callable[[str, str, str], Obj | None]

NO_REPLY: Any = object()  # the request gets no reply (the edge does not wait for one)

HANDLED = frozenset(
    {
        contract.SERVICEACCOUNTTOKEN,
        contract.PERSISTENTVOLUME,
        contract.PERSISTENTVOLUMECLAIM,
        contract.VOLUMEATTACHMENT,
        contract.CSR,
        contract.EVENT,
        contract.RULESTATUS,
        contract.CA_CERT,
    }
)

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
NODE_SIGNERS = frozenset(
    {"kubernetes.io/kubelet-serving", "kubernetes.io/kube-apiserver-client-kubelet"}
)
_CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
_RULES = "/apis/rules.kubeedge.io/v1/namespaces/{}/rules/{}"
_MAX_RULE_ERRORS = 5  # the newest rule errors kept in its status


def handles(rtype: str, operation: str) -> bool:
    return rtype in HANDLED or (rtype == contract.POD and operation == "insert")


class Asks:
    """The handlers; `call` runs an API call under the controller's rate limit and retries."""

    def __init__(
        self,
        *,
        api_client: client.ApiClient,
        call: Callable[..., Any],
        lookup: Lookup,
        location: LocationCache,
        settings: EdgeControllerSettings,
    ) -> None:
        self._api_client = api_client
        self._call = call
        self._lookup = lookup  # the reflectors' stores (pods)
        self._location = location  # which pods sit on which node
        self.events = events.EventGate(rate=settings.event_qps, burst=settings.event_burst)

    def handle(self, node: str, resource: contract.Resource, operation: str, content: Any) -> Any:
        rtype = resource.type
        if rtype == contract.EVENT:
            return self._event(node, resource.namespace, operation, content)
        if rtype == contract.RULESTATUS:
            return self._rule_status(node, resource.namespace, resource.name, content)
        if rtype == contract.POD:
            return self._mirror_pod(node, resource.namespace, resource.name, content)
        if rtype == contract.CSR:
            return self._csr(node, resource.name, operation, content)
        if rtype == contract.CA_CERT and operation == "query":
            return self._api_ca()
        if operation != "query":
            raise ReportError(f"unsupported {operation!r} on resource type {rtype!r}", 405)
        if rtype == contract.SERVICEACCOUNTTOKEN:
            return self._token(node, resource.namespace, resource.name, content)
        if rtype == contract.PERSISTENTVOLUMECLAIM:
            return self._claim(node, resource.namespace, resource.name)
        if rtype == contract.PERSISTENTVOLUME:
            return self._volume(node, resource.name)
        return self._attachment(node, resource.name)

    # --- tokens ----------------------------------------------------------------------

    def _token(self, node: str, namespace: str, account: str, content: Any) -> Obj:
        spec = content.get("spec") if isinstance(content, dict) else None
        ref = spec.get("boundObjectRef") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(ref, dict):
            raise ReportError("serviceaccounttoken needs a TokenRequest bound to a pod")
        if ref.get("kind") != "Pod" or not isinstance(ref.get("name"), str):
            raise forbidden(f"node {node}: tokens are only issued bound to a pod")
        pod = reports.bound_pod(node, namespace, ref["name"], self._pod(namespace, ref["name"]))
        if ref.get("uid") and ref["uid"] != pod["metadata"].get("uid"):
            raise ReportError(f"pod {namespace}/{ref['name']} has another uid", 409)
        runs_as = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        if runs_as != account:
            raise forbidden(
                f"node {node}: pod {namespace}/{ref['name']} runs as service account"
                f" {runs_as!r}, not {account!r}"
            )
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": spec.get("audiences"),
                "expirationSeconds": spec.get("expirationSeconds"),
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": ref["name"],
                                   "uid": pod["metadata"].get("uid")},
            },
        }  # fmt: skip
        path = (
            f"/api/v1/namespaces/{raw.segment(namespace)}/serviceaccounts/"
            f"{raw.segment(account)}/token"
        )
        issued: Obj = self._api("POST", path, body=body)
        issued.setdefault("apiVersion", "authentication.k8s.io/v1")
        issued.setdefault("kind", "TokenRequest")
        # edgecore caches tokens under a key made from the reply's spec: the audiences
        # as asked (null for the API's own), or the cache never finds them again.
        issued.setdefault("spec", {})["audiences"] = spec.get("audiences")
        return issued

    # --- volumes ---------------------------------------------------------------------

    def _claims_on(self, node: str) -> set[tuple[str, str]]:
        """(namespace, claim) for every claim a pod on `node` mounts (ephemeral ones too)."""
        claims = set()
        for namespace, name in self._location.pods_on(node):
            pod = self._lookup(contract.POD, namespace, name) or {}
            for volume in dicts((pod.get("spec") or {}).get("volumes")):
                claim = volume.get("persistentVolumeClaim")
                if isinstance(claim, dict) and isinstance(claim.get("claimName"), str):
                    claims.add((namespace, claim["claimName"]))
                if isinstance(volume.get("ephemeral"), dict):
                    claims.add((namespace, f"{name}-{volume.get('name')}"))
        return claims

    def _claim(self, node: str, namespace: str, name: str) -> Obj:
        if (namespace, name) not in self._claims_on(node):
            raise forbidden(f"node {node}: no pod on it mounts claim {namespace}/{name}")
        path = (
            f"/api/v1/namespaces/{raw.segment(namespace)}/persistentvolumeclaims/"
            f"{raw.segment(name)}"
        )
        return _typed(self._get(path), "v1", "PersistentVolumeClaim")

    def _volume(self, node: str, name: str) -> Obj:
        volume = self._get(f"/api/v1/persistentvolumes/{raw.segment(name)}")
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if (ref.get("namespace"), ref.get("name")) not in self._claims_on(node):
            raise forbidden(f"node {node}: no pod on it mounts a claim bound to volume {name}")
        return _typed(volume, "v1", "PersistentVolume")

    def _attachment(self, node: str, name: str) -> Obj:
        found = self._get(f"/apis/storage.k8s.io/v1/volumeattachments/{raw.segment(name)}")
        if (found.get("spec") or {}).get("nodeName") != node:
            raise forbidden(f"node {node}: volumeattachment {name} is for another node")
        return _typed(found, "storage.k8s.io/v1", "VolumeAttachment")

    # --- mirror pods -----------------------------------------------------------------

    def _mirror_pod(self, node: str, namespace: str, name: str, content: Any) -> Obj:
        meta = content.get("metadata") if isinstance(content, dict) else None
        if not isinstance(meta, dict) or meta.get("name") != name:
            raise ReportError(f"pod insert needs a Pod named {name!r}")
        if (content.get("spec") or {}).get("nodeName") != node:
            raise forbidden(f"node {node} may only create pods bound to itself")
        if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
            raise forbidden(f"node {node} may only create mirror pods ({MIRROR_ANNOTATION})")
        body = {**content, "metadata": {**meta, "namespace": namespace}}
        path = f"/api/v1/namespaces/{raw.segment(namespace)}/pods"
        return replies.object_resp(self._api("POST", path, body=body))

    # --- certificates ----------------------------------------------------------------

    def _csr(self, node: str, name: str, operation: str, content: Any) -> Any:
        if operation == "insert":
            if not isinstance(content, dict) or not isinstance(content.get("spec"), dict):
                raise ReportError("certificatesigningrequest insert needs a CSR")
            _check_csr(node, content)
            created = self._api("POST", _CSR_PATH, body=content)
            return replies.object_resp(created)
        if operation != "query":
            raise ReportError(f"unsupported {operation!r} on a certificatesigningrequest", 405)
        found = self._get(f"{_CSR_PATH}/{raw.segment(name)}")
        _check_csr(node, found)
        return _typed(found, "certificates.k8s.io/v1", "CertificateSigningRequest")

    # --- events and rule status ------------------------------------------------------

    def _event(self, node: str, namespace: str, operation: str, content: Any) -> Any:
        report = events.parse(operation, namespace, content)
        events.check(node, report, self._pod, self._location.departed_from)
        why = self.events.admit(node, report, time.monotonic())
        if why:
            log.debug("node %s: event %s/%s not written (%s)", node, namespace, report.name, why)
            return NO_REPLY
        base = f"/api/v1/namespaces/{raw.segment(namespace)}/events"
        if report.patch is not None:
            try:
                self._api("PATCH", f"{base}/{raw.segment(report.name)}",
                           body=report.patch,
                           content_type="application/strategic-merge-patch+json")  # fmt: skip
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                self._create_event(base, report)  # never written here: write it whole
        elif operation == "update":
            try:
                body = events.creatable(report.event)
                self._api("PUT", f"{base}/{raw.segment(report.name)}", body=body)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                self._create_event(base, report)
        else:
            self._create_event(base, report)
        self.events.written(report)
        return NO_REPLY

    def _create_event(self, base: str, report: events.EventReport) -> None:
        body = events.creatable(report.event)
        try:
            self._api("POST", base, body=body)
        except client.ApiException as exc:
            if exc.status != 409:  # written already (a resend): nothing to do
                raise

    def _rule_status(self, node: str, namespace: str, name: str, content: Any) -> Any:
        if not isinstance(content, dict) or content.get("Status") not in ("SUCCESS", "FAIL"):
            raise ReportError('rulestatus needs {"Status": "SUCCESS" | "FAIL"}')
        path = _RULES.format(namespace, name)
        rule = self._get(path)
        spec = rule.get("spec") or {}
        named = {
            r.get("node_name")
            for r in (spec.get("sourceResource"), spec.get("targetResource"))
            if isinstance(r, dict) and r.get("node_name")
        }
        if named and node not in named:
            raise forbidden(
                f"node {node}: rule {namespace}/{name} is for node(s) {sorted(map(str, named))}"
            )
        status = dict(rule.get("status") or {})
        if content["Status"] == "SUCCESS":
            status["successMessages"] = int(status.get("successMessages") or 0) + 1
        else:
            status["failMessages"] = int(status.get("failMessages") or 0) + 1
            detail = (content.get("Error") or {}).get("Detail") or "failed"
            errors = [*(status.get("errors") or []), str(detail)]
            status["errors"] = errors[-_MAX_RULE_ERRORS:]
        patch = {"metadata": {"resourceVersion": rule["metadata"]["resourceVersion"]},
                 "status": status}  # fmt: skip
        merge = "application/merge-patch+json"
        try:
            self._api("PATCH", f"{path}/status", body=patch,
                       content_type=merge)  # fmt: skip
        except client.ApiException as exc:
            if exc.status != 404:  # the CRD has no status subresource: patch the Rule
                raise
            self._api("PATCH", path, body=patch, content_type=merge)
        return NO_REPLY

    def _api_ca(self) -> str:
        """The API server's CA, as PEM text (``k8s/ca.crt``: edgecore's metaServer
        serves it to pods on the edge); 404 when the API is reached without TLS."""
        path = self._api_client.configuration.ssl_ca_cert
        if not path:
            raise not_found("the Kubernetes API is reached without a CA certificate")
        with open(path, encoding="ascii") as pem:
            return pem.read()

    # --- helpers ---------------------------------------------------------------------

    def _api(
        self, method: str, path: str, *, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """One API request under the controller's rate limit and retries."""

        def request() -> Any:
            return raw.request(self._api_client, method, path, body=body, content_type=content_type)

        request.__name__ = f"{method} {path}"  # named in the retry log
        return self._call(request)

    def _get(self, path: str) -> Obj:
        found: Obj = self._api("GET", path)
        return found

    def _pod(self, namespace: str, name: str) -> Obj | None:
        return self._lookup(contract.POD, namespace, name)


def _typed(obj: Obj, api_version: str, kind: str) -> Obj:
    """As KubeEdge's SetMetaType: a query's answer carries its apiVersion and kind."""
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    return obj


def _check_csr(node: str, csr: Obj) -> None:
    """The request is a kubelet's for this node: subject ``system:node:<node>`` in
    ``system:nodes``, a node signer (as NodeRestriction and the CSR approver check)."""
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")
    if signer not in NODE_SIGNERS:
        raise forbidden(f"node {node}: signer {signer!r} is not one for nodes")
    try:
        pem = base64.b64decode(spec.get("request") or "", validate=True)
        request = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise ReportError(
            f"certificatesigningrequest: spec.request is not a PEM CSR: {exc}"
        ) from None
    names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if [a.value for a in names] != [f"system:node:{node}"]:
        raise forbidden(f"node {node}: the CSR's subject is not system:node:{node}")
    if "system:nodes" not in [a.value for a in orgs]:
        raise forbidden(f"node {node}: the CSR's subject is not in group system:nodes")
