"""The shape of the records of what edge nodes acked: ours (shards) and KubeEdge's.

Input: records as the API server returns them (plain JSON). Output: `Held` entries
keyed by node and object UID for `modules.cloudhub.ledger`, and the bodies the
writer (`modules.cloudhub.objectsync`) sends.

Ours: cluster-scoped ``ObjectSyncShard`` objects (reliablesyncs.beehive-edge.io/v1alpha1),
named ``shard-<shard>-<part>``, or ``shard-<shard>-<part>-<writer>`` with several
replicas (`writer_token` of the replica: each replica writes new entries only into its
own parts, so that replicas do not conflict on one record). A node's entries live in
shard crc32(node) % shards, in the writer's first part with room; an entry may also be
found in another writer's part (written before the node moved), and the newest version
over a shard's parts is what the node acked. Each entry is one short string under the
object's UID::

    spec:
      nodes:
        edge-1:
          3f1c...-uid: "4711|default|Pod|||web-0"   # rv|namespace|kind|apiVersion|type|name

The resourceVersion is empty while the object was queued for the node but not acked
yet; ``apiVersion`` is empty for ``v1`` and ``type`` when it is the kind in lower case;
the name comes last, so it is the one field that may hold any character.

KubeEdge's (read at start to migrate from it, then deleted): one ObjectSync (in the
object's namespace) or ClusterObjectSync per node and object, named ``<node>.<uid>``
(cloud/pkg/cloudhub/dispatcher/message_dispatcher.go, notes 4.9).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import zlib
from typing import Any, NamedTuple

from modules import contract
from modules.cloudhub import objects

log = logging.getLogger("modules.cloudhub.objectsync")

GROUP = "reliablesyncs.beehive-edge.io"
VERSION = "v1alpha1"
KIND = "ObjectSyncShard"
PLURAL = "objectsyncshards"
SHARD_LABEL = f"{GROUP}/shard"  # on every record: the shard it belongs to
PATH = f"/apis/{GROUP}/{VERSION}/{PLURAL}"

LEGACY_GROUP = "reliablesyncs.kubeedge.io"
LEGACY_VERSION = "v1alpha1"
LEGACY_PLURALS = ("objectsyncs", "clusterobjectsyncs")

_FIELDS = 6  # rv, namespace, kind, apiVersion, type, name


class Held(NamedTuple):
    """One object a node holds or is being sent, and the newest version it acked."""

    ref: objects.ObjectRef
    rv: int | None  # None: queued, not acked yet


def newest(have: Held | None, want: Held) -> Held:
    """The entry with the higher acked version (acked versions only go up)."""
    if have is None:
        return want
    return want if _order(want.rv) > _order(have.rv) else have


def _order(rv: int | None) -> int:
    return -1 if rv is None else rv


def shard_of(node_id: str, shards: int) -> int:
    """Which shard holds a node's new entries (stable across processes)."""
    return zlib.crc32(node_id.encode()) % shards


_NAME = re.compile(r"shard-([0-9]+)-([0-9]+)(?:-([0-9a-f]{8}))?")


def writer_token(identity: str) -> str:
    """The name of a replica's own parts (8 hex digits of its identity's SHA-256)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


def part_name(shard: int, index: int, writer: str = "") -> str:
    return f"shard-{shard}-{index}-{writer}" if writer else f"shard-{shard}-{index}"


def parse_name(name: str) -> tuple[int, int, str] | None:
    """(shard, part, writer) of a record name (writer "": one replica's, no suffix), or
    None if it is not ``shard-<n>-<n>`` or ``shard-<n>-<n>-<8 hex digits>``."""
    found = _NAME.fullmatch(name)
    if found is None:
        return None
    return int(found[1]), int(found[2]), found[3] or ""


def encode(held: Held) -> str:
    ref = held.ref
    api_version = "" if ref.api_version == "v1" else ref.api_version
    rtype = "" if ref.type == objects.type_of_kind(ref.kind) else ref.type
    rv = "" if held.rv is None else str(held.rv)
    return f"{rv}|{ref.namespace}|{ref.kind}|{api_version}|{rtype}|{ref.name}"


def entry_size(uid: str, held: Held) -> int:
    """Bytes the entry takes in the record's JSON (quotes, colon and comma included)."""
    return len(uid) + len(encode(held)) + 6


def decode(uid: str, text: object) -> Held | None:
    """An entry, or None if it is not one of ours."""
    if not isinstance(text, str) or not uid:
        return None
    fields = text.split("|", _FIELDS - 1)
    if len(fields) != _FIELDS:
        return None
    rv_text, namespace, kind, api_version, rtype, name = fields
    rv = contract.resource_version(rv_text) if rv_text else None
    if (rv_text and rv is None) or not (namespace and kind and name):
        return None
    ref = objects.ObjectRef(
        uid=uid,
        namespace=namespace,
        type=rtype or objects.type_of_kind(kind),
        name=name,
        api_version=api_version or "v1",
        kind=kind,
    )
    return Held(ref, rv)


Nodes = dict[str, dict[str, Held]]  # node -> uid -> entry


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One of our records as read: where it sits, its version and its entries."""

    name: str
    shard: int
    index: int
    resource_version: str
    nodes: Nodes
    broken: bool  # not our shape: nothing in it is read, and it is never written
    writer: str = ""  # whose part: a replica's `writer_token`, "" for one replica's


def parse(item: Any) -> Record | None:
    """One of our records, or None if its name is not ours. Entries that are not ours
    are skipped with a log naming them; a record whose shape is wrong is `broken`."""
    metadata = item.get("metadata") if isinstance(item, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    where = parse_name(name) if isinstance(name, str) else None
    if where is None or not isinstance(metadata, dict) or not isinstance(name, str):
        log.warning("ignored %s %r: not named shard-<n>-<n>[-<writer>]", KIND, name)
        return None
    spec = item.get("spec")
    listed = spec.get("nodes") if isinstance(spec, dict) else None
    rv = str(metadata.get("resourceVersion") or "")
    if not isinstance(listed, dict):
        log.warning("%s %s: no spec.nodes map: its entries are not read, and it is not"
                    " written", KIND, name)  # fmt: skip
        return Record(name, where[0], where[1], rv, {}, broken=True, writer=where[2])
    nodes: Nodes = {}
    skipped = 0
    for node_id, entries in listed.items():
        if not isinstance(entries, dict):
            skipped += 1
            continue
        for uid, text in entries.items():
            held = decode(uid, text)
            if held is None:
                skipped += 1
            else:
                nodes.setdefault(node_id, {})[uid] = held
    if skipped:
        log.warning("%s %s: skipped %d malformed entr%s", KIND, name, skipped,
                    "y" if skipped == 1 else "ies")  # fmt: skip
    return Record(name, where[0], where[1], rv, nodes, broken=False, writer=where[2])


def shard_labels(name: str) -> dict[str, str]:
    """The labels of a record: its shard, so that one node's records are one list away
    (`SHARD_LABEL`; a replica taking a node over reads them fresh)."""
    where = parse_name(name)
    return {SHARD_LABEL: str(where[0])} if where is not None else {}


def body(name: str, nodes: Nodes) -> dict[str, Any]:
    """A whole record, to create."""
    encoded = {n: {uid: encode(held) for uid, held in uids.items()} for n, uids in nodes.items()}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "labels": shard_labels(name)},
        "spec": {"nodes": encoded},
    }


# KubeEdge's records.


@dataclasses.dataclass(frozen=True, slots=True)
class Legacy:
    """A KubeEdge (Cluster)ObjectSync as read: what it says, and where to delete it."""

    restored: objects.Restored
    path: str


def legacy_path(plural: str, namespace: str, name: str) -> str:
    base = f"/apis/{LEGACY_GROUP}/{LEGACY_VERSION}"
    if plural == "objectsyncs":
        return f"{base}/namespaces/{namespace}/{plural}/{name}"
    return f"{base}/{plural}/{name}"


def parse_legacy(plural: str, item: Any) -> Legacy | None:
    """A KubeEdge record, or None (logged) if its name or spec is not KubeEdge's."""
    metadata = item.get("metadata") if isinstance(item, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    spec = item.get("spec") if isinstance(item, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    record_name = str(metadata.get("name", ""))
    node_id, dot, uid = record_name.rpartition(".")
    kind, name = spec.get("objectKind"), spec.get("objectName")
    if not (dot and node_id and uid and isinstance(kind, str) and kind
            and isinstance(name, str) and name):  # fmt: skip
        log.warning("ignored %s %r: not <node>.<uid> with a spec", plural, record_name)
        return None
    namespace = str(metadata.get("namespace") or "")
    ref = objects.ObjectRef(
        uid=uid,
        namespace=namespace or contract.NULL_NAMESPACE,
        type=objects.type_of_kind(kind),
        name=name,
        api_version=str(spec.get("objectAPIVersion") or "v1"),
        kind=kind,
    )
    status = item.get("status")
    status = status if isinstance(status, dict) else {}
    rv = contract.resource_version(str(status.get("objectResourceVersion", "")))
    restored = objects.Restored(node_id, ref, rv or None)  # KubeEdge's "0": not acked
    return Legacy(restored, legacy_path(plural, namespace, record_name))
