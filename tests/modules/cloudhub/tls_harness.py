"""A secure cloud hive (certserver, a scripted edgecontroller, cloudhub over mutual TLS)
on the embedded API server, and the certificates and clients the TLS tests need."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beehive import Hive
from modules import contract
from modules.certs import ca as ca_mod
from modules.certs import tls, token
from modules.certs.module import CertServer
from modules.certs.settings import CertSettings
from modules.certs.store import SecretStore
from modules.cloudhub import CloudHub, CloudHubSettings
from modules.edgehub.transport import ClientConnection
from modules.hub import handshake
from modules.kube.connection import KubeConnection
from tests.fakes import Probe, eventually
from tests.kube_fixtures import unique
from tests.modules.cloudhub.harness import ControllerSettings, ScriptedController, World


@dataclasses.dataclass
class SecureCloud:
    hive: Hive
    port: int  # cloudhub's wss port
    cert_port: int  # the certificate server's port
    store: SecretStore  # the Secrets of the CA and token

    @property
    def cert_server(self) -> str:
        return f"https://127.0.0.1:{self.cert_port}"

    def ca(self) -> ca_mod.KeyPair:
        return ca_mod.load_or_create_ca(self.store, token.utc_now())

    def token(self) -> str:
        found = token.read_token(self.store)
        assert found is not None
        return found


def start_secure_cloud(
    make_hive: Callable[..., Hive], probe: Probe, world: World, kube: Any, **settings: Any
) -> SecureCloud:
    namespace = unique("kubeedge")
    services: dict[str, Any] = {"probe": probe, "world": world,
                                "kube": KubeConnection(kube.kubeconfig_path)}  # fmt: skip
    hive = make_hive()
    hive.add("certserver", CertServer, services=services,
             settings=CertSettings(address="127.0.0.1", port=0, namespace=namespace,
                                   advertise_addresses=["127.0.0.1"]))  # fmt: skip
    hive.add(contract.EDGECONTROLLER, ScriptedController, services=services,
             settings=ControllerSettings())  # fmt: skip
    defaults: dict[str, Any] = {"port": 0, "tick_interval": 0.05, "tls": True,
                                "cert_namespace": namespace, "object_sync": False}  # fmt: skip
    hive.add(contract.CLOUDHUB, CloudHub, services=services,
             settings=CloudHubSettings(**(defaults | settings)))  # fmt: skip
    hive.start()
    assert eventually(lambda: "cloudhub.address" in hive.commands)
    port = hive.commands["cloudhub.address"]()["port"]
    cert_port = hive.commands["certserver"]()["port"]
    return SecureCloud(hive, port, cert_port, SecretStore(kube.core, namespace))


def edge_tls(cloud: SecureCloud, cert_dir: Path, **settings: Any) -> dict[str, Any]:
    """edgehub settings for a TLS edge of `cloud` (token given unless overridden)."""
    return {"tls": True, "cert_server": cloud.cert_server, "cert_dir": str(cert_dir),
            "token": cloud.token(), "handshake_timeout": 2.0} | settings  # fmt: skip


def node_pair(ca: ca_mod.KeyPair, node: str) -> ca_mod.KeyPair:
    """A node certificate and key signed by `ca`."""
    key = ca_mod.new_key()
    now = token.utc_now()
    cert = ca_mod.sign_node(ca, key.public_key(), node, days=1, now=now)
    return ca_mod.KeyPair(cert, key)


def connect(
    cloud: SecureCloud, pair: ca_mod.KeyPair, node: str, *, timeout: float = 2.0
) -> ClientConnection:
    """edgehub's own client, presenting `pair`, claiming to be `node`."""
    context = tls.client_context(ca_pem=cloud.ca().cert_pem, cert=pair.cert_pem, key=pair.key_pem)
    return ClientConnection(
        f"wss://127.0.0.1:{cloud.port}{handshake.connection_path(node)}",
        handshake.connection_headers(node),
        timeout=timeout,
        ssl_context=context,
    )


def expired_token(cloud: SecureCloud) -> str:
    past = token.utc_now() - datetime.timedelta(days=3)
    return token.new_token(cloud.ca(), now=past, refresh=datetime.timedelta(hours=12))


def other_ca_token(cloud: SecureCloud) -> str:
    """A token whose CA hash is another CA's (the CA served is not the one it names)."""
    other = ca_mod.generate_ca(token.utc_now())
    real = cloud.token()
    return token.ca_hash(other.cert_der) + real[real.index(".") :]
