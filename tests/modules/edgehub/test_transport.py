"""The edge's websocket client: its reader's short waits never cut a send short."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from modules.edgehub.transport import ClientConnection
from modules.hub.errors import HubConnectionError
from tests.modules.edgehub.fake_cloud import answer_upgrade

pytestmark = pytest.mark.integration

BIG = b"x" * (16 * 1024 * 1024)  # more than loopback's socket buffers take at once


class SlowReader:
    """A websocket server on a raw socket: it answers the upgrade, then reads nothing
    until `go` is set, then reads one frame (a library server reads ahead on a thread
    of its own, which would hide the stall)."""

    def __init__(self, first: bytes = b"") -> None:
        self.first = first  # written right after the upgrade answer, in the same write
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.go = threading.Event()
        self.frames: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/p/n/events"

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        with sock:
            answer_upgrade(sock, self.first)
            if not self.go.wait(30):
                return
            self.frames.append(_read_frame(sock))

    def close(self) -> None:
        self.go.set()
        self.listener.close()
        self._thread.join(5)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("closed mid-frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock: socket.socket) -> bytes:
    _, second = _read_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exactly(sock, 8))
    mask = _read_exactly(sock, 4)
    return _unmask(_read_exactly(sock, length), mask)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")


@pytest.fixture
def slow_reader() -> Iterator[SlowReader]:
    server = SlowReader()
    yield server
    server.close()


def test_a_send_waits_out_a_slow_reader_while_the_connection_is_read_with_short_waits(
    slow_reader: SlowReader,
) -> None:
    conn = ClientConnection(slow_reader.url, {}, timeout=5)
    sent, failed, idle_reads = threading.Event(), [], 0

    def send() -> None:
        try:
            conn.send(BIG)
        except Exception as exc:
            failed.append(exc)
        sent.set()

    sender = threading.Thread(target=send)
    sender.start()
    # The reader polls with 10 ms waits, as edgehub's does, while the send is stuck.
    while not sent.is_set() and idle_reads < 50:
        if conn.recv(0.01) is None:
            idle_reads += 1
    assert not failed, failed  # a timed-out send would have left half a frame behind
    assert idle_reads == 50 and not sent.is_set()  # the peer reads nothing: still sending
    slow_reader.go.set()
    sender.join(30)
    assert not failed, failed
    slow_reader.close()  # joins the server's thread: it has read the frame
    assert slow_reader.frames == [BIG]  # whole and in one piece
    conn.close()


def _text_frame(payload: bytes) -> bytes:
    return bytes([0x81, len(payload)]) + payload  # unmasked, as a server writes


def test_frames_that_arrive_in_one_read_are_each_returned() -> None:
    """Pins websocket-client reading no further than the frame it parses: the reader
    waits on the socket, so a frame buffered inside the library would wait unseen."""
    server = SlowReader(first=_text_frame(b"one") + _text_frame(b"two"))
    try:
        conn = ClientConnection(server.url, {}, timeout=5)
        assert [conn.recv(2), conn.recv(2)] == [b"one", b"two"]
        conn.close()
    finally:
        server.close()


def test_the_handshake_timeout_bounds_the_whole_upgrade_not_each_read() -> None:
    """A cloud answering the upgrade a byte at a time cannot hold the edge past its
    handshake timeout (each read used to get the whole timeout afresh)."""
    answer = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")  # fmt: skip
    listener = socket.create_server(("127.0.0.1", 0))
    given_up = threading.Event()
    written = [0]

    def trickle() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.recv(4096)
            for byte in answer:
                if given_up.wait(0.05):  # a slow peer: a byte every 50 ms
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return
                written[0] += 1

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}/p/n/events"
    try:
        with pytest.raises(HubConnectionError, match="timed out"):
            ClientConnection(url, {}, timeout=0.5)
        given_up.set()
        assert written[0] < len(answer)  # it gave up before the peer had answered
    finally:
        given_up.set()
        server.join(5)
        listener.close()
