"""The cloud CA, the cloudhub server certificate and node certificates.

Mirrors pkg/security/certs (ECDSA P-256 keys, SEC1 DER) and cloudhub's
PrepareAllCerts: the CA lives in Secret ``casecret`` (``cadata``, ``cakeydata``) and
the server certificate in ``cloudcoresecret`` (``cloudcoredata``,
``cloudcorekeydata``), both DER, in the namespace of a `SecretStore`, so that every
replica serves with the same CA. Output: `KeyPair`s for the certificate server,
cloudhub's TLS context and the token.

Unlike KubeEdge's edge signer (cloudhub/servers/httpserver/signcerts.go), a node
certificate's subject, SANs and usages never come from the CSR: see `sign_node`.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modules.certs import errors, identity
from modules.certs.store import SecretStore

CA_SECRET, CA_CERT_KEY, CA_KEY_KEY = "casecret", "cadata", "cakeydata"
SERVER_SECRET, SERVER_CERT_KEY, SERVER_KEY_KEY = (
    "cloudcoresecret",
    "cloudcoredata",
    "cloudcorekeydata",
)
LONG_VALIDITY = datetime.timedelta(days=364 * 100)  # KubeEdge's CA and server cert lifetime
CA_SERIAL = 1024  # as pkg/security/certs NewCertificateAuthorityDer


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_der(self) -> bytes:
        """SEC1 DER, KubeEdge's encoding (and the token's HMAC secret for the CA)."""
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """``EC PRIVATE KEY`` PEM, as the edge writes it."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_der(cls, cert_der: bytes, key_der: bytes) -> KeyPair:
        """Parse a DER pair.

        Raises:
            CAStoreError: unparsable, not an EC key, or the key does not match the cert.
        """
        try:
            cert = x509.load_der_x509_certificate(cert_der)
            key = serialization.load_der_private_key(key_der, password=None)
        except ValueError as exc:
            raise errors.CAStoreError(f"cannot parse certificate or key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise errors.CAStoreError("the key is not an EC key matching the certificate")
        return cls(cert, key)


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str = "") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    serial: int,
    now: datetime.datetime,
    lifetime: datetime.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _usages(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def generate_ca(now: datetime.datetime) -> KeyPair:
    """A self-signed CA, CN ``KubeEdge``, valid about 100 years (certs.go)."""
    key = new_key()
    name = _name("KubeEdge")
    builder = _builder(
        name, name, key.public_key(), serial=CA_SERIAL, now=now, lifetime=LONG_VALIDITY
    )
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usages(cert_sign=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    return KeyPair(builder.sign(key, hashes.SHA256()), key)


def generate_server_cert(
    ca: KeyPair, *, ips: list[str], dns_names: list[str], now: datetime.datetime
) -> KeyPair:
    """cloudhub's server certificate: CN and O ``KubeEdge``, ServerAuth, SANs as given."""
    key = new_key()
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    sans += [x509.DNSName(name) for name in dns_names if name]
    builder = _builder(
        _name("KubeEdge", "KubeEdge"), ca.cert.subject, key.public_key(),
        serial=x509.random_serial_number(), now=now, lifetime=LONG_VALIDITY,
    )  # fmt: skip
    builder = builder.add_extension(_usages(cert_sign=False), critical=True).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def sign_node(
    ca: KeyPair,
    public_key: ec.EllipticCurvePublicKey,
    node: str,
    *,
    days: int,
    now: datetime.datetime,
) -> x509.Certificate:
    """A client certificate for `node`'s key: subject `identity.node_subject`, ClientAuth only.

    Nothing else from the CSR is copied: no SANs, no requested usages.
    """
    builder = _builder(
        identity.node_subject(node), ca.cert.subject, public_key,
        serial=x509.random_serial_number(), now=now, lifetime=datetime.timedelta(days=days),
    )  # fmt: skip
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usages(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    return builder.sign(ca.key, hashes.SHA256())


def issued_by(cert: x509.Certificate, ca: x509.Certificate, now: datetime.datetime) -> bool:
    """True when `ca` signed `cert` and `cert` is within its validity at `now`."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def load_ca(store: SecretStore) -> KeyPair | None:
    """The CA from its Secret, or None when the Secret does not exist.

    Raises:
        CAStoreError: the Secret exists but holds no usable CA.
    """
    data = store.read(CA_SECRET)
    return None if data is None else _ca_from(data)


def load_or_create_ca(
    store: SecretStore, now: datetime.datetime, *, on_create: Callable[[], None] | None = None
) -> KeyPair:
    """The CA from the Secret, creating both (and the namespace) if missing;
    `on_create` is called when the Secret this process created is the one kept.

    Two replicas racing here both end with whichever CA was created first (with
    several replicas only the leader calls this: `modules.certs.module`).

    Raises:
        CAStoreError: the Secret exists but holds no usable CA.
    """
    data = store.read(CA_SECRET)
    if data is None:
        store.ensure_namespace()
        fresh = generate_ca(now)
        wanted = {CA_CERT_KEY: fresh.cert_der, CA_KEY_KEY: fresh.key_der}
        data = store.create_or_read(CA_SECRET, wanted)
        if data == wanted and on_create is not None:
            on_create()
    return _ca_from(data)


def _ca_from(data: dict[str, bytes]) -> KeyPair:
    if CA_CERT_KEY not in data or CA_KEY_KEY not in data:
        raise errors.CAStoreError(f"Secret {CA_SECRET} lacks {CA_CERT_KEY} or {CA_KEY_KEY}")
    return KeyPair.from_der(data[CA_CERT_KEY], data[CA_KEY_KEY])


def load_or_create_server_cert(
    store: SecretStore,
    ca: KeyPair,
    *,
    ips: list[str],
    dns_names: list[str],
    now: datetime.datetime,
) -> KeyPair:
    """The server certificate from the Secret if this CA signed it for these SANs, else a new one.

    A new one is written back to the Secret, as PrepareAllCerts does.
    """
    data = store.read(SERVER_SECRET) or {}
    try:
        pair = KeyPair.from_der(data[SERVER_CERT_KEY], data[SERVER_KEY_KEY])
    except (KeyError, errors.CAStoreError):
        pair = None
    if (
        pair is not None
        and issued_by(pair.cert, ca.cert, now)
        and _sans(pair.cert) == _wanted(ips, dns_names)
    ):
        return pair
    pair = generate_server_cert(ca, ips=ips, dns_names=dns_names, now=now)
    store.write(SERVER_SECRET, {SERVER_CERT_KEY: pair.cert_der, SERVER_KEY_KEY: pair.key_der})
    return pair


def _wanted(ips: list[str], dns_names: list[str]) -> set[str]:
    return {str(ipaddress.ip_address(ip)) for ip in ips} | {name for name in dns_names if name}


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)} | set(
        ext.get_values_for_type(x509.DNSName)
    )
