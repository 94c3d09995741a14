"""The ``replica:`` configuration section: who this replica is and how its Leases behave.

Durations default to client-go's leader election (LeaseDuration 15 s, RenewDeadline
10 s, RetryPeriod 2 s), which must satisfy duration > renew_deadline > 1.2 x retry.
"""

from __future__ import annotations

import dataclasses
import os
import socket

from beehive import errors


def default_id() -> str:
    """The pod's name (``POD_NAME``, from the downward API), else the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaSettings:
    """One replica's identity and its Leases (see the module docstring)."""

    id: str = ""  # holderIdentity of this replica; "" = POD_NAME, else the host name
    # The address the other replicas reach this one at (its router, to which they forward
    # REST calls for the nodes it serves); "" = POD_IP (downward API), else none.
    advertise_address: str = ""
    namespace: str = "kubeedge"  # where the member Leases and the leader Lease live
    leader_lease: str = "cloudcore-leader"  # the Lease of cluster-wide duties (CA, token)
    lease_duration: float = dataclasses.field(default=15.0, metadata={"min": 1})  # seconds
    renew_deadline: float = dataclasses.field(default=10.0, metadata={"min": 0.5})  # seconds
    retry_period: float = dataclasses.field(default=2.0, metadata={"min": 0.1})  # seconds
    # Seconds a replica that is not the leader waits for the leader's CA Secret at start.
    ca_wait: float = dataclasses.field(default=25.0, metadata={"min": 0.1})
    # Seconds between the leader's cleanups of what is kept for deleted nodes (their
    # owner Leases and records).
    gc_interval: float = dataclasses.field(default=600.0, metadata={"min": 1})
    # Rebalancing (`modules.cloudhub.balance`): a replica serving more than its share of
    # the nodes by over `rebalance_slack` hands sessions over, `rebalance_rate` a second
    # at most (0: never), once the live replicas stayed the same `rebalance_settle` s.
    rebalance_slack: float = dataclasses.field(default=0.1, metadata={"min": 0})
    rebalance_rate: float = dataclasses.field(default=10.0, metadata={"min": 0})
    rebalance_settle: float = dataclasses.field(default=10.0, metadata={"min": 0})

    @property
    def identity(self) -> str:
        return self.id or default_id()

    @property
    def advertised_host(self) -> str:
        """Where the other replicas reach this one ("" when it cannot be reached)."""
        return self.advertise_address or os.environ.get("POD_IP", "")

    def check(self, path: str = "") -> None:
        """Raise unless duration > renew_deadline > 1.2 x retry_period (client-go's rule).

        Raises:
            ConfigError: naming the durations that break the rule.
        """
        if not self.lease_duration > self.renew_deadline > 1.2 * self.retry_period:
            raise errors.ConfigError(
                path, "replica", "needs lease_duration > renew_deadline > 1.2 x retry_period, "
                f"found {self.lease_duration}, {self.renew_deadline}, {self.retry_period}",
            )  # fmt: skip
