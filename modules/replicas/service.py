"""Replica: this process's place among the cloudcore replicas (the ``replica`` service).

Input: an `ApiClient` and `ReplicaSettings`. It holds two Leases in the settings'
namespace, each renewed by a `keeper.LeaseKeeper` thread:
- its member Lease ``cloudcore-<id>`` (label `MEMBER_LABEL`): the live replicas are
  the unexpired member Leases (`members`);
- the leader Lease (``cloudcore-leader`` by default), which every replica tries to take:
  its holder does the cluster-wide duties (creating the CA and the join token,
  rotating the token).
Output: `is_leader`, `fenced` (why this replica cannot be sure it holds its member
Lease, or None), and listeners told of each change (`add_listener`).

The self-fencing hook: `fenced()` turns non-None as soon as the member Lease's renew
deadline passes without a successful renewal, before any other replica may act on
its expiry (lease_duration > renew_deadline). certserver refuses to sign then, and
cloudhub closes its edge sessions and refuses upgrades until the Lease is held again.
Leadership also needs the member Lease: a fenced replica is never the leader.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from modules.replicas import elector as elector_mod
from modules.replicas import keeper as keeper_mod
from modules.replicas import ownership
from modules.replicas.leases import LeaseAPI
from modules.replicas.owners import OwnerLeases
from modules.replicas.settings import ReplicaSettings

log = logging.getLogger("modules.replicas")

MEMBER_LABEL = "cloudcore.beehive-edge.io/member"  # "true" on every member Lease
LEADER_LABEL = "cloudcore.beehive-edge.io/leader"  # "true" on the leader Lease
# Events for listeners: the member Lease held again / lost; leadership gained / lost.
MEMBER, FENCED, LEADER, NOT_LEADER = "member", "fenced", "leader", "not-leader"

Listener = Callable[[str], None]


def member_lease_name(identity: str) -> str:
    return f"cloudcore-{identity.lower()}"


class Replica:
    """One replica's Leases (see the module docstring); `start` before use, `stop` after."""

    def __init__(
        self, api_client: client.ApiClient, settings: ReplicaSettings, *,
        clock: keeper_mod.Monotonic = time.monotonic, wall: keeper_mod.Wall = keeper_mod.utc_now,
    ) -> None:  # fmt: skip
        s = settings
        self.settings = s  # identity, namespace, durations
        self.identity = s.identity  # holderIdentity of both Leases
        self.clock = clock  # monotonic seconds (deadlines)
        self.wall = wall  # dates (expiry of other replicas' Leases in `members`)
        # A renewal may take up to half the renew deadline (client-go gives it the whole
        # deadline): an API server slow under load must not fence every replica at once.
        timeout = max(s.retry_period, s.renew_deadline / 2)
        self.api = LeaseAPI(api_client, s.namespace, timeout=timeout)  # plain-JSON calls
        self.owners = OwnerLeases(  # claims of nodes (cloudhub's, for the edges it serves)
            LeaseAPI(api_client, s.namespace, timeout=10.0), self.identity, wall=wall
        )
        common: dict[str, Any] = {
            "identity": self.identity,
            "namespace": s.namespace,
            "duration": s.lease_duration,
            "renew_deadline": s.renew_deadline,
        }
        self.member = keeper_mod.LeaseKeeper(
            elector_mod.Elector(
                name=member_lease_name(self.identity), labels={MEMBER_LABEL: "true"}, **common
            ),
            self.api,
            retry_period=s.retry_period,
            clock=clock,
            wall=wall,
            on_change=lambda held: self._tell(MEMBER if held else FENCED),
        )
        self.leader = keeper_mod.LeaseKeeper(
            elector_mod.Elector(name=s.leader_lease, labels={LEADER_LABEL: "true"}, **common),
            self.api,
            retry_period=s.retry_period,
            clock=clock,
            wall=wall,
            on_change=lambda held: self._tell(LEADER if held else NOT_LEADER),
        )
        self._listeners: list[Listener] = []  # told of MEMBER, FENCED, LEADER, NOT_LEADER
        # Times the member Lease was taken: a lapse (renewal overdue, as after a pause)
        # and a renewal make a new term, whose holder may not trust what it did before.
        self.member_term = 0
        self._changed = threading.Condition()  # notified on every event (for `wait_for`)

    def start(self) -> None:
        """Take the member Lease, try the leader Lease once, then keep both in threads."""
        self.member.start("beehive-replica-member")
        self.leader.start("beehive-replica-leader")
        log.info("replica %s: member %s, leader %s", self.identity,
                 self.member.held(), self.is_leader())  # fmt: skip

    def stop(self) -> None:
        """Release the leader Lease, then the member Lease (a clean stop)."""
        self.leader.stop(release=True)
        self.member.stop(release=True)

    def fenced(self) -> str | None:
        """Why this replica must not act for the cluster now, or None when it may."""
        if self.member.held():
            return None
        return f"replica {self.identity} does not hold its member Lease (renewal overdue)"

    def is_leader(self) -> bool:
        """True while both the leader Lease and the member Lease are held."""
        return self.fenced() is None and self.leader.held()

    @property
    def leader_epoch(self) -> int | None:
        """The leader Lease's leaseTransitions when this replica took it (None unless leader)."""
        return self.leader.elector.epoch if self.is_leader() else None

    def leader_identity(self) -> str:
        """The leader Lease's holder as last seen here ("" if none)."""
        return elector_mod.holder_of(self.leader.elector.lease)

    def members(self) -> list[str]:
        """The identities of the live replicas: member Leases whose renewTime plus
        duration is still ahead by this machine's clock.

        Raises:
            kubernetes.client.ApiException: the list failed.
        """
        now = self.wall()
        live = (_live_holder(lease, now) for lease in self.api.list(f"{MEMBER_LABEL}=true"))
        return sorted(holder for holder in live if holder)

    def advertise(self, key: str, value: str) -> None:
        """Carry annotation `key` = `value` on the member Lease from its next renewal on
        (within `retry_period`), for the other replicas (`peer_annotation`)."""
        self.member.elector.annotations[key] = value

    def peer_annotation(self, identity: str, key: str) -> str:
        """Annotation `key` of replica `identity`'s member Lease, "" when it has none or
        the Lease is not live (expired, released, or not there).

        Raises:
            kubernetes.client.ApiException: the read failed.
        """
        lease = self.api.get(member_lease_name(identity))
        if lease is None or _live_holder(lease, self.wall()) != identity:
            return ""
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(key) or "")

    def owner_of(self, node: str) -> str:
        """The replica the node's owner Lease names ("" when none).

        Raises:
            kubernetes.client.ApiException: the read failed.
        """
        lease = self.owners.api.get(ownership.owner_lease_name(node))
        return elector_mod.holder_of(lease)

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(event)` on each change (on a keeper thread: must not block)."""
        self._listeners.append(listener)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds (re-checked on each event), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, self.settings.retry_period))
        return True

    def status(self) -> dict[str, Any]:
        """The admin view: identity, leadership, counts of Lease writes."""
        return {
            "identity": self.identity,
            "fenced": self.fenced(),
            "leader": self.is_leader(),
            "leader_identity": self.leader_identity(),
            "leader_epoch": self.leader_epoch,
            "lease_writes": self.member.writes + self.leader.writes,
            "lease_conflicts": self.member.conflicts + self.leader.conflicts,
            "lease_errors": self.member.errors + self.leader.errors,
        }

    def _tell(self, event: str) -> None:
        log.info("replica %s: %s", self.identity, event)
        if event == MEMBER:
            self.member_term += 1
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one listener's bug must not stop the renewals
                log.exception("replica: listener failed on %s", event)
        with self._changed:
            self._changed.notify_all()


def _live_holder(lease: elector_mod.JsonObj, now: datetime.datetime) -> str:
    """A member Lease's holder while its renewTime plus duration is ahead of `now`,
    else ""."""
    spec = elector_mod.spec_of(lease)
    holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
    if not holder or not renewed:
        return ""
    lasts = datetime.timedelta(seconds=float(spec.get("leaseDurationSeconds") or 0))
    return str(holder) if _parse(str(renewed)) + lasts > now else ""


def _parse(value: str) -> datetime.datetime:
    text = value.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text)
