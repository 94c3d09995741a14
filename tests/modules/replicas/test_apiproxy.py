"""bench/replicas_apiproxy.py, the replica benchmark's way to cut a replica off the API
server: each mode of a cut, and the restore, against an echo server."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROXY = Path(__file__).resolve().parents[3] / "bench" / "replicas_apiproxy.py"


class Proxy:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port
        self.sockets: list[socket.socket] = []  # closed after the test

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return reply

    def connect(self) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
        self.sockets.append(conn)
        return conn


def _echo(server: socket.socket) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return

        def serve(conn: socket.socket = conn) -> None:
            with conn, contextlib.suppress(OSError):
                while data := conn.recv(100):
                    conn.sendall(data)

        threading.Thread(target=serve, daemon=True).start()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with socket.socket() as upstream, socket.socket() as spare:
        upstream.bind(("127.0.0.1", 0))
        upstream.listen()
        threading.Thread(target=_echo, args=(upstream,), daemon=True).start()
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
        spare.close()
        proc = subprocess.Popen(
            [sys.executable, str(PROXY), "--upstream", f"127.0.0.1:{upstream.getsockname()[1]}",
             "--route", f"r1={port}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        p = Proxy(proc, port)
        try:
            p.ask("stats")  # answers once listening
            yield p
        finally:
            for conn in p.sockets:
                conn.close()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            proc.wait(10)
            proc.stdout.close()


def _echoes(conn: socket.socket, data: bytes = b"x") -> bool:
    try:
        conn.sendall(data)
        return conn.recv(100) == data
    except OSError:
        return False


@pytest.mark.integration
def test_blackhole_resets_the_open_connections_and_never_answers_new_ones(proxy: Proxy) -> None:
    old = proxy.connect()
    assert _echoes(old)
    cut = proxy.ask("cut r1 blackhole")
    assert cut["closed"] == 1 and cut["at"] > 0
    with pytest.raises(ConnectionResetError):
        old.sendall(b"y")
        old.recv(100)
    new = proxy.connect()  # accepted...
    new.sendall(b"z")
    with pytest.raises(TimeoutError):  # ...and never answered
        new.recv(100)
    assert proxy.ask("restore r1")["held_closed"] == 1
    assert _echoes(proxy.connect())


@pytest.mark.integration
def test_refuse_resets_the_open_connections_and_refuses_new_ones(proxy: Proxy) -> None:
    old = proxy.connect()
    assert _echoes(old)
    assert proxy.ask("cut r1 refuse")["closed"] == 1
    assert not _echoes(old)
    with pytest.raises(ConnectionRefusedError):
        proxy.connect()
    proxy.ask("restore r1")
    assert _echoes(proxy.connect())


@pytest.mark.integration
def test_stall_holds_the_bytes_until_the_restore(proxy: Proxy) -> None:
    old = proxy.connect()
    assert _echoes(old)
    assert proxy.ask("cut r1 stall")["closed"] == 0
    old.sendall(b"late")
    with pytest.raises(TimeoutError):
        old.recv(100)
    proxy.ask("restore r1")
    assert old.recv(100) == b"late"  # nothing was lost
    assert proxy.ask("stats")["r1"]["cuts"] == 1


@pytest.mark.integration
def test_an_unknown_route_or_mode_is_an_error(proxy: Proxy) -> None:
    assert "error" in proxy.ask("cut r9 blackhole")
    assert "error" in proxy.ask("cut r1 sideways")
    assert "error" in proxy.ask("jump")
