"""HTTP framing of the embedded server: request parsing without I/O, then raw TLS sockets."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from modules.kubeapi import EmbeddedKubeAPI, errors
from modules.kubeapi.http import take_request
from tests.modules.kubeapi.helpers import address, tls_socket

GET = b"GET /api/v1/namespaces/default HTTP/1.1\r\nHost: x\r\n\r\n"
WATCH = b"GET /api/v1/namespaces?watch=true%s HTTP/1.1\r\n\r\n"


def test_an_incomplete_request_is_left_in_the_buffer() -> None:
    inbox = bytearray(b"POST /api/v1/namespaces HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}")
    assert take_request(inbox) is None
    inbox += b"{}"
    request = take_request(inbox)
    assert request is not None
    assert (request.method, request.body, request.keep_alive) == ("POST", b"{}{}", True)
    assert inbox == b""


def test_pipelined_requests_come_out_in_order() -> None:
    inbox = bytearray(GET + GET.replace(b"default", b"kube-system") + b"GET /ver")
    first, second = take_request(inbox), take_request(inbox)
    assert first is not None and second is not None
    assert (first.path, second.path) == (
        "/api/v1/namespaces/default",
        "/api/v1/namespaces/kube-system",
    )
    assert inbox == b"GET /ver"


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        pytest.param(b"HTTP/1.1\r\n", True, id="http 1.1 keeps the connection"),
        pytest.param(b"HTTP/1.1\r\nConnection: close\r\n", False, id="connection close ends it"),
        pytest.param(b"HTTP/1.0\r\n", False, id="http 1.0 ends it"),
        pytest.param(b"HTTP/1.0\r\nConnection: keep-alive\r\n", True, id="http 1.0 keep-alive"),
    ],
)
def test_keep_alive_follows_version_and_connection_header(head: bytes, keep_alive: bool) -> None:
    request = take_request(bytearray(b"GET /version?watch=1&x= " + head + b"\r\n"))
    assert request is not None
    assert (request.keep_alive, request.query, request.watch) == (
        keep_alive,
        {"watch": "1", "x": ""},
        True,
    )


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(b"hello\r\n\r\n", 400, id="not a request line"),
        pytest.param(b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400, id="header without colon"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, id="bad length"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 4000000\r\n\r\n", 413, id="too large"),
    ],
)
def test_bad_requests_are_refused(raw: bytes, code: int) -> None:
    with pytest.raises(errors.ApiError) as info:
        take_request(bytearray(raw))
    assert info.value.code == code


class Conn:
    """A TLS connection to a fresh server; `request` adds the server's token to a head."""

    def __init__(self, server: EmbeddedKubeAPI, sock: ssl.SSLSocket | None = None) -> None:
        self.sock = sock or tls_socket(server)
        self._auth = b"Authorization: Bearer %s\r\n" % server.token.encode()

    def request(self, head: bytes) -> bytes:
        line, _, rest = head.partition(b"\r\n")
        return line + b"\r\n" + self._auth + rest

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn() -> Iterator[Conn]:
    with EmbeddedKubeAPI() as server:
        opened = Conn(server)
        try:
            yield opened
        finally:
            opened.close()


def read_response(sock: Conn | socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """One Content-Length response from `sock`, leaving what follows in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(65536)
    buffer[:] = rest[length:]
    return int(head.split()[1]), rest[:length]


def test_pipelined_requests_on_a_socket_are_answered_in_order(conn: Conn) -> None:
    conn.sendall(conn.request(GET) + conn.request(GET.replace(b"default", b"missing")))
    buffer = bytearray()
    code, body = read_response(conn, buffer)
    assert (code, json.loads(body)["metadata"]["name"]) == (200, "default")
    assert read_response(conn, buffer)[0] == 404


def test_a_request_sent_in_pieces_is_answered(conn: Conn) -> None:
    whole = conn.request(GET)
    for piece in (whole[:5], whole[5:30], whole[30:]):
        conn.sendall(piece)
    assert read_response(conn, bytearray())[0] == 200


def test_a_malformed_request_is_answered_400_and_closed(conn: Conn) -> None:
    conn.sendall(b"nonsense\r\n\r\n")
    assert read_response(conn, bytearray())[0] == 400
    assert conn.recv(1) == b""


def test_the_connection_serves_again_after_a_watch_ends(conn: Conn) -> None:
    conn.sendall(conn.request(WATCH % b"&timeoutSeconds=0"))
    received = b""
    while not received.endswith(b"\r\n0\r\n\r\n"):
        received += conn.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 OK") and b"kube-system" in received
    conn.sendall(conn.request(GET))
    assert read_response(conn, bytearray())[0] == 200


def test_a_watch_ends_when_its_client_goes_away(conn: Conn) -> None:
    conn.sendall(conn.request(WATCH % b""))
    assert conn.recv(65536).startswith(b"HTTP/1.1 200 OK")
    conn.close()
    for thread in [t for t in threading.enumerate() if t.name == "kubeapi-watch"]:
        thread.join(5)
        assert not thread.is_alive()


def test_plain_http_on_the_tls_port_gets_no_answer() -> None:
    with EmbeddedKubeAPI() as server:
        host, port = address(server)
        with socket.create_connection((host, port), timeout=5) as plain:
            plain.sendall(GET)
            assert not read_all(plain).startswith(b"HTTP/")


def test_a_client_silent_in_the_handshake_holds_up_no_one() -> None:
    with EmbeddedKubeAPI() as server:
        host, port = address(server)
        with socket.create_connection((host, port), timeout=5), tls_socket(server) as sock:
            conn = Conn(server, sock)
            conn.sendall(conn.request(GET))
            assert read_response(conn, bytearray())[0] == 200


def read_all(sock: socket.socket) -> bytes:
    """What the peer sends until it closes (a reset ends it too)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received
