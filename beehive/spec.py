"""How a module is run: its mailbox and its restart policy (typed, with defaults).

These dataclasses are both the `Hive.add` arguments and the schema of the
``mailbox:`` and ``restart:`` keys of a module in the YAML config.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from beehive.mailbox import WhenFull


class RestartPolicy(StrEnum):
    """When a module is started again (KubeEdge's ModuleRestartPolicy, plus never)."""

    ALWAYS = "always"  # after a failure, and after a pull-style run() returns
    ON_FAILURE = "on-failure"  # after an exception in on_start, on_message or run
    NEVER = "never"  # a failure stops the module for good


@dataclasses.dataclass(frozen=True, slots=True)
class MailboxSpec:
    """A module's mailbox: capacity, what a full mailbox does, how long senders wait."""

    size: int = dataclasses.field(default=1024, metadata={"min": 1})
    when_full: WhenFull = WhenFull.BLOCK
    timeout: float = dataclasses.field(default=30.0, metadata={"min": 0})


@dataclasses.dataclass(frozen=True, slots=True)
class RestartSpec:
    """A module's restart policy; backoff doubles from `backoff` up to `max_backoff`."""

    policy: RestartPolicy = RestartPolicy.ON_FAILURE
    backoff: float = dataclasses.field(default=0.5, metadata={"min": 0})
    max_backoff: float = dataclasses.field(default=30.0, metadata={"min": 0})
    max_restarts: int = dataclasses.field(default=0, metadata={"min": 0})  # 0 = unlimited

    def delay(self, consecutive_failures: int) -> float:
        """Backoff before the next start after `consecutive_failures` failures in a row."""
        exponent = min(max(consecutive_failures - 1, 0), 32)
        return float(min(self.backoff * (2**exponent), self.max_backoff))
