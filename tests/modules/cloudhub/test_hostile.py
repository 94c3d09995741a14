"""Hostile edges against a live cloudhub: random and mutated frames (hypothesis, bounded),
and a flood far above the rate limit; a well-behaved edge keeps syncing meanwhile."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import eventually
from tests.modules.cloudhub.harness import RawEdge, delivers_a_pod, node_row, pod, start_cloud

pytestmark = pytest.mark.integration

VALID = json.dumps({"header": {"msg_id": "m1", "timestamp": 1},
                    "route": {"source": "edged", "group": "resource", "operation": "update",
                              "resource": "default/podstatus/p"},
                    "content": {"Name": "p", "Status": {}}})  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID.encode())
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


frames = (
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | json_values.map(lambda v: json.dumps(v).encode())
    | mutated()
    | st.fixed_dictionaries(
        {"header": json_values, "route": json_values, "content": json_values}
    ).map(lambda v: json.dumps(v).encode())
)


class Fuzzer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.edge = RawEdge(port, "edge-fuzz")

    def send(self, frame: bytes) -> None:
        try:
            self.edge.ws.send(frame, websocket.ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError):
            self.edge.ws.close()
            self.edge = RawEdge(self.port, "edge-fuzz")  # closed on a bad frame: come back


def test_random_and_mutated_frames_never_hurt_the_server(make_hive, probe, world):
    # The good edge sends no keepalive while the fuzz runs, which on a busy machine
    # took longer than the default keepalive_timeout (30 s): the session must outlive it.
    cloud, port = start_cloud(make_hive, probe, world, keepalive_timeout=600.0)
    fuzzer = Fuzzer(port)
    good = RawEdge(port, "edge-good")
    tracemalloc.start()
    try:

        @settings(max_examples=80, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(frame=frames)
        def run(frame: bytes) -> None:
            fuzzer.send(frame)

        run()
        warm = tracemalloc.get_traced_memory()[0]
        run()
        grown = tracemalloc.get_traced_memory()[0] - warm
    finally:
        tracemalloc.stop()
    try:
        delivers_a_pod(cloud, world, good, rv=5)
    finally:
        good.ws.close()
        fuzzer.edge.ws.close()
    print(f"fuzz: memory grew {grown / 1024:.0f} KiB over the second run")
    assert grown < 4 * 1024 * 1024
    assert (
        node_row(cloud, "edge-fuzz")["decode_failed"] + node_row(cloud, "edge-fuzz")["rejected"] > 0
    )


def deliver(cloud, world, edges: list[RawEdge], count: int, tag: str) -> list[float]:
    """Send `count` pods to each edge and return each delivery's latency in seconds."""
    latencies: list[float] = []
    for i in range(count):
        sent = {}
        for edge in edges:
            sent[edge.node] = time.monotonic()
            cloud.send(
                "cloudhub", world.put(edge.node, pod(f"{tag}-{i}", f"{edge.node}-{tag}-{i}"))
            )
        for edge in edges:
            frame = edge.recv()
            latencies.append(time.monotonic() - sent[edge.node])
            edge.ack(frame)
    return latencies


def test_a_flooding_edge_is_throttled_and_the_others_are_still_served(make_hive, probe, world):
    """The others' latencies are printed (``pytest -s``), not asserted: timings belong
    in bench/cloudhub_bench.py."""
    cloud, port = start_cloud(make_hive, probe, world, message_qps=20, message_burst=20)
    others = [RawEdge(port, f"edge-{i}") for i in range(3)]
    flooder = RawEdge(port, "edge-flood")
    normal = deliver(cloud, world, others, 20, "before")
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            try:
                flooder.send("update", "default/podstatus/p", {"Name": "p", "Status": {}})
            except (websocket.WebSocketException, OSError):
                return

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        assert eventually(lambda: node_row(cloud, "edge-flood").get("rate_limited", 0) > 0)
        flooded = deliver(cloud, world, others, 20, "during")
    finally:
        stop.set()
        thread.join(2)
        flooder.ws.close()
    med = sorted(normal)[len(normal) // 2], sorted(flooded)[len(flooded) // 2]
    print(f"flood: median delivery {med[0] * 1000:.1f} ms before, {med[1] * 1000:.1f} ms during;"
          f" max {max(normal) * 1000:.1f} / {max(flooded) * 1000:.1f} ms")  # fmt: skip
    row = node_row(cloud, "edge-flood")
    print(f"flood: flooder's frames read {row['received'] + row['rate_limited']},"
          f" passed {row['received']}, reads paused {row['throttled']} times")  # fmt: skip
    assert row["throttled"] > 0 and row["rate_limited"] > 0
    assert row["received"] <= 20 + 20 * 10  # burst plus the rate over the run, generously
    try:
        names = [edge.node for edge in others]
        assert eventually(lambda: all(node_row(cloud, n)["acked"] == 40 for n in names))
        late = RawEdge(port, "edge-late")
        others.append(late)  # closed below
        delivers_a_pod(cloud, world, late, rv=99)  # and goes on serving
    finally:
        for edge in others:
            edge.ws.close()
