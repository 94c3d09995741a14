"""wsconn over real sockets on 127.0.0.1: a server of `wsconn.ServerConnection`s made with
`loop.create_server`, against `wsconn.connect` clients, websockets' own asyncio client and
raw TCP peers.

Each test runs its own loop (`asyncio.run`), waits on events and futures bounded by `WAIT`
(never a fixed sleep), and cuts every connection it made before that loop closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import itertools
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import TypeVar

import pytest
from websockets.asyncio.client import connect as websockets_connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from modules.hub import wsconn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]

T = TypeVar("T")
WAIT = 5.0  # seconds, the bound on every wait; a passing test never waits it out
HOST = "127.0.0.1"


async def within(awaitable: Awaitable[T], timeout: float = WAIT) -> T:
    return await asyncio.wait_for(awaitable, timeout)


async def queued_callbacks_run() -> None:
    """Return once the callbacks the loop has queued so far have run (it runs them in order):
    after `abort()`, that is each transport's `connection_lost`, which closes its socket."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done


class Recorder:
    """A `wsconn.ServerHandler` (so also a `wsconn.Handler`) that keeps what it is told.

    `refuse` is the status `check_request` refuses with (None: accept); `delays` maps a
    frame to the pause `on_frame` asks for after it (absent: none)."""

    def __init__(
        self, *, refuse: http.HTTPStatus | None = None, delays: dict[bytes, float] | None = None
    ) -> None:
        self.refuse = refuse
        self.delays = delays or {}
        self.requests: list[Request] = []  # what check_request was asked about
        self.opened: list[wsconn.Connection] = []  # on_open's connections, in order
        self.frames: list[bytes] = []  # on_frame's data, in order
        self.handled: list[int] = []  # len(frames) at each on_frames_handled
        self.closed: list[wsconn.Connection] = []  # on_close's connections, in order
        self.log: list[str] = []  # every on_* call (and a subclass's marks), in order
        self.open = asyncio.Event()  # set by on_open
        self.ended = asyncio.Event()  # set by on_close
        self._arrived: asyncio.Queue[bytes] = asyncio.Queue()  # frames for `frame()`

    def check_request(self, conn: wsconn.ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        return None if self.refuse is None else conn.respond(self.refuse, "no\n")

    def on_open(self, conn: wsconn.Connection) -> None:
        self.opened.append(conn)
        self.log.append("open")
        self.open.set()

    def on_frame(self, conn: wsconn.Connection, data: bytes) -> float:
        self.frames.append(data)
        self.log.append(f"frame {data!r}")
        self._arrived.put_nowait(data)
        return self.delays.get(data, 0.0)

    def on_frames_handled(self, conn: wsconn.Connection) -> None:
        self.handled.append(len(self.frames))

    def on_close(self, conn: wsconn.Connection) -> None:
        self.closed.append(conn)
        self.log.append("close")
        self.ended.set()

    async def frame(self) -> bytes:
        """The next frame handed on, waiting for it."""
        return await within(self._arrived.get())


class PauseMarker(Recorder):
    """After each frame it asks a pause for, notes whether its connection is reading when
    the callbacks queued right after the frame run, and when half the pause has passed on
    the loop's clock (a timer due before the connection's own resume timer)."""

    def on_frame(self, conn: wsconn.Connection, data: bytes) -> float:
        delay = super().on_frame(conn, data)
        if delay > 0:
            loop = asyncio.get_running_loop()
            loop.call_soon(self._mark, conn, "right after")
            loop.call_later(delay / 2, self._mark, conn, "halfway")
        return delay

    def on_frames_handled(self, conn: wsconn.Connection) -> None:
        super().on_frames_handled(conn)
        self.log.append("handled")

    def _mark(self, conn: wsconn.Connection, when: str) -> None:
        assert conn.transport is not None
        self.log.append(f"{when}: reading={conn.transport.is_reading()}")


@dataclasses.dataclass
class Served:
    """A running wsconn server: where to reach it and every connection made to or from it."""

    port: int
    conns: list[wsconn.ServerConnection]  # every connection the server made
    clients: list[wsconn.ClientConnection] = dataclasses.field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"ws://{HOST}:{self.port}/"

    async def connect(
        self, handler: wsconn.Handler, *, max_size: int = 2**20, close_timeout: float = 1.0
    ) -> wsconn.ClientConnection:
        conn = await wsconn.connect(
            handler, self.uri, headers={}, ssl_context=None, max_size=max_size, timeout=WAIT,
            close_timeout=close_timeout,
        )  # fmt: skip
        self.clients.append(conn)
        return conn


@contextlib.asynccontextmanager
async def serving(
    handler: Recorder, *, max_size: int = 2**20, handshake_timeout: float = WAIT
) -> AsyncIterator[Served]:
    """A server of `wsconn.ServerConnection`s for `handler` on 127.0.0.1, port 0."""
    loop = asyncio.get_running_loop()
    conns: list[wsconn.ServerConnection] = []

    def make() -> wsconn.ServerConnection:
        conn = wsconn.ServerConnection(
            handler, max_size=max_size, handshake_timeout=handshake_timeout, close_timeout=1.0
        )
        conns.append(conn)
        return conn

    server = await loop.create_server(make, HOST, 0)
    served = Served(port=server.sockets[0].getsockname()[1], conns=conns)
    try:
        yield served
    finally:
        server.close()
        await server.wait_closed()
        for conn in [*served.clients, *conns]:
            conn.abort()
        await queued_callbacks_run()


def test_a_client_and_the_server_exchange_frames_and_a_server_close_ends_both() -> None:
    server, client = Recorder(), Recorder()

    async def main() -> None:
        async with serving(server) as served:
            conn = await served.connect(client)
            await within(server.open.wait())
            assert conn.is_open
            assert conn.write_frames(["héllo", b"raw"])
            assert [await server.frame(), await server.frame()] == ["héllo".encode(), b"raw"]
            (peer,) = server.opened
            assert peer.write_frames(["hi", "there"])
            assert [await client.frame(), await client.frame()] == [b"hi", b"there"]
            peer.close(1000, "bye")
            await within(server.ended.wait())
            await within(client.ended.wait())
            assert not peer.write_frames(["too late"])
            assert not conn.write_frames(["too late"])
            assert (conn.protocol.close_code, conn.protocol.close_reason) == (1000, "bye")

    asyncio.run(main())
    assert [r.path for r in server.requests] == ["/"]
    assert server.log == ["open", "frame b'h\\xc3\\xa9llo'", "frame b'raw'", "close"]
    assert client.log == ["open", "frame b'hi'", "frame b'there'", "close"]
    # However the frames were split into reads, each read's frames were followed by
    # on_frames_handled, the last after the last frame.
    for recorder in (server, client):
        assert recorder.handled == sorted(set(recorder.handled)) and recorder.handled[-1] == 2
    assert server.opened == server.closed and client.opened == client.closed


def test_a_refused_upgrade_raises_invalid_status_and_the_server_never_opens() -> None:
    server, client = Recorder(refuse=http.HTTPStatus.FORBIDDEN), Recorder()

    async def main() -> None:
        async with serving(server) as served:
            with pytest.raises(InvalidHandshake) as caught:
                await served.connect(client)
            assert isinstance(caught.value, InvalidStatus)
            assert caught.value.response.status_code == 403
            assert caught.value.response.body == b"no\n"

    asyncio.run(main())
    assert len(server.requests) == 1
    assert server.log == [] and client.log == []


def test_fragments_from_the_websockets_client_are_joined_into_one_frame() -> None:
    server = Recorder()

    async def main() -> None:
        async with serving(server) as served:
            ws_client = websockets_connect(
                served.uri, compression=None, open_timeout=WAIT, close_timeout=WAIT
            )
            async with ws_client as ws:
                await within(ws.send(iter(["frag", "men", "ted"])))
                await within(ws.send(iter([b"\x00\x01", b"\xff"])))
                await within(ws.send(b"\x02"))
                assert await server.frame() == b"fragmented"
                assert await server.frame() == b"\x00\x01\xff"
                assert await server.frame() == b"\x02"
            await within(server.ended.wait())

    asyncio.run(main())
    assert server.frames == [b"fragmented", b"\x00\x01\xff", b"\x02"]
    assert server.log == [
        "open",
        "frame b'fragmented'",
        "frame b'\\x00\\x01\\xff'",
        "frame b'\\x02'",
        "close",
    ]


def test_a_pause_asked_by_on_frame_holds_later_frames_until_it_ends() -> None:
    server, client = PauseMarker(delays={b"one": 0.05, b"two": 0.05}), Recorder()

    async def main() -> None:
        async with serving(server) as served:
            conn = await served.connect(client)
            # Written in one go, so usually read in one go too; if not, the rest waits
            # in the socket while reading is paused, and the log is the same.
            assert conn.write_frames(["one", "two", "three"])
            assert [await server.frame() for _ in range(3)] == [b"one", b"two", b"three"]

    asyncio.run(main())
    assert server.log == [
        "open",
        "frame b'one'",
        "handled",  # before the pause: the frames so far are handled
        "right after: reading=False",
        "halfway: reading=False",
        "frame b'two'",
        "handled",
        "right after: reading=False",
        "halfway: reading=False",
        "frame b'three'",
        "handled",
        "close",  # by the teardown
    ]


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing sent"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", id="a request that never ends"),
    ],
)
def test_a_peer_that_never_finishes_the_upgrade_is_cut_at_the_handshake_deadline(
    sent: bytes,
) -> None:
    server = Recorder()

    async def main() -> None:
        async with serving(server, handshake_timeout=0.2) as served:
            reader, writer = await asyncio.open_connection(HOST, served.port)
            try:
                writer.write(sent)
                assert await within(reader.read()) == b""  # EOF: the server cut it
            finally:
                writer.close()
                await within(writer.wait_closed())

    asyncio.run(main())
    assert server.requests == [] and server.log == []


def test_an_open_connection_outlives_the_handshake_deadline() -> None:
    server, client = Recorder(), Recorder()

    async def main() -> None:
        async with serving(server, handshake_timeout=0.2) as served:
            conn = await served.connect(client)
            await within(server.open.wait())
            # A silent peer that connects later has a later deadline: once it is cut, the
            # open connection's deadline has passed too (had it been left armed).
            reader, writer = await asyncio.open_connection(HOST, served.port)
            try:
                assert await within(reader.read()) == b""
            finally:
                writer.close()
                await within(writer.wait_closed())
            assert conn.is_open and served.conns[0].is_open
            assert conn.write_frames(["still here"])
            assert await server.frame() == b"still here"

    asyncio.run(main())
    assert server.log == ["open", "frame b'still here'", "close"]  # closed by the teardown


def test_a_frame_over_max_size_closes_with_1009_and_is_never_handed_on() -> None:
    server, client = Recorder(), Recorder()

    async def main() -> None:
        async with serving(server, max_size=1024) as served:
            conn = await served.connect(client)
            assert conn.write_frames(["x" * 1024, "y" * 1025])
            await within(client.ended.wait())
            await within(server.ended.wait())
            assert conn.protocol.close_code == 1009

    asyncio.run(main())
    assert server.frames == [b"x" * 1024]
    assert server.log == ["open", f"frame {b'x' * 1024!r}", "close"]


def test_fragments_over_max_size_together_close_with_1009_and_are_never_handed_on() -> None:
    server = Recorder()

    async def main() -> None:
        async with serving(server, max_size=1024) as served:
            ws_client = websockets_connect(
                served.uri, compression=None, open_timeout=WAIT, close_timeout=WAIT
            )
            async with ws_client as ws:
                with contextlib.suppress(ConnectionClosed):
                    await within(ws.send(iter(["a" * 600, "b" * 600])))
                await within(ws.wait_closed())
                assert ws.close_code == 1009
            await within(server.ended.wait())

    asyncio.run(main())
    assert server.frames == []
    assert server.log == ["open", "close"]


def test_a_client_abort_ends_both_sides() -> None:
    server, client = Recorder(), Recorder()

    async def main() -> None:
        async with serving(server) as served:
            conn = await served.connect(client)
            await within(server.open.wait())
            conn.abort()
            await within(server.ended.wait())
            await within(client.ended.wait())
            assert not conn.write_frames(["gone"])

    asyncio.run(main())
    assert server.log == ["open", "close"] and client.log == ["open", "close"]


class Mute(asyncio.Protocol):
    """A TCP server's connection that never answers; `lost` is done once it has ended."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)


def test_connect_times_out_against_a_server_that_never_answers_and_drops_the_connection() -> None:
    client = Recorder()

    async def main() -> None:
        made: list[Mute] = []

        def make() -> Mute:
            made.append(Mute())
            return made[-1]

        server = await asyncio.get_running_loop().create_server(make, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TimeoutError):
                await wsconn.connect(
                    client, f"ws://{HOST}:{port}/", headers={}, ssl_context=None,
                    max_size=2**20, timeout=0.2,
                )  # fmt: skip
            (mute,) = made
            await within(mute.lost)  # connect cut the connection it gave up on
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert client.log == []


class ScriptedServer(asyncio.Protocol):
    """A websocket server end driven by websockets' `ServerProtocol`: it accepts the upgrade
    and sends a close frame, in the same write as the 101 answer or when `send_close` is
    called. If `closes_tcp`, it then closes TCP as websockets says to; if not, it never does,
    leaving the end of the connection to the client's close deadline."""

    def __init__(self, *, close_with_answer: bool, closes_tcp: bool) -> None:
        self.close_with_answer = close_with_answer
        self.closes_tcp = closes_tcp
        self.ws = ServerProtocol()  # websockets' framing state for this end
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Request):
                self.ws.send_response(self.ws.accept(event))
                if self.close_with_answer:
                    self.ws.send_close(1000, "bye")
        self._send_data()

    def send_close(self) -> None:
        self.ws.send_close(1000, "bye")
        self._send_data()

    def _send_data(self) -> None:
        assert self.transport is not None
        chunks = self.ws.data_to_send()
        self.transport.write(b"".join(chunks))  # one write: one segment
        if b"" in chunks and self.closes_tcp:  # b"": websockets' end of stream
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)


@pytest.mark.parametrize(
    ("close_with_answer", "closes_tcp"),
    [
        pytest.param(False, True, id="close after the open"),
        pytest.param(False, False, id="close after the open, TCP never closed"),
        pytest.param(
            True,
            True,
            id="close in the same segment as the 101 answer",
        ),
        pytest.param(
            True,
            False,
            id="close in the same segment as the 101 answer, TCP never closed",
        ),
    ],
)
def test_a_server_close_opens_then_ends_the_client_by_its_close_deadline_at_the_latest(
    close_with_answer: bool, closes_tcp: bool
) -> None:
    client = Recorder()
    close_timeout = 0.05

    async def main() -> None:
        made: list[ScriptedServer] = []

        def make() -> ScriptedServer:
            made.append(ScriptedServer(close_with_answer=close_with_answer, closes_tcp=closes_tcp))
            return made[-1]

        server = await asyncio.get_running_loop().create_server(make, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        conn: wsconn.ClientConnection | None = None
        try:
            conn = await wsconn.connect(
                client, f"ws://{HOST}:{port}/", headers={}, ssl_context=None, max_size=2**20,
                timeout=WAIT, close_timeout=close_timeout,
            )  # fmt: skip
            if not close_with_answer:
                made[0].send_close()
            await within(client.ended.wait(), timeout=20 * close_timeout)
            assert (conn.protocol.close_code, conn.protocol.close_reason) == (1000, "bye")
        finally:
            if conn is not None:
                conn.abort()
            server.close()
            await server.wait_closed()
            for peer in made:
                await within(peer.lost)

    asyncio.run(main())
    assert client.log == ["open", "close"]


# A raw peer: websockets' client protocol writes the upgrade and reads the answers,
# the frames are websockets' own bytes, and the test chooses how they are cut up.


def upgrade_request(uri: str) -> tuple[ClientProtocol, bytes]:
    peer = ClientProtocol(parse_uri(uri))
    peer.send_request(peer.connect())
    return peer, b"".join(peer.data_to_send())


def masked(*frames: Frame) -> bytes:
    return b"".join(frame.serialize(mask=True) for frame in frames)


async def send_raw(
    served: Served, chunks: Iterable[bytes]
) -> tuple[ClientProtocol, asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, write the upgrade request and then `chunks`, one write each."""
    peer, request = upgrade_request(served.uri)
    reader, writer = await asyncio.open_connection(HOST, served.port)
    writer.write(request)
    for chunk in chunks:
        writer.write(chunk)
        await within(writer.drain())
    return peer, reader, writer


async def answers(peer: ClientProtocol, reader: asyncio.StreamReader) -> list[Frame]:
    """The frames the server wrote, up to its end of the connection."""
    peer.receive_data(await within(reader.read()))
    peer.receive_eof()
    return [event for event in peer.events_received() if isinstance(event, Frame)]


def cut(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """`data` in pieces of the given sizes, in turn (the last piece: what is left)."""
    pieces: list[bytes] = []
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            return pieces
        pieces.append(data[pos : pos + size])
        pos += size
    raise AssertionError("unreachable")


STREAM = masked(
    Frame(Opcode.TEXT, b"one"),
    Frame(Opcode.PING, b"are you there"),
    Frame(Opcode.TEXT, b"frag", fin=False),
    Frame(Opcode.CONT, b"ment", fin=False),
    Frame(Opcode.CONT, b"ed"),
    Frame(Opcode.BINARY, b"\x00\xff" * 40_000),
    Frame(Opcode.TEXT, "é".encode()),
)
STREAM_MESSAGES = [b"one", b"fragmented", b"\x00\xff" * 40_000, "é".encode()]


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([STREAM], id="in one write"),
        pytest.param(cut(STREAM, [1, 2, 3, 5, 8, 13, 999]), id="cut into pieces of 1 to 999"),
        pytest.param([*cut(STREAM[:400], [1]), STREAM[400:]], id="400 bytes one at a time"),
    ],
)  # fmt: skip
def test_frames_however_cut_reach_the_handler_whole_and_in_order_and_pings_are_answered(
    pieces: list[bytes],
) -> None:
    server = Recorder()

    async def main() -> None:
        async with serving(server) as served:
            peer, reader, writer = await send_raw(served, pieces)
            while len(server.frames) < len(STREAM_MESSAGES):
                await server.frame()
            served.conns[0].close(1000, "done")
            frames = await answers(peer, reader)
            writer.close()
            assert [(f.opcode, f.data) for f in frames] == [
                (Opcode.PONG, b"are you there"),
                (Opcode.CLOSE, frames[-1].data),
            ]

    asyncio.run(main())
    assert server.frames == STREAM_MESSAGES


def test_the_upgrade_and_the_first_frames_in_one_write_reach_the_handler() -> None:
    server = Recorder()

    async def main() -> None:
        async with serving(server) as served:
            _, request = upgrade_request(served.uri)
            _, writer = await asyncio.open_connection(HOST, served.port)
            writer.write(request + masked(Frame(Opcode.TEXT, b"early"), Frame(Opcode.TEXT, b"x")))
            assert [await server.frame(), await server.frame()] == [b"early", b"x"]
            writer.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(Frame(Opcode.TEXT, b"bare").serialize(mask=False), 1002, id="unmasked"),
        pytest.param(
            masked(Frame(Opcode.TEXT, b"frag", fin=False), Frame(Opcode.TEXT, b"whole")),
            1002,
            id="a message inside a fragmented one",
        ),
        pytest.param(masked(Frame(Opcode.CONT, b"orphan")), 1002, id="a lone continuation"),
        pytest.param(masked(Frame(Opcode.TEXT, b"x" * 2000)), 1009, id="over max_size"),
        pytest.param(
            masked(Frame(Opcode.TEXT, b"x" * 600, fin=False), Frame(Opcode.CONT, b"y" * 600)),
            1009,
            id="fragments over max_size together",
        ),
    ],
)
def test_frames_websockets_refuses_close_the_connection_with_its_code(
    data: bytes, code: int
) -> None:
    server = Recorder()

    async def main() -> None:
        async with serving(server, max_size=1024) as served:
            peer, reader, writer = await send_raw(served, [masked(Frame(Opcode.TEXT, b"ok")), data])
            frames = await answers(peer, reader)
            writer.close()
            assert frames and frames[-1].opcode is Opcode.CLOSE
            assert Close.parse(frames[-1].data).code == code
            await within(server.ended.wait())

    asyncio.run(main())
    assert server.frames == [b"ok"]
