"""What cloudhub's core hands its transport: `Outputs`, gathered until taken, and `Close`."""

from __future__ import annotations

import dataclasses

from beehive.message import Message
from modules.cloudhub import objects
from modules.cloudhub.owned import Claim


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """Close connection `conn` with this code and reason."""

    conn: int
    code: int
    reason: str


@dataclasses.dataclass(slots=True)
class Outputs:
    writes: dict[int, list[bytes]] = dataclasses.field(default_factory=dict)  # conn -> frames
    closes: list[Close] = dataclasses.field(default_factory=list)
    upstream: list[Message] = dataclasses.field(default_factory=list)  # for edgecontroller
    syncs: list[objects.SyncOp] = dataclasses.field(default_factory=list)  # for ObjectSync
    claims: list[Claim] = dataclasses.field(default_factory=list)  # for the owner Leases

    def take(self) -> Outputs:
        """Everything gathered so far; this one is left empty to gather more."""
        taken = Outputs(self.writes, self.closes, self.upstream, self.syncs, self.claims)
        self.writes, self.closes, self.upstream, self.syncs, self.claims = {}, [], [], [], []
        return taken
