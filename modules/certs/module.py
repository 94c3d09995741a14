"""The ``certserver`` module: cloudcore's CA, join token and HTTPS certificate server.

Input: the ``kube`` service (a `modules.kube.connection.KubeConnection`) and
`CertSettings`. On start it loads or creates the CA and the server certificate in
the Secrets of `settings.namespace` (`modules.certs.ca`), writes a join token to
Secret ``tokensecret`` and rotates it (`modules.certs.token`), and serves
``/ca.crt`` and ``/edge.crt`` on `settings.port` (`modules.certs.https`), as
cloudhub's start sequence (cloudhub.go, steps 3-5). Output: certificates to edges,
the node's Event ``CertificateIssued`` for each (with its expiry; written by an
`EventRecorder` on the thread ``beehive-certserver-events``), the admin command
``certserver`` (CA hash, token expiry, counts; never the token or a key), and
``certserver.metrics`` (expiry times, for the metrics module; `modules.probes`). It
handles no messages.

With several replicas (the ``replica`` service, `modules.replicas.service.Replica`)
only the leader creates the CA and writes and rotates the join token: exactly one CA,
ever (KubeEdge #5922 is two replicas each making one). A replica that is not the
leader waits for the CA Secret (up to the replica settings' ``ca_wait``) and loads
it; its token rotator reads the leader's token and takes over the schedule if it
becomes the leader. A replica that fenced itself (its member Lease's renewal is
overdue) refuses to sign with 503 and reports not ready.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kubernetes import client

from beehive import Module
from modules import probes
from modules.certs import ca as ca_mod
from modules.certs import errors, tls, token
from modules.certs.https import CertHTTPSServer
from modules.certs.server import CertService
from modules.certs.settings import CertSettings
from modules.certs.store import SecretStore
from modules.kube.correlator import NORMAL, Occurrence
from modules.kube.recorder import ApiSink, EventRecorder

log = logging.getLogger("modules.certs")

ADMIN_COMMAND = "certserver"
ISSUED = "CertificateIssued"  # the node's Event for a certificate issued or renewed


class CertServer(Module):
    """Serves the certificate flow while the hive runs (see the module docstring)."""

    settings_type = CertSettings

    def on_start(self) -> None:
        s: CertSettings = self.settings
        self._api = self.context.services["kube"].api_client()  # closed in on_stop
        store = SecretStore(client.CoreV1Api(self._api), s.namespace)
        now = token.utc_now()
        self._replica: Any = self.context.services.get("replica")  # None: a single replica
        self._created_ca = False  # True when this process created the CA
        self._ca = self._load_ca(store, now)  # shared by every replica
        self._server_pair = server_pair = ca_mod.load_or_create_server_cert(
            store, self._ca, ips=s.advertise_addresses, dns_names=s.dns_names, now=now
        )
        refresh = datetime.timedelta(hours=s.token_refresh_hours)
        leader = self._replica.is_leader if self._replica is not None else None
        self._rotator = token.TokenRotator(
            store, self._ca, refresh=refresh, leader=leader,
            poll=self._replica.settings.retry_period if self._replica is not None else 1.0,
        )  # fmt: skip
        self._events: EventRecorder | None = None  # the nodes' Events, unless turned off
        if s.node_events:
            self._events = EventRecorder(ApiSink(self._api), owner=self.module_name,
                                         queue_size=s.node_event_queue)  # fmt: skip
            self._events.start()
        self._service = CertService(self._ca, validity_days=s.validity_days, max_body=s.max_body,
                                    on_issued=self._issued, refuse_when=self._fenced)  # fmt: skip
        context = tls.server_context(
            ca_pem=self._ca.cert_pem,
            cert=server_pair.cert_pem,
            key=server_pair.key_pem,
            require_client_cert=False,
        )
        self._https = CertHTTPSServer(self._service, context, s)
        self._rotator.start()
        self._https.start()
        self.hive.register_command(ADMIN_COMMAND, self.status)
        probes.offer(self.hive, self.module_name, metrics=self._metrics, ready=self._ready)
        log.info(
            "certserver: serving on %s:%d, CA sha256 %s",
            s.address, self._https.port, token.ca_hash(self._ca.cert_der),
        )  # fmt: skip

    def on_stop(self) -> None:
        for stop in (
            getattr(self, "_https", None),
            getattr(self, "_rotator", None),
            getattr(self, "_events", None),
        ):
            if stop is not None:
                stop.stop()
        if getattr(self, "_api", None) is not None:
            self._api.close()

    def _load_ca(self, store: SecretStore, now: datetime.datetime) -> ca_mod.KeyPair:
        """The CA: created here only by a single replica or the leader (see the module
        docstring).

        Raises:
            CAStoreError: no CA Secret appeared within ``ca_wait`` seconds.
        """
        replica = self._replica
        if replica is None:
            return ca_mod.load_or_create_ca(store, now)
        found: list[ca_mod.KeyPair] = []

        def ready() -> bool:
            if replica.is_leader():
                found.append(ca_mod.load_or_create_ca(store, now, on_create=self._mark_created))
            else:
                found.extend(filter(None, [ca_mod.load_ca(store)]))
            return bool(found)

        if not replica.wait_for(ready, timeout=replica.settings.ca_wait):
            raise errors.CAStoreError(
                f"no CA Secret {ca_mod.CA_SECRET} within {replica.settings.ca_wait}s and this"
                f" replica is not the leader (leader: {replica.leader_identity() or 'none'})"
            )
        return found[0]

    def _mark_created(self) -> None:
        self._created_ca = True

    def _fenced(self) -> str | None:
        return self._replica.fenced() if self._replica is not None else None

    def _ready(self, timeout: float = 1.0) -> list[str]:
        why = self._fenced()
        return [why] if why else []

    def _issued(self, node: str, via: str, expires: datetime.datetime) -> None:
        """A certificate was signed (a connection thread): the node's Event, queued."""
        if self._events is None:
            return
        what = "Issued a certificate (join token)" if via == "token" else (
            "Renewed the certificate (with the current one)")  # fmt: skip
        until = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"{what}, expires {until}"
        event = Occurrence(kind="Node", name=node, uid=node, type=NORMAL, reason=ISSUED,
                           message=message)  # fmt: skip
        self._events.record(event)

    @property
    def port(self) -> int:
        """The port the certificate server listens on (useful with ``port: 0``)."""
        return self._https.port

    def _metrics(self, nodes: list[str] | None = None) -> dict[str, Any]:
        """Expiry times in epoch seconds: the CA, the server certificate, the join token."""
        expires = self._rotator.expires
        return {
            "kind": "certserver",
            "certificates": {
                "ca": self._ca.cert.not_valid_after_utc.timestamp(),
                "server": self._server_pair.cert.not_valid_after_utc.timestamp(),
            },
            "token_expires": expires.timestamp() if expires else None,
            "issued": self._service.issued,
            "refused": self._service.refused,
        }

    def status(self) -> dict[str, Any]:
        """The admin view: nothing secret, only hashes, times and counts."""
        expires = self._rotator.expires
        return {
            "port": self._https.port,
            "ca_sha256": token.ca_hash(self._ca.cert_der),
            "token_expires": expires.isoformat() if expires else None,
            "certificates_issued": self._service.issued,
            "requests_refused": self._service.refused,
            "node_events": self._events.stats() if self._events is not None else None,
            "created_ca": self._created_ca,
            "token_rotations": self._rotator.rotations,
            "replica": self._replica.status() if self._replica is not None else None,
            **self._https.stats,
        }
