"""cloudhub's TLS material: the CA and server certificate, as a server context.

Input: either PEM files named in cloudhub's settings, or the Secrets the
certificate server keeps (`modules.certs.ca`: ``casecret`` and ``cloudcoresecret``
in one namespace), read through a Kubernetes ``CoreV1Api``. Output: a `HubTLS`,
the mutual-TLS server context (client certificate required, verified against the
CA, TLS 1.2 minimum) and the CA certificate for `modules.certs.tls.check_peer`.

As cloudhub's PrepareAllCerts (cloud/pkg/cloudhub/cloudhub.go): files first, else
the Secrets. The server certificate the certificate server wrote is used as it is
when this CA signed it; only when there is none is one made for `ips`/`dns_names`.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509

from modules.certs import ca as ca_mod
from modules.certs import errors, tls
from modules.certs.store import SecretStore


@dataclasses.dataclass(frozen=True)
class HubTLS:
    """What cloudhub's websocket server needs for mutual TLS."""

    context: ssl.SSLContext  # the server side, client certificate required
    ca: x509.Certificate  # the CA node certificates must chain to
    cert: x509.Certificate | None = None  # the server certificate (for its expiry metric)


def from_files(*, ca_file: str, cert_file: str, key_file: str) -> HubTLS:
    """The context from PEM files (tlsCAFile, tlsCertFile, tlsPrivateKeyFile).

    Raises:
        CAStoreError: a file is missing or unusable.
    """
    try:
        ca_pem = Path(ca_file).read_bytes()
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        context = tls.server_context(ca_pem=ca_pem, cert=Path(cert_file), key=Path(key_file))
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())  # the first
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise errors.CAStoreError(f"cannot load the TLS files: {exc}") from None
    return HubTLS(context, ca_cert, cert)


def from_secrets(
    core: Any, namespace: str, *, ips: list[str], dns_names: list[str], now: datetime.datetime,
    replica: Any = None,
) -> HubTLS:  # fmt: skip
    """The context from the certificate server's Secrets in `namespace` (created if missing).

    With several replicas (`replica`, the ``replica`` service) only the leader creates
    the CA or the server certificate; the others wait for them (up to ``ca_wait``).

    Raises:
        CAStoreError: the Secrets hold unusable material, or a replica that is not the
            leader found none within ``ca_wait``.
        kubernetes.client.ApiException: the API refused a read or write.
    """
    store = SecretStore(core, namespace)
    if replica is None:
        ca = ca_mod.load_or_create_ca(store, now)
        server = _server_pair(store, ca, ips=ips, dns_names=dns_names, now=now)
    else:
        ca, server = _from_leader(store, replica, ips=ips, dns_names=dns_names, now=now)
    try:
        context = tls.server_context(ca_pem=ca.cert_pem, cert=server.cert_pem, key=server.key_pem)
    except ssl.SSLError as exc:
        raise errors.CAStoreError(f"the server certificate is unusable: {exc}") from None
    return HubTLS(context, ca.cert, server.cert)


def _from_leader(
    store: SecretStore, replica: Any, *, ips: list[str], dns_names: list[str],
    now: datetime.datetime,
) -> tuple[ca_mod.KeyPair, ca_mod.KeyPair]:  # fmt: skip
    """The CA and the server pair, made by the leader replica (here, if this is it)."""
    found: list[tuple[ca_mod.KeyPair, ca_mod.KeyPair]] = []

    def ready() -> bool:
        ca = ca_mod.load_ca(store)
        if ca is None and replica.is_leader():
            ca = ca_mod.load_or_create_ca(store, now)
        if ca is None:
            return False
        if replica.is_leader():
            found.append((ca, _server_pair(store, ca, ips=ips, dns_names=dns_names, now=now)))
        else:
            pair = _issued_pair(store, ca, now)
            if pair is not None:
                found.append((ca, pair))
        return bool(found)

    if not replica.wait_for(ready, timeout=replica.settings.ca_wait):
        raise errors.CAStoreError(
            f"no CA and server certificate Secrets within {replica.settings.ca_wait}s and this"
            f" replica is not the leader (leader: {replica.leader_identity() or 'none'})"
        )
    return found[0]


def _issued_pair(
    store: SecretStore, ca: ca_mod.KeyPair, now: datetime.datetime
) -> ca_mod.KeyPair | None:
    """The server pair in its Secret when this CA signed it (None: missing or not)."""
    data = store.read(ca_mod.SERVER_SECRET) or {}
    try:
        pair = ca_mod.KeyPair.from_der(data[ca_mod.SERVER_CERT_KEY], data[ca_mod.SERVER_KEY_KEY])
    except (KeyError, errors.CAStoreError):
        return None
    return pair if ca_mod.issued_by(pair.cert, ca.cert, now) else None


def _server_pair(
    store: SecretStore, ca: ca_mod.KeyPair, *, ips: list[str], dns_names: list[str],
    now: datetime.datetime,
) -> ca_mod.KeyPair:  # fmt: skip
    """The certificate server's pair when this CA signed it, else a new one for these SANs."""
    pair = _issued_pair(store, ca, now)
    if pair is not None:
        return pair
    return ca_mod.load_or_create_server_cert(store, ca, ips=ips, dns_names=dns_names, now=now)
