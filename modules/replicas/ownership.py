"""ownership: the per-node owner Lease, as plain JSON, without I/O.

Whoever holds a node's websocket owns the node. The record is a Lease named
`owner_lease_name(node)` in the replicas' namespace:
- ``spec.holderIdentity``: the owning replica ("" when released);
- ``spec.leaseTransitions``: the ownership epoch, one more at every claim;
- label `OWNER_LABEL` = a label-safe form of the holder (``kubectl get leases -l``),
  `OWNERSHIP_LABEL` = "true" on every owner Lease (what the replicas watch);
- annotation `NODE_ANNOTATION`: the node's name (a long name is hashed in the Lease's).

It is not renewed: whether its holder lives is its member Lease's business, so an
owner Lease is written only when the node changes hands (timebertt's sharding
model). A claim is a compare-and-swap on the Lease's resourceVersion: the newest
claim wins, and the epoch tells every replica which claim is the newest.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import re
from typing import Any, Literal

from modules.replicas.elector import API_VERSION, holder_of, micro_time, spec_of

JsonObj = dict[str, Any]

OWNERSHIP_LABEL = "cloudcore.beehive-edge.io/ownership"  # "true" on every owner Lease
OWNER_LABEL = "cloudcore.beehive-edge.io/owner"  # the holder, label-safe
NODE_ANNOTATION = "cloudcore.beehive-edge.io/node"  # the node's name, whole
_PREFIX = "edge-owner-"
_NAME_MAX = 253  # a Lease's name is a DNS subdomain
_LABEL_MAX = 63
_NOT_LABEL_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def owner_lease_name(node: str) -> str:
    """The owner Lease's name for `node` (lower case; hashed when too long)."""
    name = f"{_PREFIX}{node.lower()}"
    if len(name) <= _NAME_MAX:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:16]
    return f"{name[: _NAME_MAX - 17]}-{digest}"


def label_value(identity: str) -> str:
    """`identity` as a label value (63 characters, alphanumeric at both ends)."""
    value = _NOT_LABEL_SAFE.sub("-", identity)
    if len(value) > _LABEL_MAX:
        value = f"{value[:46]}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    return value.strip("-._") or "none"


def epoch_of(lease: JsonObj | None) -> int:
    """The ownership epoch the Lease records (0 for none)."""
    return int(spec_of(lease).get("leaseTransitions") or 0)


def node_of(lease: JsonObj) -> str:
    """The node an owner Lease is about ("" when it is not one of ours)."""
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(NODE_ANNOTATION) or "")


@dataclasses.dataclass(frozen=True, slots=True)
class Owner:
    """Who owns a node, as one owner Lease says."""

    node: str
    holder: str  # "" when released
    epoch: int

    @classmethod
    def of(cls, lease: JsonObj) -> Owner | None:
        node = node_of(lease)
        return cls(node, holder_of(lease), epoch_of(lease)) if node else None


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimWrite:
    """The write that claims a node: create the Lease, or replace the one read (its
    body carries the resourceVersion read: the API server refuses it with 409 if anyone
    wrote in between)."""

    verb: Literal["create", "replace"]
    body: JsonObj
    epoch: int  # the epoch this claim records


def claim(
    lease: JsonObj | None, *, node: str, namespace: str, identity: str, now: datetime.datetime
) -> ClaimWrite:
    """The write by which `identity` claims `node`, given its owner Lease as just read."""
    epoch = epoch_of(lease) + 1
    if lease is None:
        body: JsonObj = {
            "apiVersion": API_VERSION,
            "kind": "Lease",
            "metadata": {"name": owner_lease_name(node), "namespace": namespace},
        }
    else:
        body = copy.deepcopy(lease)
    meta = body.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), OWNERSHIP_LABEL: "true",
                      OWNER_LABEL: label_value(identity)}  # fmt: skip
    meta["annotations"] = {**(meta.get("annotations") or {}), NODE_ANNOTATION: node}
    stamp = micro_time(now)
    body.setdefault("spec", {}).update(
        holderIdentity=identity, leaseTransitions=epoch, acquireTime=stamp, renewTime=stamp
    )
    return ClaimWrite("create" if lease is None else "replace", body, epoch)


def release(lease: JsonObj, *, identity: str, epoch: int) -> JsonObj | None:
    """The body that gives the node up (holder ""), or None if the Lease is no longer
    `identity`'s claim at `epoch` (someone claimed it since: nothing to release)."""
    if holder_of(lease) != identity or epoch_of(lease) != epoch:
        return None
    body = copy.deepcopy(lease)
    body.setdefault("metadata", {}).setdefault("labels", {})[OWNER_LABEL] = "none"
    body.setdefault("spec", {})["holderIdentity"] = ""
    return body
