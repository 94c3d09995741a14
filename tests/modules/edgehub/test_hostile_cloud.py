"""Our edge against a broken or hostile cloud: nothing it sends ends the edge's
connection loop or its store; what cannot be stored gets an error reply (so a real cloud
stops resending it), a message over the size limit ends only that connection."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from beehive import Hive
from tests.fakes import eventually
from tests.modules.cloudhub.harness import start_edge, stored

pytestmark = pytest.mark.integration


class FakeCloud:
    """A websocket server that hands each edge connection to the test."""

    def __init__(self) -> None:
        self.connections: queue.Queue[ServerConnection] = queue.Queue()
        self._done = threading.Event()
        self._server: Server = serve(self._handle, "127.0.0.1", 0, max_size=None)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def _handle(self, conn: ServerConnection) -> None:
        self.connections.put(conn)
        self._done.wait(30)

    def next_connection(self) -> ServerConnection:
        return self.connections.get(timeout=10)

    def close(self) -> None:
        self._done.set()
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud()
    yield fake
    fake.close()


@pytest.fixture
def edge(make_hive: Any, cloud: FakeCloud, tmp_path: Path) -> Hive:
    return start_edge(make_hive, cloud.port, "edge-h", tmp_path / "h.db")


def pod_insert(msg_id: str, rv: str, content: Any = "default") -> str:
    if content == "default":
        content = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": msg_id, "namespace": "default", "uid": f"u-{msg_id}",
                                "resourceVersion": rv}}  # fmt: skip
    return json.dumps({
        "header": {"msg_id": msg_id, "timestamp": 1, "resourceversion": rv},
        "route": {"source": "edgecontroller", "group": "resource", "operation": "insert",
                  "resource": f"default/pod/{msg_id}"},
        "content": content,
    })  # fmt: skip


def answer_to(conn: ServerConnection, msg_id: str) -> dict[str, Any]:
    """The edge's frame answering `msg_id` (its keepalives and reports skipped)."""
    while True:
        frame = json.loads(conn.recv(10))
        if frame["header"].get("parent_msg_id") == msg_id:
            return dict(frame)


def test_what_cannot_be_stored_gets_an_error_reply_and_the_edge_goes_on(
    cloud: FakeCloud, edge: Hive
) -> None:
    conn = cloud.next_connection()
    hostile = {
        "rv-20": pod_insert("rv-20", "9" * 20),
        "rv-5000": pod_insert("rv-5000", "7" * 5000),
        "null": pod_insert("null", "3", None),
        "text": pod_insert("text", "3", "just text"),
        "surrogate": pod_insert("surrogate", "3").replace("pod/surrogate", "pod/s\\ud800"),
    }
    for msg_id, frame in hostile.items():
        conn.send(frame)
        answer = answer_to(conn, msg_id)
        assert answer["route"]["operation"] == "error", (msg_id, answer)
    conn.send(pod_insert("good", "4"))
    assert answer_to(conn, "good")["content"] == "OK"
    assert stored(edge) == {"good": 4}


def test_an_error_nested_too_deep_to_show_does_not_end_the_connection(
    cloud: FakeCloud, edge: Hive
) -> None:
    conn = cloud.next_connection()
    nested = '{"e":' * 1000 + '"boom"' + "}" * 1000  # 2 KB, 1,000 deep
    conn.send(
        '{"header": {"msg_id": "bad", "parent_msg_id": "never-sent", "timestamp": 1},'
        ' "route": {"source": "edgecontroller", "group": "resource", "operation": "error"},'
        f' "content": {nested}}}'
    )
    conn.send(pod_insert("after", "5"))
    assert answer_to(conn, "after")["content"] == "OK"
    assert edge.commands["edgehub.state"]()["loop"] == "running"


def test_a_message_over_the_size_limit_ends_that_connection_only(
    cloud: FakeCloud, edge: Hive
) -> None:
    conn = cloud.next_connection()
    # Only the header of a text frame that declares 2**62 bytes: the edge refuses it on
    # the header (1009, its limit of 8 MiB named), without waiting for a payload.
    conn.socket.sendall(bytes([0x81, 127]) + (2**62).to_bytes(8, "big"))
    assert closed_by_edge(conn) == (1009, "the cloud sent a message over 8388608 bytes")
    state = edge.commands["edgehub.state"]
    assert eventually(lambda: "over 8388608 bytes" in state()["last_error"])
    again = cloud.next_connection()  # the edge reconnects
    again.send(pod_insert("later", "6"))
    assert answer_to(again, "later")["content"] == "OK"


def test_a_masked_frame_ends_that_connection_with_a_protocol_error(
    cloud: FakeCloud, edge: Hive
) -> None:
    conn = cloud.next_connection()
    key = b"\x01\x02\x03\x04"
    payload = pod_insert("masked", "7").encode()
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    conn.socket.sendall(bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + key + masked)
    code, reason = closed_by_edge(conn)
    assert (code, "masked frame" in reason) == (1002, True)
    state = edge.commands["edgehub.state"]
    assert eventually(lambda: "masked frame" in state()["last_error"])
    again = cloud.next_connection()  # the edge reconnects
    again.send(pod_insert("later", "8"))
    assert answer_to(again, "later")["content"] == "OK"
    assert "masked" not in stored(edge)


def closed_by_edge(conn: ServerConnection) -> tuple[int, str]:
    """The code and reason of the edge's close frame (its other frames skipped)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            conn.recv(10)
    assert closed.value.rcvd is not None, "the edge hung up with no close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason
