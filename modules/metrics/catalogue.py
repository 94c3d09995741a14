"""Every metric family the collector exports: name, type, labels and help, in one list.

The README's "Metrics and health" section lists the same; the dashboard and alert
rules under deploy/ may use only these names (a test checks). Per-node families
(label ``node``) carry only the nodes the metrics settings list in ``per_node``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its group says which snapshot feeds it."""

    group: str  # hive, cloudhub, edgecontroller, kube, certs, edgehub
    name: str  # counters end in _total
    kind: Kind
    labels: tuple[str, ...]
    help: str

    def sample_names(self) -> list[str]:
        """The names its samples carry in the text format."""
        if self.kind == "histogram":
            return [f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"]
        return [self.name]


def _f(group: str, name: str, kind: Kind, labels: str, text: str) -> Family:
    return Family(group, name, kind, tuple(labels.split()), text)


FAMILIES: tuple[Family, ...] = (
    # The hive: every module (label `module` is the module's name in the config).
    _f("hive", "beehive_module_state", "gauge", "module state",
       "1 for the module's current state (running, restarting, failed, ...), 0 for the others"),
    _f("hive", "beehive_module_restarts_total", "counter", "module",
       "Fresh instances started after a failure"),
    _f("hive", "beehive_module_failures_total", "counter", "module",
       "Exceptions in on_start, on_message or run"),
    _f("hive", "beehive_mailbox_depth", "gauge", "module", "Messages queued in the mailbox"),
    _f("hive", "beehive_mailbox_capacity", "gauge", "module", "Most messages the mailbox holds"),
    _f("hive", "beehive_mailbox_received_total", "counter", "module", "Messages accepted"),
    _f("hive", "beehive_mailbox_delivered_total", "counter", "module", "Messages handled"),
    _f("hive", "beehive_mailbox_dropped_total", "counter", "module",
       "Messages refused or evicted by the mailbox's full-policy"),
    _f("hive", "beehive_mailbox_oldest_age_seconds", "gauge", "module",
       "Age of the oldest queued message (0 when empty)"),
    _f("hive", "beehive_dead_letters_total", "counter", "module",
       "Undeliverable messages recorded, by module (names that are no module: other)"),
    _f("hive", "beehive_metrics_source_up", "gauge", "module",
       "1 when the module's snapshot was read for this scrape; 0 when that failed, or the"
       " module is not running"),
    # cloudhub: totals over every node, kept running.
    _f("cloudhub", "beehive_cloudhub_nodes_connected", "gauge", "", "Nodes with a session"),
    _f("cloudhub", "beehive_cloudhub_nodes_disconnected", "gauge", "",
       "Nodes with a queue and no session (connected before, or sent objects)"),
    _f("cloudhub", "beehive_cloudhub_messages_queued", "gauge", "",
       "Messages waiting in every node's queue (not in flight)"),
    _f("cloudhub", "beehive_cloudhub_messages_in_flight", "gauge", "",
       "Messages written and not yet acked"),
    _f("cloudhub", "beehive_cloudhub_messages_sent_total", "counter", "",
       "First writes of messages to nodes"),
    _f("cloudhub", "beehive_cloudhub_messages_acked_total", "counter", "",
       "Messages acked by nodes"),
    _f("cloudhub", "beehive_cloudhub_messages_resent_total", "counter", "",
       "Writes of unacked messages after the first"),
    _f("cloudhub", "beehive_cloudhub_delivery_latency_seconds", "histogram", "",
       "From a message's first write on the node's session to its ack"),
    _f("cloudhub", "beehive_end_to_end_latency_seconds", "histogram", "",
       "From edgecontroller receiving the watch event (or building the message, for a"
       " list or resync) to the node's ack, for objects"),
    _f("cloudhub", "beehive_cloudhub_handshakes_total", "counter", "result reason",
       "Connections by outcome: accepted (reason ok); refused (node_limit, pending_limit,"
       " bad_request, forbidden); failed (incomplete: no upgrade request in time;"
       " queue_timeout: waited in line for a slot too long; certificate, timeout, closed,"
       " protocol: the TLS handshake)"),
    _f("cloudhub", "beehive_cloudhub_handshakes_pending", "gauge", "",
       "Connections accepted whose upgrade request has not come yet"),
    _f("cloudhub", "beehive_cloudhub_upstream_dropped_total", "counter", "",
       "Edge reports dropped because the hand-off to edgecontroller was full"),
    _f("cloudhub", "beehive_objectsync_pending", "gauge", "",
       "Records of what nodes acked with changes not written yet"),
    _f("cloudhub", "beehive_objectsync_lag_seconds", "gauge", "",
       "How long the oldest change not written to the records has waited (0: none waits)"),
    _f("cloudhub", "beehive_objectsync_writes_total", "counter", "", "ObjectSync API calls"),
    _f("cloudhub", "beehive_objectsync_failures_total", "counter", "",
       "ObjectSync API calls that failed (retried)"),
    _f("cloudhub", "beehive_objectsync_conflicts_total", "counter", "",
       "ObjectSync writes refused because the record changed since it was read (409: the"
       " record is read again and the write retried)"),
    # cloudhub with several replicas (the ``replica:`` section).
    _f("cloudhub", "beehive_replica_nodes_owned", "gauge", "",
       "Nodes this replica holds the owner Lease of"),
    _f("cloudhub", "beehive_replica_sessions_rebalanced_total", "counter", "",
       "Sessions this replica closed because it served more than its share of the nodes"
       " (their edges reconnect through the load balancer)"),
    _f("cloudhub", "beehive_replica_claims_total", "counter", "result",
       "Owner Lease claims: written, conflict (lost a race, tried again), failed"),
    _f("cloudhub", "beehive_replica_nodes_taken_over_total", "counter", "",
       "Nodes given up because another replica claimed them"),
    _f("cloudhub", "beehive_replica_unowned_dropped_total", "counter", "",
       "Messages for nodes another replica owns, not queued here"),
    # cloudhub, per node: only the nodes listed in the metrics settings' per_node.
    _f("cloudhub", "beehive_cloudhub_node_connected", "gauge", "node", "1 while connected"),
    _f("cloudhub", "beehive_cloudhub_node_messages_queued", "gauge", "node",
       "Messages waiting for the node"),
    _f("cloudhub", "beehive_cloudhub_node_messages_in_flight", "gauge", "node",
       "Messages written to the node, not yet acked"),
    _f("cloudhub", "beehive_cloudhub_node_messages_sent_total", "counter", "node",
       "First writes to the node"),
    _f("cloudhub", "beehive_cloudhub_node_messages_acked_total", "counter", "node",
       "Acks from the node"),
    _f("cloudhub", "beehive_cloudhub_node_messages_resent_total", "counter", "node",
       "Resends to the node"),
    # edgecontroller.
    _f("edgecontroller", "beehive_edgecontroller_reports_total", "counter", "type result",
       "Edge reports and requests by resource type and result (applied, unchanged,"
       " refused, error)"),
    _f("edgecontroller", "beehive_edgecontroller_watch_synced", "gauge", "resource",
       "1 once the resource's first list was handed on"),
    _f("edgecontroller", "beehive_edgecontroller_watch_phase", "gauge", "resource phase",
       "1 for the watch's current phase (listing, watching, backoff, absent, stopped)"),
    _f("edgecontroller", "beehive_edgecontroller_watch_restarts_total", "counter", "resource",
       "Watches re-established after an error"),
    _f("edgecontroller", "beehive_edgecontroller_watch_relists_total", "counter", "resource",
       "Lists after the first (the watch expired: 410 Gone)"),
    _f("edgecontroller", "beehive_edgecontroller_watch_events_total", "counter", "resource",
       "Events handed on from lists and watches"),
    _f("edgecontroller", "beehive_edgecontroller_downstream_queued", "gauge", "",
       "Object changes waiting for the downstream thread"),
    _f("edgecontroller", "beehive_edgecontroller_upstream_queued", "gauge", "",
       "Edge reports waiting for a worker"),
    # Kubernetes API requests (edgecontroller's, and cloudhub's ObjectSync writer).
    _f("kube", "beehive_kube_requests_total", "counter", "module verb resource code",
       "Kubernetes API requests by verb, resource and HTTP status (error: no response)"),
    _f("kube", "beehive_kube_request_duration_seconds", "histogram", "module verb resource",
       "Kubernetes API request latency, to the response headers"),
    # Certificates and the join token.
    _f("certs", "beehive_certificate_expiry_timestamp_seconds", "gauge", "module certificate",
       "When a certificate expires (ca, server on cloudcore; node on the edge), epoch seconds"),
    _f("certs", "beehive_join_token_expiry_timestamp_seconds", "gauge", "module",
       "When the current join token expires, epoch seconds"),
    _f("certs", "beehive_certserver_certificates_issued_total", "counter", "module",
       "Node certificates signed"),
    _f("certs", "beehive_certserver_requests_refused_total", "counter", "module",
       "Certificate requests refused"),
    # The edge.
    _f("edgehub", "beehive_edgehub_connected", "gauge", "module node",
       "1 while connected to cloudhub"),
    _f("edgehub", "beehive_edgehub_connects_total", "counter", "module node",
       "Connections made to cloudhub"),
    _f("edgehub", "beehive_edgehub_messages_received_total", "counter", "module node",
       "Messages received from the cloud"),
    _f("edgehub", "beehive_edgehub_messages_sent_total", "counter", "module node",
       "Messages sent to the cloud"),
    _f("edgehub", "beehive_edgehub_outbox", "gauge", "module node",
       "Messages waiting for the upstream rate limit"),
)  # fmt: skip

BY_NAME = {family.name: family for family in FAMILIES}


def sample_names() -> set[str]:
    """Every sample name the collector can export (process_* and python_* aside)."""
    return {name for family in FAMILIES for name in family.sample_names()}
