"""Certificate signing requests: created, approved through /approval, issued through /status.

The requests name a signer no cluster has, so that on a real cluster no controller
approves or signs them while a test looks.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from tests.kube_fixtures import KubeTestCluster, delete_if_present, manifest, unique
from tests.modules.kubeapi.helpers import expect_failure, raw_call

SIGNER = "bh-test.example.com/nobody"
KEY = ec.generate_private_key(ec.SECP256R1())
SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bh-test")])


def _pem_request() -> bytes:
    csr = x509.CertificateSigningRequestBuilder().subject_name(SUBJECT).sign(KEY, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _pem_certificate() -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(SUBJECT)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _csr(name: str, **spec: Any) -> Any:
    body: dict[str, Any] = {
        "request": _b64(_pem_request()),
        "signerName": SIGNER,
        "usages": ["client auth"],
    }
    body.update(spec)
    return manifest(
        {"metadata": {"name": name}, "spec": {k: v for k, v in body.items() if v is not None}}
    )


def _condition(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": "Test", "message": "by a test", **fields}


@pytest.fixture
def certificates(kube: KubeTestCluster) -> Any:
    return client.CertificatesV1Api(kube.api_client)


@pytest.fixture
def csr_name(certificates: Any) -> Iterator[str]:
    """A unique request name; the request is deleted afterwards if it exists."""
    name = unique("csr")
    yield name
    delete_if_present(certificates.delete_certificate_signing_request, name)


def test_a_request_records_its_requester_and_starts_without_status(
    certificates: Any, csr_name: str
) -> None:
    body = _csr(csr_name)
    body["spec"].update(username="mallory", groups=["system:masters"])
    body["status"] = {"conditions": [_condition("Approved")]}
    created = certificates.create_certificate_signing_request(body)
    assert created.spec.username and created.spec.username != "mallory"
    assert "system:authenticated" in created.spec.groups
    assert not (created.status and created.status.conditions)
    found = certificates.list_certificate_signing_request(
        field_selector=f"spec.signerName={SIGNER}"
    )
    assert csr_name in [c.metadata.name for c in found.items]


def test_approval_adds_a_stamped_condition_that_cannot_be_taken_back(
    certificates: Any, csr_name: str
) -> None:
    csr = certificates.create_certificate_signing_request(_csr(csr_name))
    csr.status.conditions = [
        client.V1CertificateSigningRequestCondition(type="Approved", status="True", reason="Test")
    ]
    approved = certificates.replace_certificate_signing_request_approval(csr_name, csr)
    (condition,) = approved.status.conditions
    assert (condition.type, condition.status) == ("Approved", "True")
    assert condition.last_update_time and condition.last_transition_time
    approved.status.conditions = []
    expect_failure(
        lambda: certificates.replace_certificate_signing_request_approval(csr_name, approved),
        422,
        "Invalid",
        'status.conditions: Forbidden: updates may not remove a condition of type "Approved"',
    )


def test_approved_and_denied_together_are_invalid(certificates: Any, csr_name: str) -> None:
    certificates.create_certificate_signing_request(_csr(csr_name))
    both = {"status": {"conditions": [_condition("Approved"), _condition("Denied")]}}
    expect_failure(
        lambda: certificates.patch_certificate_signing_request_approval(csr_name, manifest(both)),
        422,
        "Invalid",
        'status.conditions: Invalid value: "Denied": Approved and Denied conditions are '
        "mutually exclusive",
    )


def test_the_status_subresource_issues_the_certificate_but_cannot_approve(
    kube: KubeTestCluster, certificates: Any, csr_name: str
) -> None:
    certificates.create_certificate_signing_request(_csr(csr_name))
    path = f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{csr_name}/status"
    current = raw_call(kube.api_client, "GET", path)[1]
    current["status"] = {"conditions": [_condition("Approved")]}
    status, refused = raw_call(kube.api_client, "PUT", path, current)
    assert (status, refused["reason"]) == (422, "Invalid")
    assert 'updates may not add a condition of type "Approved"' in refused["message"]
    certificates.patch_certificate_signing_request_approval(
        csr_name, manifest({"status": {"conditions": [_condition("Approved")]}})
    )
    current = raw_call(kube.api_client, "GET", path)[1]
    current["status"]["certificate"] = _b64(_pem_certificate())
    status, issued = raw_call(kube.api_client, "PUT", path, current)
    assert status == 200
    assert base64.b64decode(issued["status"]["certificate"]) == _pem_certificate_of(issued)
    assert [c["type"] for c in issued["status"]["conditions"]] == ["Approved"]
    issued["status"]["certificate"] = _b64(_pem_certificate())
    status, refused = raw_call(kube.api_client, "PUT", path, issued)
    assert (status, refused["reason"]) == (422, "Invalid")
    assert "updates may not modify existing certificate content" in refused["message"]


def _pem_certificate_of(csr: dict[str, Any]) -> bytes:
    pem = base64.b64decode(csr["status"]["certificate"])
    x509.load_pem_x509_certificate(pem)  # it parses
    return pem


def test_the_object_itself_changes_only_its_metadata(certificates: Any, csr_name: str) -> None:
    certificates.create_certificate_signing_request(_csr(csr_name))
    patch = {"metadata": {"labels": {"a": "b"}}, "spec": {"usages": ["server auth"]}}
    patched = certificates.patch_certificate_signing_request(csr_name, manifest(patch))
    assert patched.metadata.labels == {"a": "b"} and patched.spec.usages == ["client auth"]


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        pytest.param(
            {"request": _b64(b"not a request")},
            'spec.request: Invalid value: "bm90IGEgcmVxdWVzdA==": PEM block type must be '
            "CERTIFICATE REQUEST",
            id="not PEM",
        ),
        pytest.param({"usages": None}, "spec.usages: Required value", id="no usages"),
        pytest.param(
            {"usages": ["teleportation"]},
            'spec.usages[0]: Unsupported value: "teleportation": supported values: "any", ',
            id="unknown usage",
        ),
        pytest.param({"signerName": ""}, "spec.signerName: Required value", id="no signer"),
        pytest.param(
            {"signerName": "nobody"},
            'spec.signerName: Invalid value: "nobody": must be a fully qualified domain and path '
            "of the form 'example.com/signer-name'",
            id="signer without a domain",
        ),
        pytest.param(
            {"expirationSeconds": 60},
            "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 "
            "seconds (10 minutes)",
            id="too short",
        ),
    ],
)
def test_invalid_requests_are_refused(
    certificates: Any, csr_name: str, spec: dict[str, Any], text: str
) -> None:
    failure = expect_failure(
        lambda: certificates.create_certificate_signing_request(_csr(csr_name, **spec)),
        422,
        "Invalid",
        text,
    )
    assert failure["message"].startswith(
        f'CertificateSigningRequest.certificates.k8s.io "{csr_name}" is invalid: '
    )
