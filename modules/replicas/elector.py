"""elector: the sans-I/O logic of holding one Lease, as client-go's leaderelection
(tools/leaderelection/leaderelection.go tryAcquireOrRenew), with a clean release and a
fencing deadline.

Input: the Lease as last read (plain JSON, or None when it does not exist) through
`observe`, the answers to the writes it asked for through `written`, and the time, given
by the caller: monotonic seconds for every deadline, a wall-clock date for the Lease's
``renewTime`` and ``acquireTime``. Output: the `Write` to send (a create, or a replace
carrying the ``resourceVersion`` that was read: a compare-and-swap the API server
refuses with 409 if anyone wrote in between) and the state: `held` (renewed within
``renew_deadline``), `epoch` (the Lease's ``leaseTransitions`` when this process
acquired it).

Rules:
- Another holder's Lease is taken over only when its record (holder, renewTime,
  resourceVersion) has not changed for ``leaseDurationSeconds`` as observed here (a
  monotonic clock: skew between machines does not matter, as in client-go), or when
  its holder is empty (released).
- Every acquisition by a process adds one to ``leaseTransitions``, even of a Lease
  that still names this identity (a restarted replica with the same pod name): a new
  incarnation never shares its predecessor's epoch.
- The holder stops counting itself as holder ``renew_deadline`` after it sent its last
  successful write, before anyone else may take over (``leaseDurationSeconds`` after
  the last change they saw): that gap is what self-fencing relies on.
- `release` drops the holding at once, then asks for a write with an empty holder.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from typing import Any, Literal

JsonObj = dict[str, Any]
API_VERSION = "coordination.k8s.io/v1"


def micro_time(at: datetime.datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 with six fractional digits, UTC."""
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def spec_of(lease: JsonObj | None) -> JsonObj:
    return dict((lease or {}).get("spec") or {})


def holder_of(lease: JsonObj | None) -> str:
    return str(spec_of(lease).get("holderIdentity") or "")


@dataclasses.dataclass(frozen=True, slots=True)
class Write:
    """A request for the caller: create the Lease, or replace it (the body carries the
    resourceVersion that was read)."""

    verb: Literal["create", "replace"]
    body: JsonObj


class Elector:
    """One Lease, held or wanted by one identity (see the module docstring)."""

    def __init__(
        self, *, identity: str, name: str, namespace: str, duration: float,
        renew_deadline: float, labels: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.identity = identity  # holderIdentity written when holding
        self.name = name  # the Lease's name
        self.namespace = namespace  # the Lease's namespace
        self.duration = duration  # leaseDurationSeconds written; others wait this long
        self.renew_deadline = renew_deadline  # seconds after a renewal until we stop trusting it
        self.labels = dict(labels or {})  # labels the Lease carries (membership selection)
        # Annotations the Lease carries from the next write on (what a replica tells the
        # others, e.g. where its router listens); set by its owner at any time.
        self.annotations: dict[str, str] = {}
        self.epoch: int | None = None  # leaseTransitions of our acquisition; None unless held
        self.lease: JsonObj | None = None  # the Lease as last read or written
        self._renewed_at: float | None = None  # monotonic time of our last write; None = not held
        self._record: tuple[str, str, str] | None = None  # (holder, renewTime, resourceVersion)
        self._record_since = 0.0  # monotonic time the record last changed here

    def held(self, now: float) -> bool:
        """True while the last successful write is less than `renew_deadline` old."""
        return self._renewed_at is not None and now - self._renewed_at < self.renew_deadline

    def expired(self, now: float) -> bool:
        """True when this process held the Lease and its renew deadline has passed
        (the holding is dropped: `held` stays False until a new acquisition)."""
        if self._renewed_at is not None and not self.held(now):
            self._renewed_at = None
            self.epoch = None
            return True
        return False

    def observe(self, lease: JsonObj | None, now: float) -> None:
        """The Lease as just read (None: it does not exist)."""
        self._see(lease, now)
        if self._renewed_at is not None and holder_of(lease) != self.identity:
            self._renewed_at = None  # someone else wrote it: we lost it
            self.epoch = None

    def next_write(self, now: float, wall: datetime.datetime) -> Write | None:
        """What to write to acquire or renew, or None while another holds it."""
        if self.lease is None:
            return Write("create", self._body(None, wall, transitions=0, acquire=True))
        spec = spec_of(self.lease)
        transitions = int(spec.get("leaseTransitions") or 0)
        if self._renewed_at is not None:  # ours: renew, same epoch
            return Write("replace", self._body(self.lease, wall, transitions=transitions))
        holder = holder_of(self.lease)
        if holder and holder != self.identity and now - self._record_since < self.duration:
            return None  # another's, and it changed within a lease duration
        return Write("replace", self._body(self.lease, wall, transitions=transitions + 1,
                                           acquire=True))  # fmt: skip

    def written(self, lease: JsonObj, now: float) -> None:
        """The API server's answer to our create or replace, sent at `now` (the holding
        counts from then: the server stored it later)."""
        self._see(lease, now)
        if holder_of(lease) == self.identity:
            if self._renewed_at is None:
                self.epoch = int(spec_of(lease).get("leaseTransitions") or 0)
            self._renewed_at = now

    def release(self, wall: datetime.datetime) -> Write | None:
        """Stop holding now; the write that empties the holder, if we held the Lease."""
        if self._renewed_at is None or self.lease is None:
            return None
        self._renewed_at = None
        self.epoch = None
        body = copy.deepcopy(self.lease)
        spec = body.setdefault("spec", {})
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(wall))
        return Write("replace", body)

    def _see(self, lease: JsonObj | None, now: float) -> None:
        self.lease = lease
        spec = spec_of(lease)
        record = None if lease is None else (
            holder_of(lease), str(spec.get("renewTime") or ""),
            str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )  # fmt: skip
        if record != self._record:
            self._record, self._record_since = record, now

    def _body(
        self, lease: JsonObj | None, wall: datetime.datetime, *, transitions: int,
        acquire: bool = False,
    ) -> JsonObj:  # fmt: skip
        body: JsonObj = copy.deepcopy(lease) if lease is not None else {}
        if lease is None:
            body.update(apiVersion=API_VERSION, kind="Lease")
            body["metadata"] = {"name": self.name, "namespace": self.namespace}
        meta = body.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels}
        if self.annotations:
            meta["annotations"] = {**(meta.get("annotations") or {}), **self.annotations}
        spec = body.setdefault("spec", {})
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.duration)),
            renewTime=micro_time(wall),
            leaseTransitions=transitions,
        )
        if acquire:
            spec["acquireTime"] = micro_time(wall)
        return body
