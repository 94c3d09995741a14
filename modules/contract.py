"""The messages the cloud and edge modules exchange: names, resources, operations.

One place for what edgecontroller, cloudhub, edgehub and metamanager agree on, so
each can be tested against a recording stand-in for the others.

Cloud side (one hive: ``edgecontroller`` and ``cloudhub``)
----------------------------------------------------------
Resources between cloud modules are ``node/<node>/<namespace>/<type>/<name>``
(`build_resource`, `parse_resource`; namespace ``null`` for cluster-scoped objects).

1. Downstream, edgecontroller -> cloudhub (``hive.send_many(CLOUDHUB, msgs)``): source
   ``edgecontroller``, group ``resource``, operation ``insert``/``update``/``delete``,
   ``resourceversion`` = the object's, content = the full object with ``apiVersion``
   and ``kind`` (a delete carries the last known object). One message per node
   that needs the object.
2. Upstream, cloudhub -> edgecontroller (``hive.send(EDGECONTROLLER, msg)``): what an
   edge sent (not acks, keepalives or reserved operations), resource prefixed with
   ``node/<node>/``; operations such as ``insert``/``update`` on ``nodestatus``,
   ``podstatus``, ``node``, ``lease`` and ``query`` on ``configmap``/``secret``.
3. Replies, edgecontroller -> cloudhub: ``request.reply(content)`` (or
   ``request.error_reply(text)``), resource unchanged (still ``node/<node>/...``);
   cloudhub delivers them to that node only.
4. Session notices, cloudhub -> edgecontroller: operation ``connected`` /
   ``disconnected`` / ``keepalive`` / ``refused`` / ``behind`` on resource
   ``node/<node>`` (source ``cloudhub``, group ``resource``), content
   ``{"event_type": <operation>, "client_id": <node>}``; ``keepalive`` for every
   keepalive an edge sends, so edgecontroller can renew the node's Lease while it is
   connected. The others add ``"reason"`` (one of the constants below) and
   ``"message"`` (the details, for people), from which edgecontroller writes the
   node's Events (`modules.edgecontroller.nodeevents`):

   - ``disconnected``: why the session ended: ``closed`` (the edge closed it; the
     message has its close code), ``lost`` (the connection broke without a close),
     ``keepalive`` (no keepalive within keepalive_timeout), ``write_buffer`` (the edge
     did not read what it was sent), ``replaced`` (a newer connection of the node),
     ``deleted`` (the Node was deleted), ``stopping`` (cloudhub is stopping);
   - ``refused``: a connection for the node was refused: ``node_limit``,
     ``forbidden`` (403: a certificate of another node) or ``bad_request`` (400);
     only where the request names a valid node name (header or certificate), and at
     most 20 a second over all nodes (burst 100: a refused fleet retries at once);
   - ``behind``: the node falls behind: ``queue`` (more than cloudhub's
     behind_threshold objects wait for it; sent once until its queue is down to half
     of that) or ``resync`` (more than max_objects waited: changes were refused and a
     resync follows, item 5).
5. Resync, on every (re)connect of a node: cloudhub sends operation ``resync`` on
   ``node/<node>``; edgecontroller answers from its caches by sending ``update`` (as
   in 1.) for every object the node should have now, then operation ``resynced`` on
   ``node/<node>`` with content ``{"uids": [...]}``: every object UID the node should
   have. cloudhub drops what the node already acked (by resourceVersion) and sends
   a ``delete`` for each object it had delivered whose UID is not in the list.
   edgecontroller sends ``resynced`` in order with its other messages for that node
   (one thread sends both): an object it sends after the snapshot arrives after
   ``resynced``, and is never taken for one the node should no longer have.

Edge side (one hive per edge node: ``edgehub`` and ``metamanager``)
--------------------------------------------------------------------
edgehub moves frames between the websocket and the hive: messages from the cloud
go to ``metamanager`` (replies to queries go to their waiting ``send_sync`` caller);
metamanager stores each one, then sends the ack (``msg.reply(OK)``) to ``edgehub``,
which writes it to the cloud. Messages for the cloud are sent to ``edgehub``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

_make: Any = tuple.__new__

# Hive module names (and their groups).
EDGECONTROLLER = "edgecontroller"
CLOUDHUB = "cloudhub"
EDGEHUB = "edgehub"
METAMANAGER = "metamanager"
ROUTER = "router"

# Wire groups: Kubernetes object messages and every reply from the cloud; what edged
# asks of the cloud (KubeEdge's metaclient); the edge's function calls.
GROUP_RESOURCE = "resource"
GROUP_META = "meta"
GROUP_FUNC = "func"

# Resource types (token 3 of a cloud resource).
POD = "pod"
CONFIGMAP = "configmap"
SECRET = "secret"
NODE = "node"
NODESTATUS = "nodestatus"
PODSTATUS = "podstatus"
NODEPATCH = "nodepatch"  # an edge's strategic-merge patch of its node's status
PODPATCH = "podpatch"  # an edge's strategic-merge patch of a pod's status
LEASE = "lease"
EVENT = "event"
SERVICEACCOUNTTOKEN = "serviceaccounttoken"
PERSISTENTVOLUME = "persistentvolume"
PERSISTENTVOLUMECLAIM = "persistentvolumeclaim"
VOLUMEATTACHMENT = "volumeattachment"
CSR = "certificatesigningrequest"
RULESTATUS = "rulestatus"
CA_CERT = "ca.crt"  # the API server's CA: resource ``k8s/ca.crt`` (type ca.crt)
RULE = "rule"
RULEENDPOINT = "ruleendpoint"

NULL_NAMESPACE = "null"  # namespace token of cluster-scoped objects

# Operations between cloud modules beyond beehive.Operation's.
RESYNC = "resync"
RESYNCED = "resynced"
REFUSED = "refused"  # session notice: a connection for the node was refused
BEHIND = "behind"  # session notice: the node falls behind

# The ``reason`` of a ``disconnected`` notice: why the session ended (item 4).
ENDED_CLOSED = "closed"
ENDED_LOST = "lost"
ENDED_KEEPALIVE = "keepalive"
ENDED_WRITE_BUFFER = "write_buffer"
ENDED_REPLACED = "replaced"
ENDED_DELETED = "deleted"
ENDED_STOPPING = "stopping"
ENDED_TAKEN_OVER = "taken_over"  # another replica claimed the node
ENDED_CLAIM_FAILED = "claim_failed"  # the node's owner Lease could not be written
# The ``reason`` of a ``refused`` notice, and of a ``behind`` notice.
REFUSED_NODE_LIMIT = "node_limit"
REFUSED_FORBIDDEN = "forbidden"
REFUSED_BAD_REQUEST = "bad_request"
BEHIND_QUEUE = "queue"
BEHIND_RESYNC = "resync"

# Labels and names Kubernetes uses for edge nodes.
EDGE_NODE_LABEL = "node-role.kubernetes.io/edge"
LEASE_NAMESPACE = "kube-node-lease"


def metadata(content: Any) -> dict[str, Any]:
    """``metadata`` of the object in a message's content ({} when there is none)."""
    if isinstance(content, dict):
        found = content.get("metadata")
        if isinstance(found, dict):
            return found
    return {}


# Metadata that changes without the object changing for the edge: KubeEdge's pod
# update filter (downstream.go) ignores resourceVersion and generation; managedFields
# changes with every status write on a real server.
VOLATILE_METADATA = frozenset({"resourceVersion", "generation", "managedFields"})


def lasting_metadata(content: Any) -> dict[str, Any]:
    """The object's metadata without `VOLATILE_METADATA`."""
    return {k: v for k, v in metadata(content).items() if k not in VOLATILE_METADATA}


def only_status_changed(old: Any, new: Any) -> bool:
    """True when two versions of an object differ in nothing but status and volatile
    metadata: nothing an edge uses besides status has changed."""
    return old.get("spec") == new.get("spec") and lasting_metadata(old) == lasting_metadata(new)


def object_uid(message: Any) -> str:
    """``metadata.uid`` of the object a message carries, or "" if there is none."""
    uid = metadata(message.content).get("uid")
    return uid if isinstance(uid, str) else ""


def message_resource_version(message: Any) -> str:
    """The header's resourceVersion, else the content's ``metadata.resourceVersion``."""
    if message.header.resource_version:
        return str(message.header.resource_version)
    value = metadata(message.content).get("resourceVersion")
    return value if isinstance(value, str) else ""


MAX_RESOURCE_VERSION = 2**63 - 1  # what sqlite's INTEGER (and etcd's int64 revision) holds


def resource_version(text: str) -> int | None:
    """A resourceVersion as the unsigned integer it is (etcd's revision), or None for
    anything else: not all ASCII digits, or beyond 64 bits (a hostile cloud's 5,000
    digits would otherwise cost an int conversion error, 20 an sqlite overflow)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_RESOURCE_VERSION else None


class Resource(NamedTuple):
    """A parsed cloud resource ``node/<node>/<namespace>/<type>/<name>``."""

    node: str
    namespace: str = ""
    type: str = ""
    name: str = ""

    def __str__(self) -> str:
        return build_resource(self.node, self.namespace, self.type, self.name)


def build_resource(node: str, namespace: str = "", rtype: str = "", name: str = "") -> str:
    """``node/<node>[/<namespace>/<type>[/<name>]]``; empty namespace becomes ``null``."""
    if not rtype:
        return f"node/{node}"
    resource = f"node/{node}/{namespace or NULL_NAMESPACE}/{rtype}"
    return f"{resource}/{name}" if name else resource


def parse_resource(resource: str) -> Resource:
    """Split a cloud resource.

    Raises:
        ValueError: it does not start with ``node/<node>``, naming what was found.
    """
    tokens = resource.split("/", 4)
    if len(tokens) < 2 or tokens[0] != "node" or not tokens[1]:
        raise ValueError(f"expected node/<node>/<namespace>/<type>/<name>, found {resource!r}")
    if len(tokens) < 5:
        tokens += [""] * (5 - len(tokens))
    # tuple.__new__: a named tuple's own __new__ is a Python call, and this runs once
    # per message in edgecontroller and in cloudhub.
    return cast(Resource, _make(Resource, (tokens[1], tokens[2], tokens[3], tokens[4])))
