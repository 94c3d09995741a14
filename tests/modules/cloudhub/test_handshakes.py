"""Handshake limits: a connection that sends nothing or half an upgrade is cut after the
handshake timeout, at most `max_pending_handshakes` are pending at once, established
sessions are not held up meanwhile; and the edge reads at most a bounded upgrade response."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from modules.edgehub.transport import ClientConnection
from modules.hub import errors, handshake
from tests.fakes import eventually
from tests.modules.cloudhub.harness import RawEdge, delivers_a_pod, start_cloud

pytestmark = pytest.mark.integration


def silent(port: int, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    if data:
        sock.sendall(data)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""  # refused or timed out: the server closed it
    except ConnectionResetError:
        return True


def test_a_silent_or_half_sent_handshake_is_cut_after_the_timeout(make_hive, probe, world):
    _cloud, port = start_cloud(make_hive, probe, world, handshake_timeout=0.3)
    quiet, partial = silent(port), silent(port, b"GET /p/edge-x/events HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        assert closed_by_server(quiet) and closed_by_server(partial)
        assert time.monotonic() - started < 2.5
    finally:
        quiet.close()
        partial.close()


def test_pending_handshakes_are_capped_without_holding_up_sessions(make_hive, probe, world):
    cloud, port = start_cloud(
        make_hive, probe, world, handshake_timeout=2, max_pending_handshakes=3
    )
    held = [silent(port) for _ in range(3)]
    try:
        time.sleep(0.1)  # the three are accepted and pending
        extra = silent(port)
        assert closed_by_server(extra)  # closed at accept: no slot
        extra.close()
        assert cloud.commands["cloudhub.address"]() is not None
    finally:
        for sock in held:
            sock.close()


def test_a_burst_of_connections_larger_than_one_accept_round_all_open(make_hive, probe, world):
    cloud, port = start_cloud(make_hive, probe, world)  # 16 accepted per loop iteration
    nodes = [f"burst-{i}" for i in range(60)]
    with ThreadPoolExecutor(len(nodes)) as pool:  # all at once, as after a network outage
        edges = list(pool.map(lambda node: RawEdge(port, node), nodes))
    try:
        assert eventually(lambda: {n["node"] for n in cloud.commands["cloudhub.nodes"]()
                                   if n["connected"]} >= set(nodes))  # fmt: skip
    finally:
        for edge in edges:
            edge.ws.close()


def test_established_sessions_keep_syncing_while_handshakes_hang(make_hive, probe, world):
    cloud, port = start_cloud(
        make_hive, probe, world, handshake_timeout=2, max_pending_handshakes=2
    )
    edge = RawEdge(port, "edge-ok")
    held = [silent(port) for _ in range(5)]
    try:
        delivers_a_pod(cloud, world, edge, rv=3)
    finally:
        for sock in held:
            sock.close()
        edge.ws.close()


def test_the_edge_reads_a_bounded_upgrade_response():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            head = b"HTTP/1.1 500 Oops\r\nContent-Length: 100000000\r\n\r\n"
            with contextlib.suppress(OSError):  # the edge stops reading and closes
                conn.sendall(head + b"x" * (4 * 1024 * 1024))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(errors.HubConnectionError) as refused:
            ClientConnection(
                f"ws://127.0.0.1:{port}{handshake.connection_path('edge-1')}",
                handshake.connection_headers("edge-1"),
                timeout=2,
                max_response=64 * 1024,
            )
        assert "upgrade response is larger than" in str(refused.value)
    finally:
        thread.join(3)
        listener.close()
