"""The cloud CA and server certificate in Secrets: created once, shared by replicas."""

from __future__ import annotations

import datetime
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modules.certs import ca as ca_mod
from modules.certs.store import SecretStore


class StaleFirstRead(SecretStore):
    """A replica that read "no CA yet" just before the other replica created it."""

    def __init__(self, core: Any, namespace: str) -> None:
        super().__init__(core, namespace)
        self.stale = True

    def read(self, name: str) -> dict[str, bytes] | None:
        if self.stale:
            self.stale = False
            return None
        return super().read(name)


def test_ca_is_created_with_its_namespace_and_loaded_the_second_time(store, now) -> None:
    first = ca_mod.load_or_create_ca(store, now)
    assert first.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "KubeEdge"
    assert isinstance(first.key.curve, ec.SECP256R1)
    assert first.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert first.cert.not_valid_after_utc - now > datetime.timedelta(days=365 * 99)
    data = store.read(ca_mod.CA_SECRET)
    assert data == {"cadata": first.cert_der, "cakeydata": first.key_der}
    assert ca_mod.load_or_create_ca(store, now).cert_der == first.cert_der


def test_replica_that_loses_the_creation_race_uses_the_winners_ca(store, now) -> None:
    winner = ca_mod.load_or_create_ca(store, now)
    loser = ca_mod.load_or_create_ca(StaleFirstRead(store.core, store.namespace), now)
    assert loser.cert_der == winner.cert_der and loser.key_der == winner.key_der


def test_two_replicas_starting_together_end_with_one_ca(store, now) -> None:
    start = threading.Barrier(2, timeout=5)
    results: list[bytes] = []

    def replica() -> None:
        start.wait()
        results.append(
            ca_mod.load_or_create_ca(SecretStore(store.core, store.namespace), now).cert_der
        )

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(results) == 2 and results[0] == results[1]


def test_server_cert_has_the_configured_sans_and_is_reused_until_they_change(store, now) -> None:
    ca = ca_mod.load_or_create_ca(store, now)
    first = ca_mod.load_or_create_server_cert(
        store, ca, ips=["127.0.0.1"], dns_names=["cloud.local"], now=now
    )
    sans = first.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["cloud.local"]
    eku = first.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert ca_mod.issued_by(first.cert, ca.cert, now)
    again = ca_mod.load_or_create_server_cert(
        store, ca, ips=["127.0.0.1"], dns_names=["cloud.local"], now=now
    )
    assert again.cert_der == first.cert_der
    changed = ca_mod.load_or_create_server_cert(store, ca, ips=["127.0.0.2"], dns_names=[], now=now)
    assert changed.cert_der != first.cert_der
    assert store.read(ca_mod.SERVER_SECRET) == {
        "cloudcoredata": changed.cert_der,
        "cloudcorekeydata": changed.key_der,
    }


def test_server_cert_from_another_ca_is_replaced(store, now) -> None:
    ca = ca_mod.load_or_create_ca(store, now)
    foreign = ca_mod.generate_server_cert(
        ca_mod.generate_ca(now), ips=["127.0.0.1"], dns_names=[], now=now
    )
    store.write(
        ca_mod.SERVER_SECRET,
        {"cloudcoredata": foreign.cert_der, "cloudcorekeydata": foreign.key_der},
    )
    pair = ca_mod.load_or_create_server_cert(store, ca, ips=["127.0.0.1"], dns_names=[], now=now)
    assert pair.cert_der != foreign.cert_der and ca_mod.issued_by(pair.cert, ca.cert, now)
