"""cloudhub's `Claimer` against the API under test: what its owner watch tells the
rebalancer (`owned`), deleted nodes included."""

from __future__ import annotations

from typing import Any

import pytest

from modules.cloudhub.claims import Claimer
from modules.replicas.leases import LeaseAPI
from modules.replicas.owners import OwnerLeases
from tests.fakes import eventually

pytestmark = pytest.mark.integration


def test_owned_counts_follow_claims_and_forget_deleted_nodes(kube, kube_namespace):
    def owners(identity: str) -> OwnerLeases:
        return OwnerLeases(LeaseAPI(kube.new_client(), kube_namespace, timeout=10), identity)

    r1, r2 = owners("r1"), owners("r2")
    applied: list[Any] = []
    claimer = Claimer(r1, apply=applied.append, read_nodes=None, workers=1)
    claimer.start()
    try:
        for node in ("edge-1", "edge-2", "edge-3"):
            r1.claim(node)
        r2.claim("edge-4")
        assert eventually(lambda: claimer.owned() == {"r1": 3, "r2": 1})
        assert r1.collect({"edge-1", "edge-4"}) == 2  # edge-2 and edge-3 were deleted
        assert eventually(lambda: claimer.owned() == {"r1": 1, "r2": 1})
    finally:
        claimer.stop()
