"""Rules for certificates.k8s.io/v1 CertificateSigningRequests and their subresources.

Pure functions over JSON dicts that `strategy.py` calls, as
pkg/registry/certificates/certificates/strategy.go and
pkg/apis/certificates/validation/validation.go: a create records who asked (this server
has one credential, its bearer token, so every requester is `REQUESTER`) and starts
with an empty status; the object itself then only changes its metadata, `/status` only
the certificate and conditions other than Approved and Denied (adding or removing those
is refused), and `/approval` only the conditions. Each validator returns field causes
that `strategy.py` raises as one 422.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from modules.kubeapi import errors, objects
from modules.kubeapi import fielderrors as fe

JsonObj = dict[str, Any]

KEY = "certificates.k8s.io/certificatesigningrequests"
REQUESTER = {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
LEGACY_SIGNER = "kubernetes.io/legacy-unknown"
USAGES = tuple(
    sorted(
        (
            "signing",
            "digital signature",
            "content commitment",
            "key encipherment",
            "key agreement",
            "data encipherment",
            "cert sign",
            "crl sign",
            "encipher only",
            "decipher only",
            "any",
            "server auth",
            "client auth",
            "code signing",
            "email protection",
            "s/mime",
            "ipsec end system",
            "ipsec tunnel",
            "ipsec user",
            "timestamping",
            "ocsp signing",
            "microsoft sgc",
            "netscape sgc",
        )
    )
)
_TRUE_ONLY = frozenset({"Approved", "Denied", "Failed"})  # conditions that are only ever True
_KEPT = ("Approved", "Denied", "Failed")  # conditions an update may not remove
_APPROVAL = ("Approved", "Denied")  # conditions only /approval adds or changes


def _dict(value: Any) -> JsonObj:
    return value if isinstance(value, dict) else {}


def _conditions(obj: JsonObj) -> list[Any]:
    found = _dict(obj.get("status")).get("conditions")
    return found if isinstance(found, list) else []


def default(obj: JsonObj) -> None:
    """A condition's status defaults to True (SetDefaults_CertificateSigningRequestCondition)."""
    status = obj.get("status")
    if isinstance(status, dict) and isinstance(status.get("conditions"), list):
        obj["status"] = dict(status)
        obj["status"]["conditions"] = [
            dict(c, status=c.get("status") or "True") if isinstance(c, dict) else c
            for c in status["conditions"]
        ]


def prepare_create(obj: JsonObj) -> None:
    """Record the requester and drop any status: nobody creates a pre-approved request."""
    spec = {k: v for k, v in _dict(obj.get("spec")).items() if k not in ("uid", "extra")}
    spec.update(copy.deepcopy(REQUESTER))
    obj["spec"] = spec
    obj["status"] = {}


def prepare_update(new: JsonObj, old: JsonObj, *, subresource: str) -> JsonObj:
    """The object to store; `new` went through the generic rules (metadata from the body,
    and for "status" and "approval" the status too)."""
    if subresource == "approval":
        new["status"] = _with_conditions(old, new)
    else:
        new["spec"] = old.get("spec")
        if subresource != "status":
            return new
        new["status"] = status = dict(_dict(new.get("status")))
        if isinstance(status.get("conditions"), list):
            status["conditions"] = copy.deepcopy(status["conditions"])
            for kind in _APPROVAL:
                _preserve_instances(status["conditions"], _conditions(old), kind)
    _stamp_conditions(new, old)
    return new


def _with_conditions(status_of: JsonObj, conditions_of: JsonObj) -> JsonObj:
    status = dict(_dict(status_of.get("status")))
    if "conditions" in _dict(conditions_of.get("status")):
        status["conditions"] = copy.deepcopy(conditions_of["status"]["conditions"])
    else:
        status.pop("conditions", None)
    return status


def _preserve_instances(conditions: list[Any], before: list[Any], kind: str) -> None:
    """preserveConditionInstances: /status keeps the old conditions of `kind` in place when
    it has as many of them; an added or removed one is left for validation to refuse."""
    new_at = [i for i, c in enumerate(conditions) if _dict(c).get("type") == kind]
    old = [c for c in before if _dict(c).get("type") == kind]
    if len(new_at) == len(old):
        for i, condition in zip(new_at, old, strict=True):
            conditions[i] = copy.deepcopy(condition)


def _stamp_conditions(new: JsonObj, old: JsonObj) -> None:
    """populateConditionTimestamps: now, or the old transition time of the same state."""
    now = objects.now()
    before = [c for c in _conditions(old) if isinstance(c, dict)]
    for condition in _conditions(new):
        if not isinstance(condition, dict):
            continue
        condition.setdefault("lastUpdateTime", now)
        if not condition.get("lastTransitionTime"):
            same = next(
                (
                    c.get("lastTransitionTime")
                    for c in before
                    if (c.get("type"), c.get("status"))
                    == (condition.get("type"), condition.get("status"))
                    and c.get("lastTransitionTime")
                ),
                None,
            )
            condition["lastTransitionTime"] = same or now


# -- validation --------------------------------------------------------------------


def validate(obj: JsonObj, old: JsonObj | None, *, subresource: str) -> list[fe.Cause]:
    """Causes for a new request (`old` None) or an update through `subresource`, in the
    order of validateCertificateSigningRequestUpdate; what the stored object already got
    wrong (both Approved and Denied, duplicate or empty types, a bad certificate) is
    tolerated, as upstream does for compatibility."""
    if old is None:
        return _validate_spec(_dict(obj.get("spec")))  # the status is dropped on create
    causes = _validate_conditions(obj, old)
    certificate = _dict(obj.get("status")).get("certificate")
    previous = _dict(old.get("status")).get("certificate")
    changed = _decode_bytes(certificate) != _decode_bytes(previous)
    problem = _certificate_problem(certificate) if changed else ""
    if problem and not _certificate_problem(previous):  # a bad stored one is tolerated
        causes.append(fe.invalid("status.certificate", "<certificate data>", problem))
    for kind in _KEPT:
        if _count(obj, kind) < _count(old, kind):
            detail = f'updates may not remove a condition of type "{kind}"'
            causes.append(fe.forbidden("status.conditions", detail))
    if subresource != "approval":
        for kind in _APPROVAL:
            if _count(obj, kind) > _count(old, kind):
                detail = f'updates may not add a condition of type "{kind}"'
                causes.append(fe.forbidden("status.conditions", detail))
    if changed:
        if subresource != "status":
            detail = "updates may not set certificate content"
            causes.append(fe.forbidden("status.certificate", detail))
        elif previous:
            detail = "updates may not modify existing certificate content"
            causes.append(fe.forbidden("status.certificate", detail))
    return causes


def _count(obj: JsonObj, kind: str) -> int:
    return sum(1 for c in _conditions(obj) if isinstance(c, dict) and c.get("type") == kind)


def _validate_spec(spec: JsonObj) -> list[fe.Cause]:
    causes: list[fe.Cause] = []
    request = _decode_bytes(spec.get("request"))
    if problem := _request_problem(request):
        causes.append(fe.invalid("spec.request", request, problem))
    usages = spec.get("usages") or []
    if not usages:
        causes.append(fe.required("spec.usages"))
    seen: set[str] = set()
    for i, usage in enumerate(usages):
        if usage not in USAGES:
            causes.append(fe.not_supported(f"spec.usages[{i}]", usage, USAGES))
        elif usage in seen:
            causes.append(fe.duplicate(f"spec.usages[{i}]", usage))
        seen.add(usage)
    signer = spec.get("signerName") or ""
    if signer == LEGACY_SIGNER:
        detail = "the legacy signerName is not allowed via this API version"
        causes.append(fe.invalid("spec.signerName", signer, detail))
    else:
        causes += _signer_name(signer)
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and seconds < 600:
        detail = "may not specify a duration less than 600 seconds (10 minutes)"
        causes.append(fe.invalid("spec.expirationSeconds", seconds, detail))
    return causes


def _decode_bytes(value: Any) -> bytes | None:
    """A []byte field's JSON (base64); undecodable is a 400, as decoding fails."""
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise errors.bad_request(
            'CertificateSigningRequest in version "v1" cannot be handled as a '
            "CertificateSigningRequest: illegal base64 data at input byte 0"
        ) from None


def _request_problem(request: bytes | None) -> str:
    """Why a PEM PKCS#10 request is refused (certificates.ParseCSR, CheckSignature), or ""."""
    text = request or b""
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in text:
        return "PEM block type must be CERTIFICATE REQUEST"
    try:
        csr = x509.load_pem_x509_csr(text)
    except ValueError:
        return "x509: malformed certificate request"
    if csr.is_signature_valid:
        return ""
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "x509: Ed25519 verification failure"
    return "x509: signature verification failure"


def _signer_name(signer: str) -> list[fe.Cause]:
    """ValidateSignerName: `example.com/signer-name`."""
    field = "spec.signerName"
    if not signer:
        return [fe.required(field)]
    segments = signer.split("/")
    if len(segments) != 2:
        detail = "must be a fully qualified domain and path of the form 'example.com/signer-name'"
        return [fe.invalid(field, signer, detail)]
    domain = segments[0]
    labels = domain.split(".")
    causes = []
    bad = next((label for label in labels if not objects.is_label(label)), None)
    if bad is not None:
        detail = f'validating label "{bad}": {objects.LABEL_MSG}'
        causes.append(fe.invalid(field, domain, detail))
    if len(labels) < 2:
        detail = "should be a domain with at least two segments separated by dots"
        causes.append(fe.invalid(field, domain, detail))
    return causes


def _validate_conditions(obj: JsonObj, old: JsonObj | None) -> list[fe.Cause]:
    """validateConditions; the path of a mutual exclusion is the list, not the entry."""
    kinds_before = [_dict(c).get("type") or "" for c in _conditions(old or {})]
    allow_both = "Approved" in kinds_before and "Denied" in kinds_before
    allow_duplicates = len(set(kinds_before)) < len(kinds_before)
    allow_empty = "" in kinds_before
    causes: list[fe.Cause] = []
    seen: set[str] = set()
    for i, condition in enumerate(_conditions(obj)):
        condition = _dict(condition)
        field = f"status.conditions[{i}]"
        kind, status = condition.get("type") or "", condition.get("status") or ""
        if not kind and not allow_empty:
            causes.append(fe.required(f"{field}.type"))
        allowed = ("True",) if kind in _TRUE_ONLY else ("False", "True", "Unknown")
        if not status:
            causes.append(fe.required(f"{field}.status"))
        elif status not in allowed:
            causes.append(fe.not_supported(f"{field}.status", status, allowed))
        other = {"Approved": "Denied", "Denied": "Approved"}.get(kind)
        if other in seen and not allow_both:
            detail = "Approved and Denied conditions are mutually exclusive"
            causes.append(fe.invalid("status.conditions", kind, detail))
        if kind in seen and not allow_duplicates:
            causes.append(fe.duplicate(f"{field}.type", kind))
        seen.add(kind)
    return causes


def _certificate_problem(certificate: Any) -> str:
    """validateCertificate: one or more PEM CERTIFICATE blocks that parse."""
    data = _decode_bytes(certificate) or b""
    if not data:
        return ""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return "must contain at least one CERTIFICATE PEM block"
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        return f"x509: {exc}"
    return ""
