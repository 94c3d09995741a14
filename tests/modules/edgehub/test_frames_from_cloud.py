"""The edge's reader against a cloud that writes frames by hand, as an attacker would.

The edge must read as strictly as RFC 6455 and edgecore (gorilla/websocket) read: a
frame over the size limit is refused on its header, before its payload is read (1009);
a frame against the protocol fails the connection with 1002, text that is not UTF-8
with 1007 (RFC 6455 7.4.1). Each case checks the close frame the cloud gets and the
reason the edge's `HubConnectionError` gives.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from modules.edgehub import frames
from modules.edgehub.transport import ClientConnection
from modules.hub.errors import HubConnectionError
from tests.modules.edgehub.fake_cloud import answer_upgrade

pytestmark = pytest.mark.integration

LIMIT = 1_000_003  # the configured max_frame_size: not a default, so texts must say it
_CLOSE, _PING, _PONG = 0x8, 0x9, 0xA


def frame(first: int, payload: bytes = b"", *, mask: bool = False) -> bytes:
    """One frame: `first` is its first byte (FIN, reserved bits, opcode)."""
    size, second = len(payload), 0x80 if mask else 0
    if size < 126:
        head = bytes([first, second | size])
    elif size < 65536:
        head = bytes([first, second | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([first, second | 127]) + size.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = b"\x37\xfa\x21\x3d"
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def declaring(first: int, size: int) -> bytes:
    """Only the header of a frame that says its payload is `size` bytes."""
    return bytes([first, 127]) + size.to_bytes(8, "big")


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


class RawCloud:
    """A cloud on a raw socket: it answers the upgrade, then the test writes raw bytes
    (`write`) while a thread records the edge's frames until its close frame or EOF."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.upgraded = threading.Event()
        self.ended = threading.Event()  # the edge closed (a close frame) or hung up
        self.frames: list[tuple[int, bytes]] = []  # (opcode, unmasked payload)
        self.sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/p/n/events"

    def write(self, data: bytes) -> None:
        assert self.upgraded.wait(5)
        assert self.sock is not None
        self.sock.sendall(data)

    def received(self, opcode: int) -> list[bytes]:
        """The payloads of the edge's frames of `opcode`, once the edge has ended."""
        assert self.ended.wait(5), "the edge neither closed nor hung up"
        return [payload for op, payload in self.frames if op == opcode]

    def close_frame(self) -> tuple[int, str]:
        """The code and reason of the edge's close frame."""
        closes = self.received(_CLOSE)
        assert closes, f"no close frame from the edge, only {self.frames}"
        return int.from_bytes(closes[0][:2], "big"), closes[0][2:].decode()

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        with sock:
            answer_upgrade(sock)
            self.sock = sock
            self.upgraded.set()
            try:
                while True:
                    opcode, payload = _read_frame(sock)
                    self.frames.append((opcode, payload))
                    if opcode == _CLOSE:
                        break
            except OSError:
                pass  # the edge hung up
            self.ended.set()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()  # a test that fails midway leaves no thread reading
        self.listener.close()
        self._thread.join(5)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the edge hung up")
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exactly(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(_read_exactly(sock, 2), "big")
    elif size == 127:
        size = int.from_bytes(_read_exactly(sock, 8), "big")
    key = _read_exactly(sock, 4)  # a client always masks
    payload = _read_exactly(sock, size)
    return first & 0x0F, bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


@pytest.fixture
def cloud() -> Iterator[RawCloud]:
    fake = RawCloud()
    yield fake
    fake.close()


@pytest.fixture
def conn(cloud: RawCloud) -> Iterator[ClientConnection]:
    # io_timeout is short: a reader that waits for a payload it should have refused
    # fails with a timeout instead of the expected error, and soon.
    edge = ClientConnection(cloud.url, {}, timeout=5, io_timeout=2, max_message=LIMIT)
    yield edge
    edge.close()


def fail_with(conn: ClientConnection, match: str) -> str:
    """The reason `conn.recv` fails with, after checking it against `match`."""
    with pytest.raises(HubConnectionError, match=match) as failed:
        conn.recv(5)
    conn.close()  # as edgehub does when recv fails
    return failed.value.reason


# 1. Too large: refused on the header, before the payload is read.


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(declaring(0x81, 2**62), id="a text frame declaring 2**62 bytes"),
        pytest.param(declaring(0x82, 100 * 1024 * 1024), id="a binary frame declaring 100 MiB"),
        pytest.param(declaring(0x81, LIMIT + 1), id="a text frame one byte over the limit"),
        pytest.param(
            frame(0x01, b"a" * (LIMIT // 2)) + declaring(0x80, LIMIT // 2 + 2),
            id="a fragmented message whose second fragment takes it over the limit",
        ),
        pytest.param(
            frame(0x01, b"a" * (LIMIT // 2)) + frame(0x89, b"ping") + declaring(0x80, LIMIT),
            id="a fragmented message over the limit, a ping between its fragments",
        ),
    ],
)
def test_a_message_declared_over_the_limit_is_refused_before_its_payload_is_read(
    cloud: RawCloud, conn: ClientConnection, wire: bytes
) -> None:
    # Only the header is sent: a reader that waited for the payload would time out.
    cloud.write(wire)
    reason = fail_with(conn, f"the cloud sent a message over {LIMIT} bytes")
    assert "1009" in reason
    assert cloud.close_frame() == (1009, f"the cloud sent a message over {LIMIT} bytes")


def test_a_message_at_the_limit_is_read_whole(cloud: RawCloud, conn: ClientConnection) -> None:
    cloud.write(frame(0x81, b"a" * LIMIT))
    assert conn.recv(5) == b"a" * LIMIT


def test_a_fragmented_message_at_the_limit_is_joined_and_pings_between_are_answered(
    cloud: RawCloud, conn: ClientConnection
) -> None:
    half = LIMIT // 2
    cloud.write(frame(0x01, b"a" * half) + frame(0x89, b"are you there")
                + frame(0x00, b"b" * (LIMIT - half - 2)) + frame(0x80, b"\xc3\xa9"))  # fmt: skip
    # The last fragments split no character; "é" is two bytes in the final one.
    assert conn.recv(5) == b"a" * half + b"b" * (LIMIT - half - 2) + "é".encode()
    conn.close()
    assert cloud.received(_PONG) == [b"are you there"]


def test_a_character_split_between_fragments_is_valid_text(
    cloud: RawCloud, conn: ClientConnection
) -> None:
    euro = "€".encode()  # three bytes
    cloud.write(frame(0x01, euro[:1]) + frame(0x00, euro[1:2]) + frame(0x80, euro[2:]))
    assert conn.recv(5) == euro


# 2. and 3. Against the protocol: 1002; not UTF-8: 1007.


@pytest.mark.parametrize(
    ("wire", "code", "why"),
    [
        pytest.param(frame(0x81, b"hello", mask=True), 1002, "masked frame",
                     id="a masked frame (a server never masks)"),
        pytest.param(frame(0xC1, b"hello"), 1002, "reserved bits",
                     id="a reserved bit set with no extension"),
        pytest.param(frame(0x91, b"hello"), 1002, "reserved bits", id="the third reserved bit"),
        pytest.param(frame(0x83, b"hello"), 1002, "unknown opcode 0x3",
                     id="an unknown data opcode"),
        pytest.param(frame(0x8B), 1002, "unknown opcode 0xb", id="an unknown control opcode"),
        pytest.param(frame(0x09, b"ping"), 1002, "fragmented control frame",
                     id="a ping without FIN"),
        pytest.param(frame(0x08, close_payload(1000)), 1002, "fragmented control frame",
                     id="a close without FIN"),
        pytest.param(frame(0x89, b"p" * 126), 1002, "control frame over 125 bytes",
                     id="a ping of 126 bytes"),
        pytest.param(frame(0x8A, b"p" * 126), 1002, "control frame over 125 bytes",
                     id="a pong of 126 bytes"),
        pytest.param(frame(0x80, b"tail"), 1002, "continuation frame with no message begun",
                     id="a continuation frame with no start"),
        pytest.param(frame(0x01, b"he") + frame(0x81, b"llo"), 1002,
                     "new message before the final fragment",
                     id="a new text frame inside a fragmented message"),
        pytest.param(frame(0x02, b"he") + frame(0x02, b"llo"), 1002,
                     "new message before the final fragment",
                     id="a new binary fragment inside a fragmented message"),
        pytest.param(bytes([0x81, 127]) + (2**63).to_bytes(8, "big"), 1002,
                     "most significant bit", id="a 64-bit length with its top bit set"),
        pytest.param(frame(0x88, b"\x03"), 1002, "close frame of 1 byte",
                     id="a close payload of one byte"),
        pytest.param(frame(0x88, close_payload(1005)), 1002, "close code 1005",
                     id="close code 1005 (no status, never sent)"),
        pytest.param(frame(0x88, close_payload(1006)), 1002, "close code 1006",
                     id="close code 1006 (abnormal closure, never sent)"),
        pytest.param(frame(0x88, close_payload(999)), 1002, "close code 999",
                     id="a close code below 1000"),
        pytest.param(frame(0x88, close_payload(2999)), 1002, "close code 2999",
                     id="a reserved close code"),
        pytest.param(frame(0x88, close_payload(5000)), 1002, "close code 5000",
                     id="a close code over 4999"),
        pytest.param(frame(0x81, b"caf\xe9"), 1007, "not UTF-8", id="Latin-1 in a text frame"),
        pytest.param(frame(0x81, b"\xed\xa0\x80"), 1007, "not UTF-8",
                     id="a surrogate in a text frame"),
        pytest.param(frame(0x01, b"\xe2\x82") + frame(0x80, b"("), 1007, "not UTF-8",
                     id="a fragmented text message that is not UTF-8"),
        pytest.param(frame(0x88, close_payload(1000, b"bye \xff")), 1007, "not UTF-8",
                     id="a close reason that is not UTF-8"),
    ],
)  # fmt: skip
def test_a_frame_against_the_protocol_fails_the_connection_with_its_close_code(
    cloud: RawCloud, conn: ClientConnection, wire: bytes, code: int, why: str
) -> None:
    cloud.write(wire)
    reason = fail_with(conn, why)
    assert str(code) in reason
    got_code, got_reason = cloud.close_frame()
    assert got_code == code
    assert why in got_reason


def test_binary_from_the_cloud_is_not_checked_as_text(
    cloud: RawCloud, conn: ClientConnection
) -> None:
    cloud.write(frame(0x82, b"\xff\xfe"))
    assert conn.recv(5) == b"\xff\xfe"


# Control frames the cloud may send.


def test_a_ping_alone_is_answered_and_recv_still_returns_none_at_its_timeout(
    cloud: RawCloud, conn: ClientConnection
) -> None:
    cloud.write(frame(0x89, b"anyone"))
    # The reader must not wait for a message after the ping as if one had begun (it
    # used to, until the socket's 2 s timeout failed the connection).
    assert conn.recv(0.2) is None
    cloud.write(frame(0x81, b"after"))
    assert conn.recv(5) == b"after"
    conn.close()
    assert cloud.received(_PONG) == [b"anyone"]


def test_a_pong_is_ignored(cloud: RawCloud, conn: ClientConnection) -> None:
    cloud.write(frame(0x8A, b"unasked") + frame(0x81, b"next"))
    assert conn.recv(5) == b"next"


def test_the_clouds_close_is_echoed_with_its_code_and_reported(
    cloud: RawCloud, conn: ClientConnection
) -> None:
    cloud.write(frame(0x88, close_payload(1001, "going away ☂".encode())))
    fail_with(conn, "closed by the cloud: 1001 going away ☂")
    assert cloud.close_frame() == (1001, "")


def test_a_close_with_no_code_is_echoed_empty(cloud: RawCloud, conn: ClientConnection) -> None:
    cloud.write(frame(0x88))
    fail_with(conn, "closed by the cloud: no code")
    assert cloud.received(_CLOSE) == [b""]


def test_the_edge_closing_sends_1000(cloud: RawCloud, conn: ClientConnection) -> None:
    conn.close()
    assert cloud.close_frame() == (1000, "")


def test_recv_returns_none_when_no_frame_begins(conn: ClientConnection) -> None:
    assert conn.recv(0.05) is None


def test_a_frame_begun_is_read_with_the_io_timeout_not_the_callers_wait(
    cloud: RawCloud, conn: ClientConnection
) -> None:
    cloud.write(frame(0x81, b"never finished")[:5])
    # The frame has begun: recv reads on past its 50 ms, and the stall (2 s, the
    # io_timeout) fails the connection; it does not return None mid-frame.
    with pytest.raises(HubConnectionError, match="timed out"):
        conn.recv(0.05)


# The reader alone, without I/O.


def test_the_reader_refuses_a_message_over_the_limit_on_its_header_bytes_alone() -> None:
    reader = frames.FrameReader(max_message=LIMIT)
    header = declaring(0x81, LIMIT + 1)
    for byte in header[:-1]:
        reader.receive_data(bytes([byte]))
        assert reader.next_event() is None and reader.begun
    reader.receive_data(header[-1:])
    with pytest.raises(frames.ProtocolError) as refused:
        reader.next_event()
    assert refused.value.code == frames.CLOSE_TOO_BIG


def test_frames_fed_a_byte_at_a_time_give_the_same_events() -> None:
    wire = (frame(0x01, b"he") + frame(0x89, b"p") + frame(0x80, b"llo")
            + frame(0x8A) + frame(0x88, close_payload(1000, b"bye")))  # fmt: skip
    reader = frames.FrameReader(max_message=LIMIT)
    events: list[frames.Event] = []
    for byte in wire:
        reader.receive_data(bytes([byte]))
        while (event := reader.next_event()) is not None:
            events.append(event)
    assert events == [frames.Ping(b"p"), frames.Message(b"hello"), frames.Pong(b""),
                      frames.Close(1000, "bye")]  # fmt: skip
    assert not reader.begun
