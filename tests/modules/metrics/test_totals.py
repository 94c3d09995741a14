"""cloudhub's running totals (read by each scrape instead of walking every node) always
equal the sum of the per-node rows of `beehive debug nodes`, whatever happens."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beehive import codec
from beehive.message import JsonValue, Message
from modules import contract
from modules.cloudhub.core import CloudHubCore, HubLimits
from modules.cloudhub.queue import RetryPolicy
from modules.hub.protocol import ack_frame
from tests.fakes import FakeClock

NODES = ("n0", "n1", "n2")


def pod(node: str, name: str, rv: int, operation: str = "update") -> Message:
    content: JsonValue = {"apiVersion": "v1", "kind": "Pod", "spec": {"nodeName": node},
               "metadata": {"name": name, "namespace": "default", "uid": f"uid-{node}-{name}",
                            "resourceVersion": str(rv)}}  # fmt: skip
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation=operation,
        resource=contract.build_resource(node, "default", contract.POD, name), content=content,
        resource_version=str(rv),
    )  # fmt: skip


def node_deleted(node: str) -> Message:
    return Message.new(
        source=contract.EDGECONTROLLER, group=contract.GROUP_RESOURCE, operation="delete",
        resource=contract.build_resource(node, "", contract.NODE, node),
        content={"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "uid": "x"}},
    )  # fmt: skip


class Driver:
    """A core with up to three nodes; remembers what each connection was written."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        limits = HubLimits(window=2, max_objects=4, retry=RetryPolicy(1.0, 2.0, 4.0))
        self.core = CloudHubCore(limits=limits, clock=self.clock)
        self.conn: dict[str, int] = {}  # node -> its current connection
        self.next_conn = 1
        self.written: dict[str, list[Message]] = {n: [] for n in NODES}  # unacked, in order
        self.rv = 1
        self.removed = False

    def step(self, op: str, node: str, name: str) -> None:
        core = self.core
        if op == "connect":
            self.conn[node] = self.next_conn
            core.open(self.next_conn, node)
            self.next_conn += 1
        elif op == "lose" and node in self.conn:
            core.lost(self.conn.pop(node))
            self.written[node] = []
        elif op in ("update", "delete"):
            self.rv += 1
            core.downstream(pod(node, name, self.rv, op))
        elif op == "ack" and node in self.conn and self.written[node]:
            core.receive(self.conn[node], ack_frame(self.written[node].pop(0)))
        elif op == "time":
            self.clock.advance(1.5)
            core.tick()
        elif op == "remove":
            core.downstream(node_deleted(node))
            self.conn.pop(node, None)
            self.written[node] = []
            self.removed = True
        core.pump()
        self._take()

    def _take(self) -> None:
        out = self.core.take_outputs()
        for node, conn in self.conn.items():
            self.written[node] += [codec.decode(f) for f in out.writes.get(conn, [])]


def sums(core: CloudHubCore) -> dict[str, Any]:
    rows: list[dict[str, Any]] = core.nodes()
    return {key: sum(int(r[key] or 0) for r in rows)
            for key in ("queued", "in_flight", "sent", "acked", "resends")}  # fmt: skip


OPS = st.tuples(
    st.sampled_from(["connect", "lose", "update", "delete", "ack", "ack", "time", "remove"]),
    st.sampled_from(NODES),
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, max_size=60))
def test_running_totals_equal_the_sum_over_the_nodes(ops: list[tuple[str, str, str]]) -> None:
    driver = Driver()
    for op in ops:
        driver.step(*op)
        totals, rows = driver.core.metrics(), sums(driver.core)
        assert (totals["queued"], totals["in_flight"]) == (rows["queued"], rows["in_flight"])
        if not driver.removed:  # a deleted node's counters leave the rows, not the totals
            assert (totals["sent"], totals["acked"], totals["resent"]) == (
                rows["sent"], rows["acked"], rows["resends"],
            )  # fmt: skip
        assert totals["nodes_connected"] == len(driver.conn)


def test_an_ack_observes_delivery_and_end_to_end_latency() -> None:
    driver = Driver()
    driver.step("connect", "n0", "")
    driver.step("update", "n0", "a")
    driver.clock.advance(0.3)
    driver.step("ack", "n0", "")
    totals = driver.core.metrics()
    assert totals["acked"] == 1
    delivery = totals["delivery_seconds"]
    assert delivery["sum"] == pytest.approx(0.3)
    [bucket] = [i for i, n in enumerate(delivery["counts"]) if n]
    assert delivery["bounds"][bucket - 1] < 0.3 <= delivery["bounds"][bucket]
    assert sum(totals["end_to_end_seconds"]["counts"]) == 1  # by the wall clock: value not pinned


def test_per_node_rows_are_only_for_the_nodes_asked_for() -> None:
    driver = Driver()
    for node in NODES:
        driver.step("connect", node, "")
        driver.step("update", node, "a")
    rows = driver.core.metrics(["n1", "never-seen"])["per_node"]
    assert set(rows) == {"n1", "never-seen"}
    assert rows["n1"]["connected"] and rows["n1"]["in_flight"] == 1
    assert rows["never-seen"] == {"connected": False, "queued": 0, "in_flight": 0, "sent": 0,
                                  "acked": 0, "resent": 0}  # fmt: skip
    assert driver.core.metrics()["per_node"] == {}
