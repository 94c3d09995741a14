"""The embedded server's TLS: a CA of its own and a serving certificate signed by it.

Why TLS at all on loopback: kubectl (client-go) sends a kubeconfig's credentials only
to an https server (clientcmd's DirectClientConfig.ClientConfig reads the user's auth
info only when IsConfigTransportTLS), so a bearer token needs TLS to be usable.

Input: the listen host, and the CA kept in the data file when there is one (`CA_KEY`), so
a kubeconfig written before a restart still verifies the server. Output: `Serving`, the
CA's PEM (the kubeconfig's certificate-authority-data) and the server's `ssl.SSLContext`
for `http.py`. The serving certificate is made afresh at each start, for 127.0.0.1, ::1,
localhost and the listen host; ECDSA P-256 keys throughout.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modules.certs import tls

CA_KEY = "serving-ca"  # the name the CA is kept under in the data file
_CA_LIFETIME = datetime.timedelta(days=3650)
_SERVING_LIFETIME = datetime.timedelta(days=365)


@dataclasses.dataclass(frozen=True)
class Serving:
    """The CA clients trust and the server's TLS context."""

    ca_pem: bytes  # PEM of the CA certificate
    context: ssl.SSLContext  # server side, TLS 1.2 or newer, no client certificate asked


def new_ca() -> bytes:
    """A fresh CA as JSON bytes (certificate and key PEM), the form `CA_KEY` keeps."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "beehive-embedded-ca")])
    cert = (
        _builder(name, name, key.public_key(), _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return json.dumps({"cert": _pem(cert).decode(), "key": _key_pem(key).decode()}).encode()


def serving(ca_blob: bytes, host: str) -> Serving:
    """A serving certificate for `host` (and loopback) signed by the CA in `ca_blob`.

    Raises:
        ValueError: `ca_blob` is not a CA that `new_ca` made.
    """
    try:
        stored = json.loads(ca_blob)
        ca_cert = x509.load_pem_x509_certificate(stored["cert"].encode())
        ca_key = serialization.load_pem_private_key(stored["key"].encode(), password=None)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"the kept serving CA is unusable: {exc}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the kept serving CA's key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "beehive-embedded-apiserver")])
    cert = (
        _builder(name, ca_cert.subject, key.public_key(), _SERVING_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_chain(context, _pem(cert) + _pem(ca_cert), _key_pem(key))
    return Serving(_pem(ca_cert), context)


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
    ]
    try:
        extra: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        extra = x509.DNSName(host)
    return names if not host or extra in names else [*names, extra]


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
    lifetime: datetime.timedelta,
) -> x509.CertificateBuilder:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
