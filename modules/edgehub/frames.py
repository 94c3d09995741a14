"""The cloud's websocket frames, read as strictly as RFC 6455 and edgecore read them.

Input: bytes from the edge's socket (`FrameReader.receive_data`); output: events
(`FrameReader.next_event`): a whole message (fragments joined), a ping, a pong, or the
cloud's close. A frame that breaks the protocol raises `ProtocolError` with the code to
close with (RFC 6455 7.4.1): 1002 for a protocol error, 1007 for text that is not
UTF-8, 1009 for a message over the limit, which is refused as soon as a frame's header
says so, before its payload is read (gorilla/websocket's ``advanceFrame``, which
edgecore's edgehub reads with). `transport` reads the socket and writes the answers;
this file does no I/O.
"""

from __future__ import annotations

from typing import NamedTuple

from modules.hub import framing

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_FIN, _RSV, _OPCODE, _MASKED, _LENGTH = 0x80, 0x70, 0x0F, 0x80, 0x7F
_MAX_CONTROL = 125  # RFC 6455 5.5: a control frame's payload


class Message(NamedTuple):
    payload: bytes  # text (checked to be UTF-8) or binary


class Ping(NamedTuple):
    payload: bytes


class Pong(NamedTuple):
    payload: bytes


class Close(NamedTuple):
    code: int | None  # None: the cloud sent no code
    reason: str


Event = Message | Ping | Pong | Close


class ProtocolError(Exception):
    """The cloud broke RFC 6455: fail the connection with `code` (7.4.1)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class FrameReader:
    """Frames from a server (unmasked, RFC 6455 5.1), for a client with no extension."""

    def __init__(self, *, max_message: int) -> None:
        self._max_message = max_message  # bytes a message (all its fragments) may have
        self._buf = bytearray()  # bytes received and not yet parsed
        self._opcode: int | None = None  # text or binary while a fragmented message is open
        self._fragments: list[bytes] = []  # that message's payloads so far
        self._size = 0  # and their bytes

    @property
    def begun(self) -> bool:
        """Whether a frame, or a fragmented message, has begun and is not complete."""
        return bool(self._buf) or self._opcode is not None

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_event(self) -> Event | None:
        """The next event in the bytes received; None until a whole frame is in.

        Raises:
            ProtocolError: the cloud broke the protocol (nothing further may be read).
        """
        while True:
            frame = self._next_frame()
            if frame is None:
                return None
            first, payload = frame
            opcode = first & _OPCODE
            if opcode >= _CLOSE:
                return _control(opcode, payload)
            message = self._add_fragment(opcode, bool(first & _FIN), payload)
            if message is not None:
                return message

    def _next_frame(self) -> tuple[int, bytes] | None:
        """The first byte and payload of the next whole frame, checked on its header."""
        buf = self._buf
        if len(buf) < 2:
            return None
        self._check_start(buf[0], buf[1])
        head = framing.head_at(buf, 0)
        if head is None:
            return None
        if head.length >> 63:  # RFC 6455 5.2: the top bit of a 64-bit length is 0
            raise _protocol_error("a frame length with the most significant bit set")
        if buf[0] & _OPCODE < _CLOSE and self._size + head.length > self._max_message:
            # Refused on the header: a peer never gets the edge to read what it declares.
            raise ProtocolError(
                CLOSE_TOO_BIG, f"the cloud sent a message over {self._max_message} bytes"
            )
        if len(buf) < head.size:
            return None
        first, payload = buf[0], bytes(buf[head.size - head.length : head.size])
        del buf[: head.size]
        return first, payload

    def _check_start(self, first: int, second: int) -> None:
        """The checks the first two bytes allow (gorilla's order: reserved bits, opcode,
        fragmentation, mask)."""
        opcode = first & _OPCODE
        if first & _RSV:
            raise _protocol_error(
                f"a frame with reserved bits 0x{first & _RSV:02x} and no extension agreed"
            )
        if opcode >= _CLOSE:
            if opcode not in (_CLOSE, _PING, _PONG):
                raise _protocol_error(f"a frame with unknown opcode 0x{opcode:x}")
            if not first & _FIN:
                raise _protocol_error("a fragmented control frame")
            if second & _LENGTH > _MAX_CONTROL:
                raise _protocol_error(f"a control frame over {_MAX_CONTROL} bytes")
        elif opcode == _CONT:
            if self._opcode is None:
                raise _protocol_error("a continuation frame with no message begun")
        elif opcode in (_TEXT, _BINARY):
            if self._opcode is not None:
                raise _protocol_error("a new message before the final fragment of the last")
        else:
            raise _protocol_error(f"a frame with unknown opcode 0x{opcode:x}")
        if second & _MASKED:
            raise _protocol_error("a masked frame (RFC 6455 5.1: a server never masks)")

    def _add_fragment(self, opcode: int, fin: bool, payload: bytes) -> Message | None:
        """The whole message once its final fragment is in."""
        if opcode != _CONT:
            self._opcode = opcode
        self._fragments.append(payload)
        self._size += len(payload)
        if not fin:
            return None
        data = self._fragments[0] if len(self._fragments) == 1 else b"".join(self._fragments)
        text = self._opcode == _TEXT
        self._opcode, self._fragments, self._size = None, [], 0
        if text and not _is_utf8(data):
            raise ProtocolError(
                CLOSE_INVALID_DATA, "the cloud sent a text message that is not UTF-8"
            )
        return Message(data)


def _control(opcode: int, payload: bytes) -> Event:
    if opcode == _PING:
        return Ping(payload)
    if opcode == _PONG:
        return Pong(payload)
    if not payload:
        return Close(None, "")
    if len(payload) == 1:
        raise _protocol_error("a close frame of 1 byte (a code takes 2)")
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise _protocol_error(f"close code {code}, which no peer may send")  # RFC 6455 7.4
    if not _is_utf8(payload[2:]):
        raise ProtocolError(CLOSE_INVALID_DATA, "the cloud sent a close reason that is not UTF-8")
    return Close(code, payload[2:].decode())


def _protocol_error(what: str) -> ProtocolError:
    return ProtocolError(CLOSE_PROTOCOL_ERROR, f"the cloud sent {what}")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
