"""Websocket connections as asyncio Protocols around websockets' sans-I/O protocol.

cloudhub's server and the fleet's client use this instead of websockets' asyncio
layer, which runs tasks and wakes a future for every connection and frame: in a
reconnect storm of 1,000 edges that per-connection work was what limited both
sides (`bench/cloudhub_bench.py`, `bench/e2e_bench.py`). Here a connection is one
`asyncio.Protocol`: the handshake is parsed and answered in `data_received`, frames
reach the owner as calls (`on_frame`), and writes go straight to the transport.

The handshake checks, pings, close frames, fragments and size limits are websockets'
(`ServerProtocol`, `ClientProtocol`); this file moves bytes and events between them
and asyncio. The one exception is the frame nearly all traffic is, a whole message
in one frame: `framing` reads and writes those, and websockets gets every other frame
whole. Only this file, `framing` and their two users know websockets.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import ssl
from collections.abc import Iterable, Mapping
from typing import Protocol as Interface

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from modules.hub import framing, tlslayer

# websockets logs every opening handshake at INFO; in a reconnect storm that is a
# measurable share of the loop, so our connections' logger starts at WARNING.
_log = logging.getLogger("modules.hub.wsconn.websockets")
_log.setLevel(logging.WARNING)

_DATA = (Opcode.TEXT, Opcode.BINARY)
# Bytes of an upgrade head beyond which websockets is handed it as it comes (and
# refuses it, unless it takes its 128 headers of 8 KiB).
_MAX_HEAD = 64 * 1024
CLOSE_POLICY = 1008  # RFC 6455 7.4.1: policy violation
log = logging.getLogger("modules.hub.wsconn")


class Handler(Interface):
    """What a connection tells its owner (all on the loop thread)."""

    def on_open(self, conn: Connection) -> None:
        """The handshake succeeded: frames may be written."""

    def on_frame(self, conn: Connection, data: bytes) -> float:
        """A whole message (text or binary, fragments joined). Returns how many seconds
        to stop reading this connection for (0: go on), e.g. for a rate limit."""

    def on_frames_handled(self, conn: Connection) -> None:
        """`on_frame` has had every frame of one read (or those before a pause): the
        point to write the replies to them, in one go."""

    def on_close(self, conn: Connection) -> None:
        """The connection ended (only after `on_open`)."""


class ServerHandler(Handler, Interface):
    def check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """None to go on with the upgrade, or a refusal (see `Connection.respond`)."""


class Connection(asyncio.Protocol):
    """One websocket connection; subclasses do the opening handshake."""

    def __init__(
        self, handler: Handler, protocol: Protocol, *, close_timeout: float,
        max_write_buffer: int = 0,
    ) -> None:  # fmt: skip
        self.protocol = protocol  # websockets' framing state
        self.transport: asyncio.Transport | None = None  # set once TCP (and TLS) is up
        self.key = 0  # any number the owner wants to find this connection by
        self.identity = ""  # the node this connection is for, once its owner knows it
        self._handler = handler
        self._close_timeout = close_timeout  # seconds a close handshake may take
        self._max_write_buffer = max_write_buffer  # bytes waiting to be written; 0: no cap
        self._opened = False  # on_open was called
        self._parts: list[bytes] = []  # fragments of a message not finished yet
        self._held: collections.deque[bytes] = collections.deque()  # messages not handed on
        self._resume: asyncio.TimerHandle | None = None  # reading paused until then
        self._handshake_timer: asyncio.TimerHandle | None = None  # server: upgrade deadline
        self._close_timer: asyncio.TimerHandle | None = None  # closing handshake deadline
        self._client = isinstance(protocol, ClientProtocol)  # masks what it writes
        # Frames are read and written by `framing` unless websockets has been handed
        # bytes that may not end at a frame boundary (an outsized upgrade head).
        self._fast = True
        self._head_done = False  # the upgrade head went to websockets
        self._inbuf = bytearray()  # received, not parsed yet (an incomplete head or frame)

    @property
    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN

    @property
    def remote_address(self) -> object:
        return self.transport.get_extra_info("peername") if self.transport else None

    def write_frames(self, frames: Iterable[bytes | str]) -> bool:
        """Write text frames at once (the transport buffers what the socket cannot
        take yet); False, writing nothing, if the connection is not open."""
        if self.protocol.state is not State.OPEN or self.transport is None:
            return False
        if self.transport.is_closing():
            return False
        payloads = [frame.encode() if isinstance(frame, str) else frame for frame in frames]
        protocol = self.protocol
        if self._fast and not protocol.expect_continuation_frame and not protocol.extensions:
            self._send_data()  # what websockets has for the peer (a pong, say) goes first
            if payloads:
                self.transport.write(framing.text_frames(payloads, mask=self._client))
        else:
            for payload in payloads:
                protocol.send_text(payload)
            self._send_data()
        waiting = self.transport.get_write_buffer_size()
        if self._max_write_buffer and waiting > self._max_write_buffer:
            # A peer that does not read: its session ends (what it was sent is resent
            # to its next one) rather than its buffer growing without bound.
            reason = f"not reading: {waiting} bytes wait to be written"
            log.warning("%s: %s; closing the connection", self.identity or "peer", reason)
            self.close(CLOSE_POLICY, reason)
        return True

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the connection is cut if it takes too long."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._send_data()
            self._arm_close()
        elif self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection at once, as a network failure would."""
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self._fast:
            self._feed(data)
        elif self._head_done:
            self._read_frames(data)
        else:
            self._read_head(data)
        if self._held and self._resume is None:
            self._hand_on()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._send_data()
        # Returning None closes the transport: websockets never writes after EOF.

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()
        for timer in (self._handshake_timer, self._close_timer, self._resume):
            if timer is not None:
                timer.cancel()
        self._held.clear()
        if self._opened:
            self._opened = False
            self._handler.on_close(self)

    # Internals.

    def _feed(self, data: bytes | bytearray) -> None:
        """websockets parses `data`: its answers are written, its frames held."""
        protocol = self.protocol
        protocol.receive_data(data)
        received = protocol.events_received()
        self._send_data()
        if protocol.close_expected():
            self._arm_close()
        for event in received:
            if isinstance(event, Frame):
                self._frame(event)
            else:
                self._handshake(event)

    def _read_head(self, data: bytes) -> None:
        """Before the upgrade: websockets gets the request (or response) head alone, so
        that frames after it in the same read start at a boundary of our own."""
        buf = self._inbuf
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:  # websockets refuses it, or else parses all from now
                self._fast = False
                self._feed(bytes(buf))
                buf.clear()
            return
        head = bytes(buf[: end + 4])
        del buf[: end + 4]
        self._head_done = True
        self._feed(head)
        if buf:
            rest = bytes(buf)
            buf.clear()
            self._read_frames(rest)

    def _read_frames(self, data: bytes) -> None:
        """Whole single-frame messages are taken here (`framing`); every other frame
        goes to websockets whole, and everything once the connection is not open."""
        buf: bytes | bytearray = data
        if self._inbuf:
            self._inbuf += data
            buf = self._inbuf
        protocol, pos = self.protocol, 0
        while pos < len(buf):
            if protocol.state is not State.OPEN:
                self._feed(buf[pos:])  # a close or a failure: websockets has the rest
                pos = len(buf)
                break
            if protocol.current_size is None:  # no fragmented message under way
                pos = framing.take_messages(
                    buf, pos, masked=not self._client, limit=self._limit(), into=self._held
                )
                if pos == len(buf):
                    break
            head = framing.head_at(buf, pos)
            if head is None:
                break  # the rest of the header comes later
            limit = self._limit()
            if limit is not None and head.length > limit:
                self._feed(buf[pos:])  # websockets fails the connection (1009)
                pos = len(buf)
                break
            if pos + head.size > len(buf):
                break  # the rest of the frame comes later
            self._feed(buf[pos : pos + head.size])
            pos += head.size
        if buf is self._inbuf:
            del buf[:pos]
        elif pos < len(buf):
            self._inbuf += buf[pos:]

    def _limit(self) -> int | None:
        """The largest payload websockets would accept next (its `max_size` rules, with
        the attributes websockets 16 and 17 keep them in: setup.cfg pins that range)."""
        protocol = self.protocol
        limit = protocol.max_message_size
        if limit is not None and protocol.current_size is not None:
            limit -= protocol.current_size
        fragment = protocol.max_fragment_size
        if fragment is not None:
            limit = fragment if limit is None else min(limit, fragment)
        return limit

    def _handshake(self, event: Request | Response) -> None:
        raise NotImplementedError

    def _open(self) -> None:
        self._opened = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._handler.on_open(self)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode in _DATA:
            if frame.fin:
                self._held.append(bytes(frame.data))
            else:
                self._parts = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._parts.append(bytes(frame.data))
            if frame.fin:
                self._held.append(b"".join(self._parts))
                self._parts = []
        # Pings, pongs and close frames: the protocol has answered them.

    def _hand_on(self) -> None:
        """Hand held messages to the owner, until it asks for a pause or cuts the
        connection (an `abort` in `on_frame` ends delivery at once)."""
        held, transport = self._held, self.transport
        while held and self._opened and transport is not None and not transport.is_closing():
            delay = self._handler.on_frame(self, held.popleft())
            if delay > 0 and not transport.is_closing():
                transport.pause_reading()
                loop = asyncio.get_running_loop()
                self._resume = loop.call_later(delay, self._resume_reading)
                break
        if self._opened:
            self._handler.on_frames_handled(self)

    def _resume_reading(self) -> None:
        self._resume = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self._hand_on()

    def _send_data(self) -> None:
        """Write what the protocol has for the peer: the frames between two ends of
        stream in one write (a write per frame is a system call per frame)."""
        transport = self.transport
        if transport is None:
            return
        chunks: list[bytes] = []
        for chunk in self.protocol.data_to_send():
            if chunk:
                chunks.append(chunk)
                continue
            if chunks:
                transport.write(b"".join(chunks))
                chunks = []
            if transport.can_write_eof():  # end of stream, after a close: half-close TCP
                transport.write_eof()
            else:  # TLS cannot half-close
                transport.close()
        if chunks:
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _arm_close(self) -> None:
        """Cut the connection if the closing handshake does not end it in time."""
        if self._close_timer is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self._close_timeout, self.abort)


class ServerConnection(Connection):
    """The server end: answers the upgrade request after the owner's check."""

    def __init__(
        self, handler: ServerHandler, *, max_size: int, handshake_timeout: float,
        close_timeout: float, max_write_buffer: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(
            handler, ServerProtocol(max_size=max_size, logger=_log), close_timeout=close_timeout,
            max_write_buffer=max_write_buffer,
        )  # fmt: skip
        self._server_handler = handler
        self._handshake_timeout = handshake_timeout  # seconds for the upgrade request

    def respond(self, status: http.HTTPStatus, text: str) -> Response:
        """A refusal for `check_request` to return: this status, `text` as the body."""
        assert isinstance(self.protocol, ServerProtocol)
        return self.protocol.reject(status, text)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self._handshake_timeout, self.abort)

    def _handshake(self, event: Request | Response) -> None:
        protocol = self.protocol
        if not isinstance(event, Request) or not isinstance(protocol, ServerProtocol):
            return
        response = self._server_handler.check_request(self, event)
        if response is None:
            response = protocol.accept(event)
        protocol.send_response(response)
        self._send_data()
        if protocol.state is State.OPEN:
            self._open()


class ClientConnection(Connection):
    """The client end: sends the upgrade request with the given headers."""

    def __init__(
        self, handler: Handler, uri: str, headers: Mapping[str, str], *, max_size: int,
        close_timeout: float,
    ) -> None:  # fmt: skip
        protocol = ClientProtocol(parse_uri(uri), max_size=max_size, logger=_log)
        super().__init__(handler, protocol, close_timeout=close_timeout)
        self._headers = headers  # added to the upgrade request
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(self.protocol, ClientProtocol)
        request = self.protocol.connect()
        for name, value in self._headers.items():
            request.headers[name] = value
        self.protocol.send_request(request)
        self._send_data()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.opened.done():
            failure = self.protocol.handshake_exc or ConnectionError("the connection was lost")
            self.opened.set_exception(failure)

    def _handshake(self, event: Request | Response) -> None:
        if self.opened.done():
            return
        # Accepted even if a close frame came in the same read (the state is CLOSING
        # then): the session opens and the close follows.
        if self.protocol.handshake_exc is None and isinstance(event, Response):
            self.opened.set_result(None)
            self._open()
        else:
            failure = self.protocol.handshake_exc
            if failure is None and isinstance(event, Response):
                failure = InvalidStatus(event)
            self.opened.set_exception(failure or InvalidHandshake("the upgrade failed"))


async def connect(
    handler: Handler, uri: str, *, headers: Mapping[str, str], ssl_context: ssl.SSLContext | None,
    max_size: int, timeout: float, close_timeout: float = 1.0,
    handshake_workers: tlslayer.HandshakeWorkers | None = None,
) -> ClientConnection:  # fmt: skip
    """Open a websocket connection to `uri` (``ws://`` or ``wss://``; its TLS handshake
    on `handshake_workers` if given, else on the loop).

    Raises:
        OSError: the TCP (or TLS) connection failed.
        TimeoutError: the handshake took longer than `timeout`.
        InvalidHandshake: the server refused the upgrade.
    """
    parsed = parse_uri(uri)
    loop = asyncio.get_running_loop()
    conn: ClientConnection | None = None

    def make() -> ClientConnection:
        nonlocal conn
        conn = ClientConnection(
            handler, uri, headers, max_size=max_size, close_timeout=close_timeout
        )
        return conn

    layer: tlslayer.TLSLayer | None = None
    try:
        async with asyncio.timeout(timeout):
            if parsed.secure and ssl_context is not None:
                layer = tlslayer.TLSLayer(
                    make, ssl_context, server_side=False, server_hostname=parsed.host,
                    handshake_timeout=timeout, workers=handshake_workers,
                )  # fmt: skip
                await loop.create_connection(lambda: layer, parsed.host, parsed.port)
                await asyncio.shield(layer.handshake_done)  # the layer settles it, not a timeout
            else:
                await loop.create_connection(make, parsed.host, parsed.port)
            assert conn is not None
            await conn.opened
    except BaseException:
        if layer is not None and layer.transport is not None:
            layer.transport.abort()
        if conn is not None:
            conn.abort()
            if not conn.opened.done():
                conn.opened.cancel()
        raise
    return conn
