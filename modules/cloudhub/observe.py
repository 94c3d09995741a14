"""cloudhub seen from outside: the metrics snapshot, health and readiness, and what the
core learns from the transport for the nodes' Events.

Input: the core's running totals (`CloudHubCore.metrics`, read on the loop thread
through `ServerTransport.call`), the handshake gate's counts, the upgrade requests
refused (`CountingTransport`), the ObjectSync writer's backlog and the TLS
certificates. Output: the JSON-ready snapshot of the ``cloudhub.metrics`` command
and the problems of ``cloudhub.health`` / ``cloudhub.ready`` (`modules.probes`).
`CountingTransport` also tells the core, on the loop thread, why a connection ended
(the edge's close frame, none, or our own close of a connection that did not read)
and which named node an upgrade refusal was for (contract item 4's notices).
"""

from __future__ import annotations

import collections
from typing import Any

from websockets.http11 import Request, Response

from modules import contract
from modules.certs import cloud as cloud_tls
from modules.cloudhub import core, transport
from modules.cloudhub.objectsync import ObjectSyncWriter
from modules.hub import errors, handshake, wsconn

# Upgrade requests refused by cloudhub, by the status of the refusal.
_REFUSAL_REASONS = {400: "bad_request", 403: "forbidden"}
_NOT_READING = "not reading"  # how wsconn's close of a connection that does not read begins


class CountingTransport(transport.ServerTransport):
    """The websocket server, counting the upgrade requests it refuses by status, and
    telling the core why connections end and whom refusals were for."""

    def __init__(self, hub: core.CloudHubCore, **kwargs: Any) -> None:
        super().__init__(hub, **kwargs)
        self.refusals: collections.Counter[int] = collections.Counter()  # status -> count

    def check_request(
        self, connection: wsconn.ServerConnection, request: Request
    ) -> Response | None:
        response = super().check_request(connection, request)
        if response is not None:
            self.refusals[response.status_code] += 1
            node = _named_node(request)
            reason = _REFUSAL_REASONS.get(response.status_code)
            if node and reason:
                details = (response.body or b"").decode("utf-8", "replace").strip()
                self.core.refused(node, reason, details)
        return response

    def on_close(self, conn: wsconn.Connection) -> None:
        self.core.lost(conn.key, *_why_ended(conn))  # the base's lost then finds no session
        super().on_close(conn)


def _named_node(request: Request) -> str:
    """The node an upgrade request names in its header, if that is a valid node name."""
    headers = {key.lower(): value for key, value in request.headers.raw_items()}
    try:
        return handshake.check_node_id(headers.get(handshake.NODE_ID_HEADER, "").strip())
    except errors.HandshakeError:
        return ""


def _why_ended(conn: wsconn.Connection) -> tuple[str, str]:
    """Why a connection ended, unless the core ended it (then it knows): the edge's close,
    our close of a connection that did not read (wsconn), or no close at all."""
    protocol = conn.protocol
    received, sent = protocol.close_rcvd, protocol.close_sent
    if received is not None and (sent is None or protocol.close_rcvd_then_sent):
        text = f"close code {received.code}"
        return contract.ENDED_CLOSED, f"{text}: {received.reason}" if received.reason else text
    if sent is not None and sent.reason.startswith(_NOT_READING):  # (no byte count: it varies)
        return contract.ENDED_WRITE_BUFFER, "more than max_write_buffer bytes waited for it"
    if sent is not None:
        return contract.ENDED_LOST, f"closed with code {sent.code}: {sent.reason}"
    return contract.ENDED_LOST, "the connection broke without a close frame"


class Observer:
    """Builds cloudhub's snapshot and answers its probes (any thread)."""

    def __init__(
        self,
        hub: core.CloudHubCore,
        server: CountingTransport,
        *,
        tls: cloud_tls.HubTLS | None,
    ) -> None:
        self._core = hub  # read on the loop thread only
        self._server = server  # runs reads on its loop
        self._tls = tls  # certificates whose expiry is reported

    def snapshot(self, nodes: list[str], *, timeout: float) -> dict[str, Any]:
        """The totals, the handshakes and the certificates (see the module docstring).

        Raises:
            TimeoutError: the loop did not answer within `timeout`.
            SessionClosedError: the loop is not running.
        """
        data = self._server.call(lambda: self._read(nodes), timeout)
        data["kind"] = "cloudhub"
        certificates = {}
        if self._tls is not None:
            certificates["ca"] = self._tls.ca.not_valid_after_utc.timestamp()
            if self._tls.cert is not None:
                certificates["server"] = self._tls.cert.not_valid_after_utc.timestamp()
        data["certificates"] = certificates
        return data

    def object_sync(self, writer: ObjectSyncWriter | None) -> dict[str, Any] | None:
        """The writer's backlog (records with changes not written) and lag (how long the
        oldest change has waited), from its own stats."""
        if writer is None:
            return None
        stats = writer.stats()
        return {"pending": writer.pending(), "lag": stats["lag"], "writes": writer.writes,
                "failures": stats["failures"], "conflicts": stats["conflicts"]}  # fmt: skip

    def health(self, timeout: float = 1.0) -> list[str]:
        """Healthy while the event loop answers within `timeout`."""
        return self._answers(timeout, "event loop")

    def ready(self, timeout: float = 1.0) -> list[str]:
        """Ready while it listens (the server is up once the loop answers) and, with
        several replicas, holds its member Lease (else it refuses every edge)."""
        fenced = self._server.fence_reason()
        return self._answers(timeout, "server") + ([fenced] if fenced else [])

    def _answers(self, timeout: float, what: str) -> list[str]:
        try:
            self._server.call(lambda: None, timeout)
        except TimeoutError:
            return [f"the {what} did not answer within {timeout:g} s"]
        except errors.SessionClosedError:
            return [f"the {what} is not running"]
        return []

    def _read(self, nodes: list[str]) -> dict[str, Any]:
        """On the loop thread: the core's totals and the handshake counts."""
        data = self._core.metrics(nodes)
        gate, refusals = self._server.gate, self._server.refusals
        refused = {"node_limit": data.pop("refused_node_limit"), "pending_limit": gate.refused}
        refused |= {reason: 0 for reason in _REFUSAL_REASONS.values()}
        for status, count in refusals.items():
            reason = _REFUSAL_REASONS.get(status, f"http_{status}")
            refused[reason] = refused.get(reason, 0) + count
        data["handshakes"] = {
            "accepted": data.pop("handshakes_accepted"),
            "refused": refused,
            "failed": {
                "incomplete": gate.incomplete,
                "queue_timeout": gate.given_up,
                **self._server.tls_failures,
            },
        }
        data["pending_handshakes"] = gate.pending
        data["queued_handshakes"] = gate.waiting
        data["heap_releases"] = self._server.heap.releases
        return dict(data)
